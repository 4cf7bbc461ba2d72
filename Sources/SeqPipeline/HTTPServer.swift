import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// One HTTP/1.1 request as `seqpipe serve` reads it: a method, a path, its query, headers
/// (names in lower case) and a body.
public struct HTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]
    public var body: [UInt8]

    /// What reading the bytes so far gives.
    public enum Parse: Sendable {
        case incomplete
        case complete(HTTPRequest)
        /// An answer to send instead, and close: a status and why.
        case refuse(Int, String)
    }

    public static let maximumHeader = 16 * 1024
    public static let maximumBody = 64 * 1024

    /// Parses `bytes` as far as they go, within the header and body limits.
    public static func parse(_ bytes: [UInt8]) -> Parse {
        guard let end = headerEnd(bytes) else {
            return bytes.count > maximumHeader ? .refuse(431, "request header larger than \(maximumHeader) bytes") : .incomplete
        }
        guard end <= maximumHeader else { return .refuse(431, "request header larger than \(maximumHeader) bytes") }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ").map(String.init)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1."), requestLine[1].hasPrefix("/") else {
            return .refuse(400, "malformed request line")
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return .refuse(400, "malformed header line") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            // Two lengths that disagree are how one request is smuggled inside another.
            if let earlier = headers[name], name == "content-length" || name == "transfer-encoding", earlier != value {
                return .refuse(400, "two \(name) headers that disagree")
            }
            headers[name] = value
        }
        let start = end + 4
        let body: [UInt8]
        if let coding = headers["transfer-encoding"] {
            guard headers["content-length"] == nil else { return .refuse(400, "both Content-Length and Transfer-Encoding") }
            guard coding.lowercased() == "chunked" else { return .refuse(400, "Transfer-Encoding \(coding) is not served; send Content-Length") }
            switch chunkedBody(bytes[start...]) {
            case .incomplete: return .incomplete
            case .refuse(let status, let why): return .refuse(status, why)
            case .complete(let decoded): body = decoded
            }
        } else {
            var length = 0
            if let text = headers["content-length"] {
                guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int(text) else { return .refuse(400, "bad Content-Length") }
                guard value <= maximumBody else { return .refuse(413, "body larger than \(maximumBody) bytes") }
                length = value
            }
            guard bytes.count >= start + length else { return .incomplete }
            body = Array(bytes[start..<(start + length)])
        }
        let target = requestLine[1]
        let question = target.firstIndex(of: "?")
        // A control character (a NUL above all) in the path names no page: refused, not cut.
        guard let path = percentDecoded(String(target[..<(question ?? target.endIndex)])),
              !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return .refuse(400, "bad percent-encoding or a control character in the path")
        }
        var query: [String: String] = [:]
        if let question {
            for pair in target[target.index(after: question)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard let key = percentDecoded(String(parts[0])), let value = percentDecoded(parts.count > 1 ? String(parts[1]) : "")
                else { return .refuse(400, "bad percent-encoding in the query") }
                query[key] = value
            }
        }
        return .complete(HTTPRequest(method: requestLine[0], path: path, query: query, headers: headers, body: body))
    }

    /// What a chunked body decodes to so far: each chunk's size in at most 8 hex digits and
    /// the whole within `maximumBody` (a size of FFFFFFFFFFFF is refused, never waited for).
    enum Chunked {
        case incomplete
        case complete([UInt8])
        case refuse(Int, String)
    }

    static func chunkedBody(_ bytes: ArraySlice<UInt8>) -> Chunked {
        var body: [UInt8] = []
        var index = bytes.startIndex
        while true {
            guard let lineEnd = crlf(in: bytes, from: index) else {
                return bytes.endIndex - index > 32 ? .refuse(400, "a malformed chunk size") : .incomplete
            }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).prefix { $0 != ";" }.trimmingSpaces()
            guard !sizeText.isEmpty, sizeText.count <= 8, let size = Int(sizeText, radix: 16) else {
                return .refuse(400, "a malformed or oversized chunk size '\(sizeText.prefix(20))'")
            }
            guard body.count + size <= maximumBody else { return .refuse(413, "body larger than \(maximumBody) bytes") }
            let data = lineEnd + 2
            if size == 0 {
                // The last chunk, then trailers (ignored) up to an empty line.
                var at = data
                while true {
                    guard let end = crlf(in: bytes, from: at) else { return .incomplete }
                    if end == at { return .complete(body) }
                    at = end + 2
                }
            }
            guard bytes.endIndex >= data + size + 2 else { return .incomplete }
            guard bytes[data + size] == 13, bytes[data + size + 1] == 10 else { return .refuse(400, "a chunk longer than its size") }
            body += bytes[data..<(data + size)]
            index = data + size + 2
        }
    }

    static func crlf(in bytes: ArraySlice<UInt8>, from start: Int) -> Int? {
        var index = start
        while index + 1 < bytes.endIndex {
            if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    /// `%XX` and `+` decoded; nil for a broken escape or bytes that are not UTF-8.
    static func percentDecoded(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// An answer: a status, a content type, a body, and any more headers.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)] = []

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
    }

    public static func json(_ value: JSON.Value, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: JSON.encode(value) + "\n")
    }

    /// An error as JSON: `{"error": "..."}`.
    public static func error(_ status: Int, _ message: String) -> HTTPResponse {
        json(.object([("error", .string(message))]), status: status)
    }

    static let reasons = [200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                          405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
                          431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"]

    /// The bytes on the wire; every answer closes its connection.
    public var bytes: [UInt8] { bytes(withBody: true) }

    /// The head alone answers a HEAD: the same headers (Content-Length included), no body.
    public func bytes(withBody: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reasons[status] ?? "Status")\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        head += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8) + (withBody ? body : [])
    }
}

/// A small HTTP server on one thread: it polls its listening socket and its clients, reads
/// each request within `requestSeconds` (a slow client gets 408 and the others are served
/// meanwhile), answers it with `handle`, and closes. At `maximumClients` a new connection
/// pushes out the one that has waited longest without a request. It stops on SIGINT,
/// SIGTERM or SIGHUP.
public struct HTTPServer {
    public var socket: ListeningSocket
    public var signals: SignalReceiver
    public var requestSeconds = 5.0
    public var maximumClients = 64

    public init(socket: ListeningSocket, signals: SignalReceiver) {
        self.socket = socket
        self.signals = signals
    }

    struct Client {
        var descriptor: FileDescriptor
        var buffer: [UInt8] = []
        var deadline: Int64
    }

    @available(*, noasync)
    public func run(_ handle: (HTTPRequest) -> HTTPResponse) {
        var clients: [Client] = []
        func answer(_ client: Client, _ response: HTTPResponse, withBody: Bool = true) {
            try? client.descriptor.writeAll(response.bytes(withBody: withBody))
            client.descriptor.close()
        }
        while true {
            let now = Clock.monotonicNanoseconds()
            // Whoever has not sent a whole request in time is answered 408 and let go.
            clients.removeAll { client in
                guard client.deadline <= now else { return false }
                answer(client, .error(408, "the request did not arrive within \(formatDuration(requestSeconds))"))
                return true
            }
            let wake = clients.map(\.deadline).min().map { Int32(clamping: max(0, $0 - now) / 1_000_000 + 1) } ?? -1
            let ready = Poll.readable([signals.descriptor, socket.descriptor] + clients.map(\.descriptor), timeoutMilliseconds: wake)
            if ready.contains(0), signals.drain().contains(where: { [.interrupt, .terminate, .hangup].contains($0.signal) }) {
                for client in clients { client.descriptor.close() }
                return
            }
            var finished = Set<Int>()
            for index in ready where index >= 2 {
                let slot = index - 2
                let chunk = (try? clients[slot].descriptor.read(upTo: 16384)) ?? []
                if chunk.isEmpty {
                    clients[slot].descriptor.close()
                    finished.insert(slot)
                    continue
                }
                clients[slot].buffer += chunk
                switch HTTPRequest.parse(clients[slot].buffer) {
                case .incomplete: continue
                case .refuse(let status, let why): answer(clients[slot], .error(status, why))
                case .complete(let request): answer(clients[slot], handle(request), withBody: request.method != "HEAD")
                }
                finished.insert(slot)
            }
            clients = clients.enumerated().filter { !finished.contains($0.offset) }.map(\.element)
            if ready.contains(1), let descriptor = socket.accept(timeoutMilliseconds: Int(requestSeconds * 1000)) {
                let client = Client(descriptor: descriptor, deadline: Clock.monotonicNanoseconds() + Int64(requestSeconds * 1e9))
                // Full: the connection that has waited longest without a whole request is let
                // go, never the new one. A client that keeps many idle connections open only
                // pushes out its own; a real request, which arrives at once, is served.
                if clients.count >= maximumClients, let oldest = clients.indices.min(by: { clients[$0].deadline < clients[$1].deadline }) {
                    answer(clients.remove(at: oldest), .error(503, "too many connections: this one waited longest without a request"))
                }
                clients.append(client)
            }
        }
    }
}
