import Synchronization
import CSeqSystem
import Glibc

/// A process as the kernel knows it: pid plus start time (clock ticks since boot).
/// A pid alone is never an identity; pids are reused.
public struct ProcessIdentity: Hashable, Sendable, CustomStringConvertible {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// This process.
    public static func current() -> ProcessIdentity {
        let pid = getpid()
        // Read once per process: a forked child has another pid, so it reads its own.
        if let cached = currentCache.withLock({ $0 }), cached.pid == pid { return cached }
        let identity = ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
        if identity.startTime != 0 { currentCache.withLock { $0 = identity } }
        return identity
    }

    private static let currentCache = Mutex<ProcessIdentity?>(nil)

    /// True while the same process (not a reuse of its pid) is alive and not a zombie.
    public var isAlive: Bool {
        guard let stat = try? ProcStat.read(pid) else { return false }
        return stat.startTime == startTime && stat.state != "Z" && stat.state != "X"
    }

    public var description: String { "\(pid)@\(startTime)" }
}

/// The fields of /proc/PID/stat that this toolkit reads.
public struct ProcStat: Sendable, Equatable {
    public var pid: Int32
    public var command: String
    public var state: Character
    public var parent: Int32
    public var processGroup: Int32
    public var startTime: UInt64
    public var residentPages: Int64

    /// Reads /proc/PID/stat.
    /// - Throws: `Errno.noSuchFile` once the process is gone.
    public static func read(_ pid: Int32) throws(Errno) -> ProcStat {
        let bytes = try FileSystem.readFile("/proc/\(pid)/stat")
        guard let stat = parse(bytes) else { throw Errno.noSuchFile }
        return stat
    }

    /// Parses the stat line. The command sits in parentheses and may itself contain spaces
    /// and parentheses, so the fields after it are found from the last `)`.
    public static func parse(_ bytes: [UInt8]) -> ProcStat? {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close,
              let pid = Self.number(bytes[..<open]).flatMap({ Int32(exactly: $0) })
        else { return nil }
        // Fields by hand, not by split: every /proc scan parses every process's line.
        // After ")": field 3 (state), 4 (ppid), 5 (pgrp), ... 22 (start time), 24 (rss).
        var fields: (state: UInt8, parent: Int64, group: Int64, start: Int64, rss: Int64) = (0, -1, -1, -1, -1)
        var field = 2
        var index = close + 1
        let end = bytes.endIndex
        while index < end, field < 24 {
            while index < end, bytes[index] == UInt8(ascii: " ") { index += 1 }
            guard index < end else { break }
            var stop = index
            while stop < end, bytes[stop] != UInt8(ascii: " "), bytes[stop] != UInt8(ascii: "\n") { stop += 1 }
            field += 1
            switch field {
            case 3: fields.state = bytes[index]
            case 4: fields.parent = Self.number(bytes[index..<stop]) ?? -1
            case 5: fields.group = Self.number(bytes[index..<stop]) ?? -1
            case 22: fields.start = Self.number(bytes[index..<stop]) ?? -1
            case 24: fields.rss = Self.number(bytes[index..<stop]) ?? -1
            default: break
            }
            index = stop
        }
        guard field == 24, fields.state != 0, fields.start >= 0,
              let parent = Int32(exactly: fields.parent), parent >= 0,
              let group = Int32(exactly: fields.group), group >= 0, fields.rss >= 0
        else { return nil }
        let command = String(decoding: bytes[(open + 1)..<close], as: UTF8.self)
        return ProcStat(
            pid: pid, command: command, state: Character(UnicodeScalar(fields.state)),
            parent: parent, processGroup: group, startTime: UInt64(fields.start), residentPages: fields.rss)
    }

    /// A decimal field, optionally negative and space-padded; nil if it is not one or overflows.
    static func number(_ bytes: ArraySlice<UInt8>) -> Int64? {
        var index = bytes.startIndex
        while index < bytes.endIndex, bytes[index] == UInt8(ascii: " ") { index += 1 }
        var negative = false
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        var value: Int64 = 0
        var digits = 0
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: " ") {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10, digits < 18 else { return nil }
            value = value * 10 + Int64(digit)
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }

    public var identity: ProcessIdentity { ProcessIdentity(pid: pid, startTime: startTime) }
}

/// Process-level calls: listing, signalling, identity.
public enum Processes {
    /// Every process's stat line. This kernel may lack /proc/PID/task/TID/children, so a tree
    /// is found from parent links over all of /proc.
    public static func all() -> [ProcStat] {
        guard let names = try? FileSystem.contents(ofDirectory: "/proc") else { return [] }
        var result: [ProcStat] = []
        result.reserveCapacity(names.count)
        for name in names {
            guard let first = name.utf8.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9"),
                  let pid = Int32(name), let stat = try? ProcStat.read(pid) else { continue }
            result.append(stat)
        }
        return result
    }

    /// All live descendants of the given roots (not the roots themselves), deepest first.
    /// Without a table, where the kernel has children files, only the tree's own processes
    /// are read; otherwise every process's stat is. A process in `sparing` is left out with
    /// its whole subtree (a worker's device server, which outlives the worker's steps).
    public static func descendants(of roots: Set<Int32>, in table: [ProcStat]? = nil, sparing: Set<Int32> = []) -> [ProcStat] {
        if table == nil && hasChildrenFiles { return walkChildrenFiles(from: roots, sparing: sparing) }
        let table = table ?? all()
        var children: [Int32: [ProcStat]] = [:]
        for stat in table where stat.state != "Z" {
            children[stat.parent, default: []].append(stat)
        }
        var found: [ProcStat] = []
        var frontier = Array(roots)
        var seen = roots.union(sparing)
        while let pid = frontier.popLast() {
            for child in children[pid] ?? [] where !seen.contains(child.pid) {
                seen.insert(child.pid)
                found.append(child)
                frontier.append(child.pid)
            }
        }
        return found.reversed()
    }

    /// Sends `signal` to exactly `identity`: through a pidfd checked against the start time,
    /// so a reused pid is never hit. Returns false if that process is already gone.
    @discardableResult
    public static func signal(_ identity: ProcessIdentity, _ signal: Signal) -> Bool {
        let pidfd = cseq_pidfd_open(identity.pid)
        if pidfd >= 0 {
            defer { Glibc.close(pidfd) }
            // The pidfd pins this process; if its start time matches now, it is the one we mean.
            guard let stat = try? ProcStat.read(identity.pid), stat.startTime == identity.startTime
            else { return false }
            return cseq_pidfd_send_signal(pidfd, signal.rawValue) == 0
        }
        // No pidfd (old kernel): check, then kill, accepting the narrow window between them.
        guard identity.isAlive else { return false }
        return kill(identity.pid, signal.rawValue) == 0
    }

    /// kill(2) for our own unreaped child, whose pid cannot be reused until we reap it.
    @discardableResult
    public static func signalChild(_ pid: Int32, _ signal: Signal) -> Bool {
        kill(pid, signal.rawValue) == 0
    }

    /// A pidfd for `identity`, readable once it exits; nil if it is gone or pidfds are missing.
    public static func openPidfd(_ identity: ProcessIdentity) -> FileDescriptor? {
        let raw = cseq_pidfd_open(identity.pid)
        guard raw >= 0 else { return nil }
        guard let stat = try? ProcStat.read(identity.pid), stat.startTime == identity.startTime else {
            Glibc.close(raw)
            return nil
        }
        _ = fcntl(raw, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(rawValue: raw)
    }

    /// Processes (readable by this user) with a descriptor open on the file `device`/`inode`:
    /// the ones keeping a lock file's flock alive. With `lockedOnly`, only those whose
    /// descriptor holds a flock on it (its /proc fdinfo shows the lock): a process that only
    /// has the file open, to look at it, is left out.
    public static func holding(device: UInt64, inode: UInt64, lockedOnly: Bool = false) -> [ProcessIdentity] {
        guard let names = try? FileSystem.contents(ofDirectory: "/proc") else { return [] }
        var result: [ProcessIdentity] = []
        for name in names {
            guard let pid = Int32(name), let fds = try? FileSystem.contents(ofDirectory: "/proc/\(pid)/fd") else { continue }
            for fd in fds {
                var st = stat()
                guard fstatat(AT_FDCWD, "/proc/\(pid)/fd/\(fd)", &st, 0) == 0,
                      UInt64(st.st_dev) == device, UInt64(st.st_ino) == inode else { continue }
                if lockedOnly {
                    guard let info = try? FileSystem.readFile("/proc/\(pid)/fdinfo/\(fd)"),
                          String(decoding: info, as: UTF8.self).split(separator: "\n").contains(where: { $0.hasPrefix("lock:") && $0.contains("FLOCK") })
                    else { continue }
                }
                if let stat = try? ProcStat.read(pid), stat.state != "Z" { result.append(stat.identity) }
                break
            }
        }
        return result
    }

    /// A pidfd for this process's parent, if it is still `expected`: readable once the parent
    /// exits (a worker's lifeline to its orchestrator). Nil when the parent is already another
    /// process (this one was reparented) or pidfds are missing.
    public static func parentPidfd(expected: Int32) -> FileDescriptor? {
        let raw = cseq_pidfd_open(expected)
        guard raw >= 0 else { return nil }
        // Opened first, checked second: if the parent is still ours now, the pidfd is it.
        guard getppid() == expected else {
            Glibc.close(raw)
            return nil
        }
        _ = fcntl(raw, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(rawValue: raw)
    }

    /// fork(2): 0 in the child, the child's pid in the parent.
    /// - Important: only the calling thread goes on in the child.
    public static func fork() throws(Errno) -> Int32 {
        try valueOrErrno(retryOnInterrupt: false) { Glibc.fork() }
    }

    /// Makes this process a child subreaper: orphaned descendants are reparented to it.
    public static func becomeChildSubreaper() throws(Errno) {
        _ = try valueOrErrno { cseq_set_child_subreaper() }
    }

    /// Asks the kernel to send `signal` to this process when its parent thread ends.
    public static func setParentDeathSignal(_ signal: Signal?) throws(Errno) {
        _ = try valueOrErrno { cseq_set_parent_death_signal(signal?.rawValue ?? 0) }
    }

    public static var currentPid: Int32 { getpid() }

    /// setsid(2): this process leads a new session and process group, with no terminal, so
    /// nothing its caller's session or terminal does (a hang-up, a kill of the group) reaches it.
    public static func startSession() throws(Errno) {
        _ = try valueOrErrno { setsid() }
    }

    /// The soft limit on open descriptors (RLIMIT_NOFILE).
    public static var openFileLimit: UInt64 {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return UInt64.max }
        return UInt64(limit.rlim_cur)
    }
    public static var parentPid: Int32 { getppid() }
    public static var userID: UInt32 { getuid() }

    /// This process's pid namespace, as the kernel names it (the inode of /proc/self/ns/pid);
    /// nil where it cannot be read. Pids are only meaningful within one. Read once: a
    /// process stays in the namespace it started in.
    public static let pidNamespace: UInt64? = {
        var info = stat()
        guard fstatat(AT_FDCWD, "/proc/self/ns/pid", &info, 0) == 0 else { return nil }
        return UInt64(info.st_ino)
    }()

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Random bytes as lowercase hex (tokens that tie a nested call to its holder).
    public static func randomHex(bytes count: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress! + filled, count - filled, 0) }
            if n > 0 { filled += n } else if Errno.current != .interrupted { break }
        }
        // Digits by hand: String(_:radix:) and joined() are generic calls, on every start.
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(count * 2)
        for byte in bytes {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}

extension Processes {
    /// argv of `pid` (/proc/PID/cmdline), or nil if it is gone or unreadable.
    public static func commandLine(_ pid: Int32) -> [String]? {
        guard let bytes = try? FileSystem.readFile("/proc/\(pid)/cmdline"), !bytes.isEmpty else { return nil }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast(bytes.last == 0 ? 1 : 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }
}
