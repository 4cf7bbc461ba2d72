import SeqSystem

/// A project's state directory, `<base>/seq-exec-<hash>/`, opened safely: never through a
/// symlink, owned by this user, not writable by anyone else. Everything inside is reached
/// relative to its descriptor.
public struct StateDirectory: Sendable {
    public var path: String
    /// `seq-exec-<hash>`: also the key of this lock's nested-call token.
    public var name: String
    public var descriptor: FileDescriptor
    public var namespace: LockNamespace

    /// The default base: a fixed path, so a shell, cron, an IDE and an agent all agree on it.
    public static func defaultBase(userID: UInt32 = Processes.userID) -> String {
        "/tmp/seqguard-\(userID)"
    }

    /// Opens (creating as needed) the state directory of `project`.
    /// - Parameter base: the base directory, or nil for the default.
    /// - Throws: `GuardFailure` (125) naming the path and the fix when the state is unsafe.
    /// - Parameter checkBase: whether a base given by the caller gets the default base's
    ///   checks too (owned by this user, a real directory, writable by nobody else). seqpipe
    ///   passes false for the store's own directory: the lock directory inside is checked.
    public static func open(
        project: Project, base: String?, namespace: LockNamespace, create: Bool = true, checkBase: Bool = true
    ) throws(GuardFailure) -> StateDirectory {
        let uid = Processes.userID
        let basePath = base ?? defaultBase(userID: uid)
        let fix = base == nil
            ? "remove it, or set SEQEXEC_STATE_DIR to a private directory"
            : "pass a private directory to --state-dir / SEQEXEC_STATE_DIR"
        if create {
            if base != nil && checkBase {
                // A base given by hand is made, but not its missing parents: a typo in the
                // path would otherwise leave the lock state somewhere nobody looks.
                let parent = basePath.hasSuffix("/") ? String(basePath.dropLast()) : basePath
                let parentPath = parent.lastIndex(of: "/").map { $0 == parent.startIndex ? "/" : String(parent[..<$0]) } ?? "."
                guard FileSystem.exists(parentPath) else {
                    throw GuardFailure("cannot use state directory \(basePath): \(parentPath) does not exist; create it first or \(fix)", errno: .noSuchFile)
                }
            }
            try makeDirectories(basePath)
        }
        // The default base lives in a shared, world-writable /tmp; a base the user named gets
        // the same checks: state in another user's directory is never trusted.
        if base == nil || checkBase {
            let status: FileStatus
            do { status = try FileSystem.status(basePath) } catch {
                throw GuardFailure("cannot use state directory \(basePath): \(error); \(fix)", errno: error)
            }
            try check(basePath, status, uid: uid, fix: fix)
        }
        let baseDescriptor: FileDescriptor
        do { baseDescriptor = try FileSystem.open(basePath, [.readOnly, .directory]) } catch {
            throw GuardFailure("cannot open state directory \(basePath): \(error); \(GuardFailure.fix(for: error, otherwise: fix))", errno: error)
        }
        defer { baseDescriptor.close() }
        let name = namespace.directoryPrefix + project.hash
        let path = basePath.hasSuffix("/") ? basePath + name : basePath + "/" + name
        if create {
            do { try FileSystem.makeDirectory(name, mode: 0o700, relativeTo: baseDescriptor) } catch where error == .fileExists {
            } catch {
                throw GuardFailure("cannot create state directory \(path): \(error); \(fix)", errno: error)
            }
        }
        let descriptor = try openChecked(name, in: baseDescriptor, path: path, fix: fix)
        let directory = StateDirectory(path: path, name: name, descriptor: descriptor, namespace: namespace)
        do { try directory.checkRecordedProject(project, create: create) } catch {
            descriptor.close()
            throw error
        }
        return directory
    }

    /// The project a state directory belongs to, recorded in it (`project`: the identity,
    /// then the root it was first reached by) when it is made and checked at every open:
    /// a directory that records another project is refused, never shared.
    func checkRecordedProject(_ project: Project, create: Bool) throws(GuardFailure) {
        // Read first: on every start but the first, the record is there (one open, one read).
        guard let bytes = try readFile(Self.projectFileName) else {
            guard create, let fd = try? FileSystem.open(Self.projectFileName, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600,
                                                         relativeTo: descriptor) else { return }
            defer { fd.close() }
            do { try fd.writeAll(project.identity + "\n" + project.root + "\n") } catch {
                throw GuardFailure("cannot record the project in \(path): \(error); check free space", errno: error)
            }
            return
        }
        // A record still being written by its maker reads short: only a whole line counts.
        guard let newline = bytes.firstIndex(of: 10) else { return }
        let recorded = String(decoding: bytes[..<newline], as: UTF8.self)
        guard recorded == project.identity else {
            let rest = bytes[(newline + 1)...].split(separator: 10).first.map { String(decoding: $0, as: UTF8.self) } ?? "?"
            throw GuardFailure("state directory \(path) records another project (\(recorded), first reached as \(rest)), not \(project.root) (\(project.identity)); remove it with 'rm -r \(path)' once nothing of that project runs")
        }
    }

    /// The file that records which project a state directory belongs to.
    public static let projectFileName = "project"

    /// Opens directory `name` of `parent` without following a symlink, and holds it to
    /// `check`: a real directory of this user that nobody else may write.
    static func openChecked(_ name: String, in parent: FileDescriptor, path: String, fix: String) throws(GuardFailure) -> FileDescriptor {
        let descriptor: FileDescriptor
        do { descriptor = try FileSystem.openDirectory(name, relativeTo: parent) } catch {
            if error == .tooManySymlinks || error == .notDirectory {
                throw GuardFailure("unsafe state directory \(path): it is a symlink or not a directory; \(fix)", errno: error)
            }
            throw GuardFailure("cannot open state directory \(path): \(error); \(GuardFailure.fix(for: error, otherwise: fix))", errno: error)
        }
        do {
            try check(path, try descriptor.status(), uid: Processes.userID, fix: fix)
        } catch let failure as GuardFailure {
            descriptor.close()
            throw failure
        } catch {
            descriptor.close()
            throw GuardFailure("cannot stat state directory \(path): \(error)", errno: error as? Errno)
        }
        return descriptor
    }

    /// Refuses a directory that is a symlink, another user's, or writable by group or others.
    static func check(_ path: String, _ status: FileStatus, uid: UInt32, fix: String) throws(GuardFailure) {
        if status.isSymlink {
            throw GuardFailure("unsafe state \(path): it is a symlink; \(fix)")
        }
        if !status.isDirectory {
            throw GuardFailure("unsafe state \(path): not a directory; \(fix)")
        }
        if status.owner != uid {
            throw GuardFailure("unsafe state \(path): owned by uid \(status.owner), not \(uid); \(fix)")
        }
        if status.isWritableByOthers {
            let mode = String(status.permissions, radix: 8)
            // A shared directory such as /tmp (sticky, everyone's) is meant to be so: the fix
            // is a directory of one's own, never a chmod of it.
            if status.permissions & 0o1000 != 0 {
                throw GuardFailure("unsafe state \(path): mode \(mode) makes it a directory everyone shares; pass a private directory of yours (such as \(path == "/" ? "" : path)/seqguard-\(uid), made 0700) to --state-dir / SEQEXEC_STATE_DIR, or drop it for the default")
            }
            throw GuardFailure("unsafe state \(path): mode \(mode) lets others write it; run 'chmod 700 \(path)' or \(fix)")
        }
    }

    /// mkdir -p with mode 0700 for each directory it creates.
    static func makeDirectories(_ path: String) throws(GuardFailure) {
        do { try FileSystem.makeDirectories(path, mode: 0o700) } catch {
            throw GuardFailure("cannot create state directory \(path): \(error); pass a writable directory to --state-dir", errno: error)
        }
    }

    public func close() { descriptor.close() }

    /// The names in the directory.
    public func names() throws(GuardFailure) -> [String] {
        do { return try FileSystem.contents(ofDirectoryAt: descriptor) } catch {
            throw GuardFailure("cannot list \(path): \(error)", errno: error)
        }
    }

    /// Runs `body` holding the state directory's mutex: flock on the directory itself. Every
    /// decision about claims and the queue is made under it, for microseconds at a time.
    public func withMutex<T>(_ body: () throws(GuardFailure) -> T) throws(GuardFailure) -> T {
        do { _ = try descriptor.lock(exclusive: true) } catch {
            throw GuardFailure("cannot lock state directory \(path): \(error)", errno: error)
        }
        defer { try? descriptor.unlock() }
        return try body()
    }
}

extension StateDirectory {
    /// Opens a file of this state directory without blocking (a FIFO put there would block
    /// open(2) for ever) and without following a symlink, and only if it is a regular file
    /// owned by this user. Nil when it does not exist and `options` has no `.create`.
    /// - Throws: `GuardFailure` (125) naming the file and the fix when it is anything else.
    public func openFile(_ name: String, _ options: OpenOptions, mode: UInt32 = 0o600) throws(GuardFailure) -> FileDescriptor? {
        let path = "\(self.path)/\(name)"
        let fd: FileDescriptor
        do {
            fd = try FileSystem.open(name, options.union([.nonBlocking, .noFollow]), mode: mode, relativeTo: descriptor)
        } catch where error == .noSuchFile && !options.contains(.create) {
            return nil
        } catch {
            // A symlink (ELOOP), or a FIFO with no reader (ENXIO), socket or device.
            if let status = try? FileSystem.status(name, relativeTo: descriptor), !status.isRegularFile {
                throw GuardFailure("unsafe state \(path): it is a \(status.kind), not a regular file; remove it with 'rm \(path)'", errno: error)
            }
            throw GuardFailure("cannot open \(path): \(error); \(GuardFailure.fix(for: error, otherwise: "check free space and permissions"))", errno: error)
        }
        let status: FileStatus
        do { status = try fd.status() } catch {
            fd.close()
            throw GuardFailure("cannot stat \(path): \(error)", errno: error)
        }
        guard status.isRegularFile, status.owner == Processes.userID else {
            fd.close()
            let what = status.isRegularFile ? "owned by uid \(status.owner), not \(Processes.userID)" : "a \(status.kind), not a regular file"
            throw GuardFailure("unsafe state \(path): it is \(what); remove it with 'rm \(path)'")
        }
        // Reads and writes of a regular file never block anyway; clear the flag for clarity.
        try? fd.setBlocking()
        return fd
    }

    /// The whole content of a state file, or nil when it does not exist.
    public func readFile(_ name: String) throws(GuardFailure) -> [UInt8]? {
        guard let fd = try openFile(name, [.readOnly]) else { return nil }
        defer { fd.close() }
        do { return try fd.readAll() } catch {
            throw GuardFailure("cannot read \(path)/\(name): \(error)", errno: error)
        }
    }
}
