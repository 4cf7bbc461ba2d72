import CSeqSystem
import Glibc

/// One HTTP/1.0 GET over TCP, enough for a device server's status endpoint: no TLS, no
/// redirects, no keep-alive. Every step is bounded by one deadline.
public enum HTTPProbe {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// `http://host:port/path` split; nil for anything else.
    public static func parse(_ url: String) -> (host: String, port: UInt16, path: String)? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = Substring(authority)
        var port: UInt16 = 80
        if let colon = authority.lastIndex(of: ":") {
            guard let number = UInt16(authority[authority.index(after: colon)...]) else { return nil }
            port = number
            host = authority[..<colon]
        }
        guard !host.isEmpty else { return nil }
        return (String(host), port, path)
    }

    /// GETs `url` within `timeoutMilliseconds`.
    /// - Throws: `.timedOut` when the deadline passes, `.connectionRefused`, `.invalidArgument`
    ///   for a URL that is not `http://host[:port]/path`, or the socket call's errno.
    @available(*, noasync)
    public static func get(_ url: String, timeoutMilliseconds: Int) throws(Errno) -> Response {
        guard let (host, port, path) = parse(url) else { throw .invalidArgument }
        let deadline = Clock.monotonicNanoseconds() + Int64(timeoutMilliseconds) * 1_000_000
        func left() throws(Errno) -> Int32 {
            let rest = (deadline - Clock.monotonicNanoseconds()) / 1_000_000
            if rest <= 0 { throw .timedOut }
            return Int32(clamping: rest)
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { throw .hostUnreachable }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 { throw Errno.current }
        let socketFD = FileDescriptor(rawValue: fd)
        defer { socketFD.close() }
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            let error = Errno.current
            guard error == .inProgress else { throw error }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                let n = poll(&entry, 1, try left())
                if n > 0 { break }
                if n == 0 { throw .timedOut }
                if Errno.current != .interrupted { throw Errno.current }
            }
            var code: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
            if code != 0 { throw Errno(rawValue: code) }
        }
        var request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        while !request.isEmpty {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { request.removeFirst(n); continue }
            let error = Errno.current
            guard error == .wouldBlock || error == .interrupted else { throw error }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, try left())
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while reply.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { reply += buffer[0..<n]; continue }
            if n == 0 { break }
            let error = Errno.current
            guard error == .wouldBlock || error == .interrupted else { throw error }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&entry, 1, try left()) == 0 { throw .timedOut }
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
