import Glibc
@testable import SeqSystem
import Testing

@Suite struct TCPListenersTests {
    /// A socket of this process listening on loopback, on a port the kernel picks.
    func listen() throws -> (fd: Int32, port: Int) {
        // Close-on-exec: a process another test starts meanwhile must not keep it open.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, size) == 0 && Glibc.listen(fd, 1) == 0 && getsockname(fd, pointer, &size) == 0
            }
        }
        try #require(bound)
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test func findsAListenerAndTheProcessHoldingIt() throws {
        let (fd, port) = try listen()
        let sockets = TCPListeners.sockets(port: port)
        #expect(sockets.count == 1)
        #expect(sockets.first?.address == "127.0.0.1")
        #expect(TCPListeners.holders(of: sockets).map(\.pid).contains(getpid()))
        close(fd)
        // Closed: nobody listens there now.
        #expect(TCPListeners.sockets(port: port).isEmpty)
        #expect(TCPListeners.holders(of: []).isEmpty)
    }

    @Test func printsTheKernelsAddressesReadably() {
        #expect(TCPListeners.addressText("0100007F") == "127.0.0.1")
        #expect(TCPListeners.addressText("00000000") == "0.0.0.0")
        #expect(TCPListeners.addressText(String(repeating: "0", count: 32)) == "::")
        #expect(TCPListeners.addressText("00000000000000000000000001000000") == "::1")
    }
}
