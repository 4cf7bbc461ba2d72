import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem

/// One HTTP/1.1 GET, enough for a device server's status endpoint (chromedriver, Appium,
/// Selenium Grid, a plain nginx): `Host` and `Connection: close` sent; the reply read as far as
/// its framing says (a `Content-Length` body, a chunked one, or to the end when it has
/// neither), so a server that keeps the connection open anyway still answers at once. No TLS,
/// no redirects. Every step is bounded by one deadline (SeqSystem's TCPExchange carries it).
public enum HTTPProbe {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// `http://host:port/path` split; nil for anything else (see `HTTPURL`).
    public static func parse(_ url: String) -> (host: String, port: UInt16, path: String)? { HTTPURL.parse(url) }

    /// GETs `url` within `timeoutMilliseconds`, the name lookup included. Each address of
    /// the host is tried in turn (a `localhost` whose first address is ::1 still reaches a
    /// server that listens on 127.0.0.1 only).
    /// - Parameter cancel: once readable, the probe gives up at once with `.operationCanceled`.
    /// - Throws: `.timedOut` when the deadline passes, `.connectionRefused`, `.hostUnreachable`
    ///   for a name that does not resolve, `.invalidArgument` for a URL that is not
    ///   `http://host[:port]/path` or a reply that is not HTTP, or the socket call's errno.
    @available(*, noasync)
    public static func get(_ url: String, timeoutMilliseconds: Int, cancel: FileDescriptor? = nil) throws(Errno) -> Response {
        guard let (host, port, path) = parse(url) else { throw .invalidArgument }
        let hostHeader = (host.contains(":") ? "[\(host)]" : host) + (port == 80 ? "" : ":\(port)")
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: seqpipe\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
        let reply = try TCPExchange.run(host: host, port: port, request: request, timeoutMilliseconds: timeoutMilliseconds, cancel: cancel,
                                        complete: { framedBody($0) != nil })
        return try response(reply)
    }

    /// A reply's status line and header: its status, its header fields (names in lower case)
    /// and where its body starts; nil until the blank line that ends the header has come.
    static func head(_ reply: [UInt8]) -> (status: Int, fields: [String: String], bodyStart: Int)? {
        guard reply.count >= 4, let end = (0...(reply.count - 4)).first(where: {
            reply[$0] == 13 && reply[$0 + 1] == 10 && reply[$0 + 2] == 13 && reply[$0 + 3] == 10
        }) else { return nil }
        let lines = String(decoding: reply[0..<end], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        // "HTTP/1.1 200 OK"
        let parts = (lines.first ?? "").split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { return (0, [:], end + 4) }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].filter { $0 != " " && $0 != "\t" })
        }
        return (status, fields, end + 4)
    }

    /// The body of a reply that holds all of it by its framing: `Content-Length` bytes, or a
    /// chunked body to its last chunk (and the empty line after the trailer). Nil while more
    /// is to come, and for a body that runs to the end of the connection (no framing).
    static func framedBody(_ reply: [UInt8]) -> [UInt8]? {
        guard let (status, fields, start) = head(reply) else { return nil }
        if status == 204 || status == 304 || (100..<200).contains(status) { return [] }
        if fields["transfer-encoding"]?.lowercased().contains("chunked") == true { return dechunked(reply[start...]) }
        if let length = fields["content-length"].flatMap({ Int($0) }) {
            return reply.count - start >= length ? Array(reply[start..<(start + length)]) : nil
        }
        return nil
    }

    /// A chunked body decoded: each chunk is its size in hex (extensions after `;` ignored),
    /// CRLF, the bytes, CRLF; a chunk of size 0 ends it, then trailer lines and an empty one.
    /// Nil until all of it has come.
    static func dechunked(_ data: ArraySlice<UInt8>) -> [UInt8]? {
        var body: [UInt8] = []
        var at = data.startIndex
        func line() -> Substring? {
            guard let end = (at..<max(at, data.endIndex - 1)).first(where: { data[$0] == 13 && data[$0 + 1] == 10 }) else { return nil }
            defer { at = end + 2 }
            return Substring(String(decoding: data[at..<end], as: UTF8.self))
        }
        while true {
            guard let sizeLine = line() else { return nil }
            guard let size = Int((sizeLine.split(separator: ";").first ?? "").filter { $0 != " " && $0 != "\t" }, radix: 16), size >= 0 else { return body }
            if size == 0 {
                // The trailer: header lines up to an empty one.
                while let trailer = line() { if trailer.isEmpty { return body } }
                return nil
            }
            guard data.endIndex - at >= size + 2 else { return nil }
            body += data[at..<(at + size)]
            at += size + 2
        }
    }

    /// The status and body of an HTTP reply (the body as framed; all that came, without framing).
    static func response(_ reply: [UInt8]) throws(Errno) -> Response {
        guard let (status, fields, start) = head(reply) ?? headerless(reply), status > 0 else { throw .invalidArgument }
        let chunked = fields["transfer-encoding"]?.lowercased().contains("chunked") == true
        let body = framedBody(reply) ?? (chunked ? [] : Array(reply[min(start, reply.count)...]))
        return Response(status: status, body: String(decoding: body, as: UTF8.self))
    }

    /// A reply cut off inside its header (the peer closed): its status line alone, if it has one.
    static func headerless(_ reply: [UInt8]) -> (status: Int, fields: [String: String], bodyStart: Int)? {
        let parts = String(decoding: reply.prefix(256), as: UTF8.self).prefix { $0 != "\r" && $0 != "\n" }.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { return nil }
        return (status, [:], reply.count)
    }
}
