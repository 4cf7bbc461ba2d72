import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem

/// One HTTP/1.0 GET, enough for a device server's status endpoint: no TLS, no redirects, no
/// keep-alive. Every step is bounded by one deadline (SeqSystem's TCPExchange carries it).
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
    ///   `http://host[:port]/path`, or the socket call's errno.
    /// GETs `url` within `timeoutMilliseconds`, the name lookup included.
    /// - Parameter cancel: once readable, the probe gives up at once with `.operationCanceled`.
    /// - Throws: `.timedOut` when the deadline passes, `.connectionRefused`, `.hostUnreachable`
    ///   for a name that does not resolve, `.invalidArgument` for a URL that is not
    ///   `http://host[:port]/path` or a reply that is not HTTP, or the socket call's errno.
    @available(*, noasync)
    public static func get(_ url: String, timeoutMilliseconds: Int, cancel: FileDescriptor? = nil) throws(Errno) -> Response {
        guard let (host, port, path) = parse(url) else { throw .invalidArgument }
        let hostHeader = host.contains(":") ? "[\(host)]" : host
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(hostHeader)\r\nConnection: close\r\n\r\n".utf8)
        let reply = try TCPExchange.run(host: host, port: port, request: request, timeoutMilliseconds: timeoutMilliseconds, cancel: cancel)
        return try response(reply)
    }

    /// The status and body of an HTTP reply.
    static func response(_ reply: [UInt8]) throws(Errno) -> Response {
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
