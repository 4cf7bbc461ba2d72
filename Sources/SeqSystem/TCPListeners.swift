/// Who listens on a TCP port on this machine, asked of the kernel: the listening sockets in
/// /proc/net/tcp and tcp6, and the processes holding them open (their /proc/PID/fd links).
/// A device server's port is checked with it before the server starts, so a clash is named
/// with its holder rather than found as a server that dies at once.
public enum TCPListeners {
    /// A listening socket: its inode, and the address it is bound to as the kernel prints it.
    public struct Socket: Hashable, Sendable {
        public var inode: UInt64
        /// "127.0.0.1", "0.0.0.0", "::", "::1", or the hex form of another address.
        public var address: String
    }

    /// The sockets in the LISTEN state on `port`, IPv4 and IPv6, in this network namespace.
    public static func sockets(port: Int) -> [Socket] {
        var found: [Socket] = []
        for (table, width) in [("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)] {
            guard let bytes = try? FileSystem.readFile(table) else { continue }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
                guard fields.count > 9, fields[3] == "0A" else { continue }
                let local = fields[1].split(separator: ":")
                guard local.count == 2, local[0].count == width, Int(local[1], radix: 16) == port,
                      let inode = UInt64(fields[9]), inode != 0 else { continue }
                found.append(Socket(inode: inode, address: addressText(String(local[0]))))
            }
        }
        return found
    }

    /// The processes that hold one of `sockets` open, where this user may read their
    /// descriptors (another user's process stays unnamed unless we are root).
    public static func holders(of sockets: [Socket]) -> [ProcStat] {
        guard !sockets.isEmpty else { return [] }
        let wanted = Set(sockets.map { "socket:[\($0.inode)]" })
        var holders: [ProcStat] = []
        guard let names = try? FileSystem.contents(ofDirectory: "/proc") else { return [] }
        for name in names {
            guard let pid = Int32(name), let fds = try? FileSystem.contents(ofDirectory: "/proc/\(pid)/fd") else { continue }
            for fd in fds {
                guard let target = try? FileSystem.readLink("/proc/\(pid)/fd/\(fd)"), wanted.contains(target) else { continue }
                if let stat = try? ProcStat.read(pid) { holders.append(stat) }
                break
            }
        }
        return holders.sorted { $0.pid < $1.pid }
    }

    /// The kernel's hex address as text: IPv4 in dotted form, the common IPv6 ones by name.
    static func addressText(_ hex: String) -> String {
        if hex.count == 8, let value = UInt32(hex, radix: 16) {
            // Stored in network order, printed as a host-order (little-endian) word.
            return "\(value & 0xFF).\((value >> 8) & 0xFF).\((value >> 16) & 0xFF).\(value >> 24)"
        }
        if hex == String(repeating: "0", count: 32) { return "::" }
        if hex == String(repeating: "0", count: 24) + "01000000" { return "::1" }
        return hex
    }
}
