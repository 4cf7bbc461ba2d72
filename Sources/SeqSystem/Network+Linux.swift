import CSeqSystem
import Glibc

/// One HTTP/1.0 GET over TCP, enough for a device server's status endpoint: no TLS, no
/// redirects, no keep-alive. Every step is bounded by one deadline.
public enum HTTPProbe {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// `http://host:port/path` split (an IPv6 address in brackets: `http://[::1]:4723/`);
    /// nil for anything else.
    public static func parse(_ url: String) -> (host: String, port: UInt16, path: String)? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
            guard host.contains(":") else { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        var port: UInt16 = 80
        if let portText {
            guard let number = UInt16(portText) else { return nil }
            port = number
        }
        guard !host.isEmpty else { return nil }
        return (String(host), port, path)
    }

    /// GETs `url` within `timeoutMilliseconds`, the name lookup included. Each address of
    /// the host is tried in turn (a `localhost` whose first address is ::1 still reaches a
    /// server that listens on 127.0.0.1 only).
    /// - Parameter cancel: once readable, the probe gives up at once with `.operationCanceled`.
    /// - Throws: `.timedOut` when the deadline passes, `.connectionRefused`, `.hostUnreachable`
    ///   for a name that does not resolve, `.invalidArgument` for a URL that is not
    ///   `http://host[:port]/path`, or the socket call's errno.
    @available(*, noasync)
    public static func get(_ url: String, timeoutMilliseconds: Int, cancel: FileDescriptor? = nil) throws(Errno) -> Response {
        guard let (host, port, path) = parse(url) else { throw .invalidArgument }
        let deadline = Clock.monotonicNanoseconds() + Int64(timeoutMilliseconds) * 1_000_000
        func left() throws(Errno) -> Int32 {
            let rest = (deadline - Clock.monotonicNanoseconds()) / 1_000_000
            if rest <= 0 { throw .timedOut }
            return Int32(clamping: rest)
        }
        /// Waits for `events` on `fd`, or the cancel descriptor, within the deadline.
        func waitFor(_ fd: Int32, _ events: Int32) throws(Errno) {
            var entries = [pollfd(fd: fd, events: Int16(events), revents: 0)]
            if let cancel { entries.append(pollfd(fd: cancel.rawValue, events: Int16(POLLIN), revents: 0)) }
            while true {
                let n = poll(&entries, nfds_t(entries.count), try left())
                if n > 0 {
                    if entries.count > 1 && entries[1].revents != 0 { throw .operationCanceled }
                    return
                }
                if n == 0 { throw .timedOut }
                if Errno.current != .interrupted { throw Errno.current }
            }
        }
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = cseq_resolve(host, String(port), try left(), &list)
        if resolved == 1 { throw .timedOut }
        guard resolved == 0, list != nil else { throw .hostUnreachable }
        defer { freeaddrinfo(list) }
        var connected: FileDescriptor?
        var lastError = Errno.hostUnreachable
        var address = list
        while let entry = address, connected == nil {
            address = entry.pointee.ai_next
            let fd = socket(entry.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if fd < 0 { lastError = Errno.current; continue }
            let candidate = FileDescriptor(rawValue: fd)
            do throws(Errno) {
                if connect(fd, entry.pointee.ai_addr, entry.pointee.ai_addrlen) != 0 {
                    let error = Errno.current
                    guard error == .inProgress else { throw error }
                    try waitFor(fd, Int32(POLLOUT))
                    var code: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                    if code != 0 { throw Errno(rawValue: code) }
                }
                connected = candidate
            } catch where error == .timedOut || error == .operationCanceled {
                candidate.close()
                throw error
            } catch {
                candidate.close()
                lastError = error
            }
        }
        guard let socketFD = connected else { throw lastError }
        defer { socketFD.close() }
        let fd = socketFD.rawValue
        let hostHeader = host.contains(":") ? "[\(host)]" : host
        var request = Array("GET \(path) HTTP/1.0\r\nHost: \(hostHeader)\r\nConnection: close\r\n\r\n".utf8)
        while !request.isEmpty {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { request.removeFirst(n); continue }
            let error = Errno.current
            guard error == .wouldBlock || error == .interrupted else { throw error }
            try waitFor(fd, Int32(POLLOUT))
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while reply.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { reply += buffer[0..<n]; continue }
            if n == 0 { break }
            let error = Errno.current
            guard error == .wouldBlock || error == .interrupted else { throw error }
            try waitFor(fd, Int32(POLLIN))
        }
        var headerEnd = reply.count
        if reply.count >= 4 {
            for index in 0...(reply.count - 4) where reply[index] == 13 && reply[index + 1] == 10 && reply[index + 2] == 13 && reply[index + 3] == 10 {
                headerEnd = index
                break
            }
        }
        let text = String(decoding: reply[0..<headerEnd], as: UTF8.self)
        // "HTTP/1.1 200 OK"
        let statusLine = text.prefix { $0 != "\r" && $0 != "\n" }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { throw .invalidArgument }
        let body = headerEnd + 4 <= reply.count ? String(decoding: reply[(headerEnd + 4)...], as: UTF8.self) : ""
        return Response(status: status, body: body)
    }
}
