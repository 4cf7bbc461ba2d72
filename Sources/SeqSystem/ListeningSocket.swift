import CSeqSystem
import Glibc

/// A TCP socket listening on one address (IPv4, or IPv6 when the host has a colon), for a
/// small server that polls it with its clients (`seqpipe serve`). No protocol here.
public struct ListeningSocket: Sendable {
    public let descriptor: FileDescriptor
    /// The port it listens on (the one the kernel picked, for port 0).
    public let port: Int

    /// Binds `host`:`port` (`SO_REUSEADDR`, close-on-exec) and listens.
    /// - Throws: the errno of the failed call (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, …).
    public static func open(host: String, port: Int) throws(Errno) -> ListeningSocket {
        let family = host.contains(":") ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno.current }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        /// Binds `address`, listens, and reads back the port bound (for port 0).
        func bindAndListen<Address>(_ address: inout Address, port: (Address) -> UInt16) -> (Int32, Int) {
            var size = socklen_t(MemoryLayout<Address>.size)
            let rc = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    guard bind(fd, socketAddress, size) == 0, listen(fd, 64) == 0 else { return Int32(-1) }
                    return getsockname(fd, socketAddress, &size)
                }
            }
            return (rc, Int(UInt16(bigEndian: port(address))))
        }
        let bound: Int32
        let actual: Int
        if family == AF_INET {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                close(fd)
                throw Errno(rawValue: EINVAL)
            }
            (bound, actual) = bindAndListen(&address) { $0.sin_port }
        } else {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            let plain = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            guard inet_pton(AF_INET6, plain, &address.sin6_addr) == 1 else {
                close(fd)
                throw Errno(rawValue: EINVAL)
            }
            (bound, actual) = bindAndListen(&address) { $0.sin6_port }
        }
        guard bound == 0 else {
            let error = Errno.current
            close(fd)
            throw error
        }
        return ListeningSocket(descriptor: FileDescriptor(rawValue: fd), port: actual)
    }

    /// One waiting connection (close-on-exec), with `timeoutMilliseconds` for each of its reads
    /// and writes, so a client that stops reading or writing cannot hold the server. Nil when
    /// none was waiting or it went away.
    public func accept(timeoutMilliseconds: Int) -> FileDescriptor? {
        let fd = Glibc.accept(descriptor.rawValue, nil, nil)
        guard fd >= 0 else { return nil }
        _ = cseq_fd_set_cloexec(fd)
        var limit = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return FileDescriptor(rawValue: fd)
    }

    /// Whether `host` is a loopback address (127.0.0.0/8 or ::1).
    public static func isLoopback(_ host: String) -> Bool {
        host.hasPrefix("127.") || host == "::1" || host == "[::1]" || host == "localhost"
    }
}
