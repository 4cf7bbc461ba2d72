import CSeqSystem
import Glibc

/// An open file descriptor. Closing is explicit: lock files must stay open exactly as long as
/// the code says, not as long as a value happens to live.
public struct FileDescriptor: Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: 0)
    public static let standardOutput = FileDescriptor(rawValue: 1)
    public static let standardError = FileDescriptor(rawValue: 2)

    /// The width of the terminal this descriptor is, in columns; nil when it is none.
    public var terminalColumns: Int? {
        let columns = cseq_terminal_columns(rawValue)
        return columns > 0 ? Int(columns) : nil
    }

    /// Opens /dev/null on each of 0, 1 and 2 that is closed, lowest first, before anything
    /// else is opened: otherwise the next file opened (a lock's owner record, a status pipe)
    /// would take that number, and the command's output, or our own errors, would go into it.
    /// Three fcntl(2) calls when all are open.
    public static func makeStandardDescriptorsValid() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && Errno.current == .badFileDescriptor {
            // open(2) answers the lowest free number, which is this one: the lower are valid.
            let opened = Glibc.open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if opened >= 0 && opened != fd { _ = Glibc.close(opened) }
        }
    }

    /// Closes the descriptor. Never retried on EINTR: on Linux the descriptor is gone anyway,
    /// and a retry could close a descriptor another thread just opened.
    public func close() {
        let result = Glibc.close(rawValue)
        if result == -1 {
            let error = Errno.current
            precondition(error != .badFileDescriptor, "close of a descriptor that was not open")
        }
    }

    /// Reads up to `count` bytes; an empty result means end of file.
    public func read(upTo count: Int) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try valueOrErrno { buffer.withUnsafeMutableBytes { raw in Glibc.read(rawValue, raw.baseAddress, count) } }
        buffer.removeLast(count - n)
        return buffer
    }

    /// Reads everything up to end of file, into one buffer that doubles as needed: /proc
    /// files are read by the hundred per memory sample, so no large buffer per read.
    public func readAll() throws(Errno) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: 4096)
        var filled = 0
        while true {
            if filled == result.count { result.append(contentsOf: repeatElement(0, count: result.count)) }
            let n = try valueOrErrno {
                result.withUnsafeMutableBytes { raw in Glibc.read(rawValue, raw.baseAddress! + filled, raw.count - filled) }
            }
            if n == 0 { break }
            filled += n
        }
        result.removeLast(result.count - filled)
        return result
    }

    /// Writes all of `bytes`, continuing after short writes.
    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let n = try valueOrErrno {
                bytes.withUnsafeBytes { raw in Glibc.write(rawValue, raw.baseAddress! + offset, bytes.count - offset) }
            }
            offset += n
        }
    }

    public func writeAll(_ text: String) throws(Errno) { try writeAll(Array(text.utf8)) }

    /// Replaces the file's whole content (for small records rewritten in place).
    public func replaceContents(_ text: String) throws(Errno) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = try valueOrErrno {
                bytes.withUnsafeBytes { raw in pwrite(rawValue, raw.baseAddress! + offset, bytes.count - offset, off_t(offset)) }
            }
            offset += n
        }
        // Truncated after, and only when it was longer: on ext4 a truncation to zero makes the
        // last close flush the file to disk, which every guarded run would wait for.
        var st = stat()
        _ = try valueOrErrno { fstat(rawValue, &st) }
        if st.st_size > off_t(bytes.count) { _ = try valueOrErrno { ftruncate(rawValue, off_t(bytes.count)) } }
    }

    /// Reads the whole file from offset 0, whatever the current position.
    public func readContents() throws(Errno) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let offset = off_t(result.count)
            let n = try valueOrErrno { buffer.withUnsafeMutableBytes { raw in pread(rawValue, raw.baseAddress, raw.count, offset) } }
            if n == 0 { return result }
            result += buffer[0..<n]
        }
    }

    /// The last `maximum` bytes of the file (all of a shorter one), and its size.
    public func readTail(maximum: Int) throws(Errno) -> (bytes: [UInt8], size: Int64) {
        var st = stat()
        _ = try valueOrErrno { fstat(rawValue, &st) }
        let size = Int64(st.st_size)
        let start = max(0, size - Int64(maximum))
        var buffer = [UInt8](repeating: 0, count: Int(size - start))
        var filled = 0
        while filled < buffer.count {
            let n = try valueOrErrno {
                buffer.withUnsafeMutableBytes { raw in pread(rawValue, raw.baseAddress! + filled, raw.count - filled, off_t(start) + off_t(filled)) }
            }
            if n == 0 { break }
            filled += n
        }
        return (Array(buffer[0..<filled]), size)
    }

    /// Gives back the disk blocks of `length` bytes from `offset` (fallocate(2) punching a
    /// hole, the size kept): reads of that range answer zeros. Throws `.notSupported`-like
    /// errnos (EOPNOTSUPP) on filesystems without holes.
    public func releaseRange(offset: Int64, length: Int64) throws(Errno) {
        _ = try valueOrErrno { cseq_punch_hole(rawValue, offset, length) }
    }

    public func status() throws(Errno) -> FileStatus {
        var st = stat()
        _ = try valueOrErrno { fstat(rawValue, &st) }
        return FileStatus(st)
    }

    /// flock(2). Returns false when `nonBlocking` and another descriptor holds a conflicting lock.
    public func lock(exclusive: Bool, nonBlocking: Bool = false) throws(Errno) -> Bool {
        let operation = (exclusive ? LOCK_EX : LOCK_SH) | (nonBlocking ? LOCK_NB : 0)
        do {
            _ = try valueOrErrno { flock(rawValue, operation) }
            return true
        } catch where error == .wouldBlock && nonBlocking {
            return false
        }
    }

    public func unlock() throws(Errno) {
        _ = try valueOrErrno { flock(rawValue, LOCK_UN) }
    }

    /// Clears O_NONBLOCK.
    public func setBlocking() throws(Errno) {
        let flags = try valueOrErrno { cseq_fcntl_getfl(rawValue) }
        _ = try valueOrErrno { cseq_fcntl_setfl(rawValue, flags & ~O_NONBLOCK) }
    }

    /// The same open file moved to the lowest free number at or above `minimum` (else above
    /// stderr), close-on-exec, this number closed: out of the way of a script's `exec 9>file`,
    /// which would otherwise close an inherited lock that landed on its number.
    public func movedUp(atLeast minimum: Int32 = 400) -> FileDescriptor {
        var copy = fcntl(rawValue, F_DUPFD_CLOEXEC, minimum)
        if copy < 0 { copy = fcntl(rawValue, F_DUPFD_CLOEXEC, 10) }
        guard copy >= 0 else { return self }
        Glibc.close(rawValue)
        return FileDescriptor(rawValue: copy)
    }

    /// dup2(2) onto `target` (0, 1 or 2 for a detached process's standard streams); the copy
    /// is inherited across exec.
    public func duplicate(onto target: Int32) throws(Errno) {
        _ = try valueOrErrno { dup2(rawValue, target) }
    }

    /// Lets the descriptor survive exec, so a spawned command inherits it.
    public func clearCloseOnExec() throws(Errno) {
        _ = try valueOrErrno { cseq_fd_clear_cloexec(rawValue) }
    }

    public var isTerminal: Bool { isatty(rawValue) == 1 }

    /// Closes every descriptor above 2 but `keeping`: a process that must hold nothing it
    /// inherited (a submitted run leaving the run that submitted it, whose lock descriptors
    /// would otherwise keep that run's lock held for as long as it lives).
    public static func closeAll(keeping: Set<Int32>) {
        guard let names = try? FileSystem.contents(ofDirectory: "/proc/self/fd") else { return }
        for name in names {
            guard let fd = Int32(name), fd > 2, !keeping.contains(fd) else { continue }
            // The directory listing's own descriptor is already closed by now: EBADF is fine.
            _ = Glibc.close(fd)
        }
    }

    /// Marks every open descriptor above stderr close-on-exec: what a process inherited
    /// (a lock's owner descriptor) then reaches none of the commands it starts.
    public static func closeInheritedOnExec() {
        guard let names = try? FileSystem.contents(ofDirectory: "/proc/self/fd") else { return }
        for name in names {
            if let fd = Int32(name), fd > 2 { _ = cseq_fd_set_cloexec(fd) }
        }
    }
}

/// The fields of stat(2) this toolkit decides on.
public struct FileStatus: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var mode: UInt32
    public var owner: UInt32
    public var size: Int64
    /// Last modification, seconds since the epoch.
    public var modified: Int64
    /// Names the file has (0: deleted, alive only through open descriptors).
    public var links: UInt64

    init(_ st: stat) {
        modified = Int64(st.st_mtim.tv_sec)
        links = UInt64(st.st_nlink)
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        mode = UInt32(st.st_mode)
        owner = UInt32(st.st_uid)
        size = Int64(st.st_size)
    }

    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    public var isSymlink: Bool { mode & 0o170000 == 0o120000 }
    public var isRegularFile: Bool { mode & 0o170000 == 0o100000 }
    /// What kind of file it is, in words: "FIFO", "socket", "directory", ...
    public var kind: String {
        switch mode & 0o170000 {
        case 0o100000: return "regular file"
        case 0o040000: return "directory"
        case 0o120000: return "symlink"
        case 0o010000: return "FIFO"
        case 0o140000: return "socket"
        case 0o020000: return "character device"
        case 0o060000: return "block device"
        default: return "file of unknown type"
        }
    }
    public var permissions: UInt32 { mode & 0o7777 }
    /// Group or others may write it.
    public var isWritableByOthers: Bool { mode & 0o022 != 0 }
}

/// Path-level file operations. Everything inside a state directory goes through the `at`
/// forms with a directory descriptor, so a symlink swapped in mid-way is never followed.
public enum FileSystem {
    /// open(2) with O_CLOEXEC always added: a descriptor reaches a child only on purpose.
    public static func open(
        _ path: String, _ options: OpenOptions, mode: UInt32 = 0o600, relativeTo directory: FileDescriptor? = nil
    ) throws(Errno) -> FileDescriptor {
        let flags = options.rawValue | O_CLOEXEC
        let raw = try valueOrErrno {
            if let directory {
                return cseq_openat(directory.rawValue, path, flags, mode)
            }
            return cseq_open(path, flags, mode)
        }
        return FileDescriptor(rawValue: raw)
    }

    /// Opens a directory without following a symlink in its last component.
    public static func openDirectory(
        _ path: String, relativeTo directory: FileDescriptor? = nil
    ) throws(Errno) -> FileDescriptor {
        try open(path, [.readOnly, .directory, .noFollow], relativeTo: directory)
    }

    public static func makeDirectory(
        _ path: String, mode: UInt32 = 0o700, relativeTo directory: FileDescriptor? = nil
    ) throws(Errno) {
        _ = try valueOrErrno {
            if let directory { return mkdirat(directory.rawValue, path, mode) }
            return mkdir(path, mode)
        }
    }

    /// mkdir -p: each missing directory of `path` made with `mode`; existing ones are fine.
    public static func makeDirectories(_ path: String, mode: UInt32 = 0o755) throws(Errno) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            do { try makeDirectory(prefix, mode: mode) } catch where error == .fileExists {}
        }
    }

    /// lstat(2) (or fstatat with AT_SYMLINK_NOFOLLOW): a symlink is reported as one.
    public static func status(
        _ path: String, relativeTo directory: FileDescriptor? = nil
    ) throws(Errno) -> FileStatus {
        var st = stat()
        _ = try valueOrErrno {
            fstatat(directory?.rawValue ?? AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW)
        }
        return FileStatus(st)
    }

    public static func removeFile(_ path: String, relativeTo directory: FileDescriptor? = nil) throws(Errno) {
        _ = try valueOrErrno { unlinkat(directory?.rawValue ?? AT_FDCWD, path, 0) }
    }

    public static func removeDirectory(_ path: String, relativeTo directory: FileDescriptor? = nil) throws(Errno) {
        _ = try valueOrErrno { unlinkat(directory?.rawValue ?? AT_FDCWD, path, AT_REMOVEDIR) }
    }

    /// rename(2): atomically replaces `to` with `from`, both inside `directory`.
    public static func rename(_ from: String, to: String, relativeTo directory: FileDescriptor) throws(Errno) {
        _ = try valueOrErrno { renameat(directory.rawValue, from, directory.rawValue, to) }
    }

    public static func changeMode(_ path: String, _ mode: UInt32, relativeTo directory: FileDescriptor? = nil) throws(Errno) {
        _ = try valueOrErrno { fchmodat(directory?.rawValue ?? AT_FDCWD, path, mode, 0) }
    }

    /// Names in a directory, without `.` and `..`.
    public static func contents(ofDirectory path: String) throws(Errno) -> [String] {
        let directory = try open(path, [.readOnly, .directory])
        defer { directory.close() }
        return try contents(ofDirectoryAt: directory)
    }

    /// Names in the directory open at `descriptor`, without `.` and `..`.
    public static func contents(ofDirectoryAt descriptor: FileDescriptor) throws(Errno) -> [String] {
        let copy = try valueOrErrno { fcntl(descriptor.rawValue, F_DUPFD_CLOEXEC, 0) }
        guard let dir = fdopendir(copy) else {
            let error = Errno.current
            Glibc.close(copy)
            throw error
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Reads a whole small file (a /proc file, a record).
    public static func readFile(_ path: String, relativeTo directory: FileDescriptor? = nil) throws(Errno) -> [UInt8] {
        let fd = try open(path, [.readOnly, .noFollow], relativeTo: directory)
        defer { fd.close() }
        return try fd.readAll()
    }

    /// Writes `text` as the whole of the file at `path`, created with `mode`; with
    /// `replacing` false, a file already there is an error (`.fileExists`), never overwritten.
    public static func writeFile(_ path: String, _ text: String, mode: UInt32 = 0o644, replacing: Bool = true) throws(Errno) {
        let fd = try open(path, replacing ? [.writeOnly, .create, .truncate] : [.writeOnly, .create, .exclusive], mode: mode)
        defer { fd.close() }
        try fd.writeAll(text)
    }

    /// realpath(3).
    public static func realPath(_ path: String) throws(Errno) -> String {
        guard let resolved = realpath(path, nil) else { throw Errno.current }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    public static func currentDirectory() throws(Errno) -> String {
        guard let cwd = getcwd(nil, 0) else { throw Errno.current }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    /// access(path, X_OK) for an executable search.
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Appends `text` to the file at `path` (created 0644) in one write(2): lines of
    /// concurrent appenders stay whole.
    public static func appendFile(_ path: String, _ text: String, mode: UInt32 = 0o644) throws(Errno) {
        let fd = try open(path, [.writeOnly, .create, .append], mode: mode)
        defer { fd.close() }
        try fd.writeAll(text)
    }

    /// Bytes free to this user on the filesystem holding `path` (statvfs(2)), or nil.
    public static func freeBytes(_ path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Why this process may not write `path`, or nil when it may (access(2) W_OK):
    /// `.readOnlyFileSystem` on a read-only mount, `.permissionDenied` without the right.
    public static func writeRefusal(_ path: String) -> Errno? {
        access(path, W_OK) == 0 ? nil : Errno.current
    }

    /// Whether `path` is a regular file this process may execute (access(2) X_OK).
    public static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && access(path, X_OK) == 0
    }

    /// A pipe whose ends are both close-on-exec and non-blocking on the read side.
    public static func pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [0, 0]
        _ = try valueOrErrno { cseq_pipe_cloexec(&fds) }
        _ = try valueOrErrno { fcntl(fds[0], F_SETFL, O_NONBLOCK) }
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }
}

extension FileSystem {
    /// readlink(2).
    public static func readLink(_ path: String) throws(Errno) -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = try valueOrErrno { readlink(path, &buffer, 4096) }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension FileSystem {
    /// Names in a directory with whether each is a directory (from d_type, lstat when the
    /// file system does not say), without `.` and `..`.
    public static func entries(ofDirectory path: String) throws(Errno) -> [(name: String, isDirectory: Bool)] {
        let descriptor = try open(path, [.readOnly, .directory])
        guard let dir = fdopendir(descriptor.rawValue) else {
            let error = Errno.current
            descriptor.close()
            throw error
        }
        defer { closedir(dir) }
        var result: [(name: String, isDirectory: Bool)] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            let type = entry.pointee.d_type
            if type == UInt8(DT_UNKNOWN) {
                result.append((name, (try? status(path + "/" + name))?.isDirectory ?? false))
            } else {
                result.append((name, type == UInt8(DT_DIR)))
            }
        }
        return result
    }
}
