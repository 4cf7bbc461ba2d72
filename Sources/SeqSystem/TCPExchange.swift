import CSeqSystem
import Glibc

/// A TCP exchange: connect, send a request, read the reply until it is complete or the peer
/// closes. The transport under the device health probe (SeqPipeline's HTTPProbe); no
/// protocol here.
public enum TCPExchange {
    /// Sends `request` to `host`:`port` and returns every byte of the reply (at most
    /// `maximumReply`) until `complete` says it is whole, or the peer closes, all within
    /// `timeoutMilliseconds`, the name lookup included. Each
    /// address of the host is tried in turn (a `localhost` whose first address is ::1 still
    /// reaches a server that listens on 127.0.0.1 only).
    /// - Parameter cancel: once readable, the exchange gives up at once with `.operationCanceled`.
    /// - Throws: `.timedOut` when the deadline passes, `.connectionRefused`, `.hostUnreachable`
    ///   for a name that does not resolve, or the socket call's errno.
    @available(*, noasync)
    public static func run(
        host: String, port: UInt16, request: [UInt8], timeoutMilliseconds: Int,
        maximumReply: Int = 1 << 20, cancel: FileDescriptor? = nil, complete: ([UInt8]) -> Bool = { _ in false }
    ) throws(Errno) -> [UInt8] {
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
        var request = request[...]
        while !request.isEmpty {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { request = request.dropFirst(n); continue }
            let error = Errno.current
            guard error == .wouldBlock || error == .interrupted else { throw error }
            try waitFor(fd, Int32(POLLOUT))
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while reply.count < maximumReply {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                reply += buffer[0..<n]
                if complete(reply) { break }
                continue
            }
            if n == 0 { break }
            let error = Errno.current
            guard error == .wouldBlock || error == .interrupted else { throw error }
            try waitFor(fd, Int32(POLLIN))
        }
        return reply
    }
}
