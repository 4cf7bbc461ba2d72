import SeqSystem

/// A project: the directory whose commands are serialised, and the name of its state.
///
/// A directory is what the kernel says it is, its device and inode, not the path it was
/// reached by: a bind mount, a renamed checkout, a symlink or `..` all meet the same lock.
/// Its state directory is named by the whole SHA-1 of that identity, and the identity is
/// recorded inside (`project`), so two projects never share one by a short digest.
public struct Project: Sendable, Equatable {
    /// The real path of the project root, as this caller reached it.
    public var root: String
    /// What the project is: `dir DEV:INO` for a directory, else the name it was given (a
    /// seqpipe store's identity, a named lock).
    public var identity: String
    /// SHA-1 (40 hex digits) of the identity and a newline: the state directory's name.
    public var hash: String

    /// A project known by a name rather than a directory (`identity` is the name).
    public init(root: String) {
        self.init(root: root, identity: root)
    }

    /// The directory `root`, known by its device and inode.
    public init(directory root: String, status: FileStatus) {
        self.init(root: root, identity: "dir \(status.device):\(status.inode)")
    }

    init(root: String, identity: String) {
        self.root = root
        self.identity = identity
        self.hash = SHA1.hexDigest(Array((identity + "\n").utf8))
    }

    init(root: String, hash: String) {
        self.root = root
        self.identity = root
        self.hash = hash
    }

    /// Two callers are in one project when the kernel says so, whatever path each used.
    public static func == (lhs: Project, rhs: Project) -> Bool { lhs.identity == rhs.identity }

    /// The directory at real path `real`, by its identity.
    static func directory(_ real: String) throws(Errno) -> Project {
        Project(directory: real, status: try FileSystem.status(real))
    }

    /// A lock known by its name alone (`--lock NAME`): every caller that names it, from any
    /// directory, meets the same lock, as flock(1) callers meet on one lock file.
    /// - Throws: `GuardFailure` (125, bad usage) for a name that is empty, longer than 200 bytes, or
    ///   holds a control character.
    public static func named(_ name: String) throws(GuardFailure) -> Project {
        guard !name.isEmpty, name.utf8.count <= 200, !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw GuardFailure("--lock needs a name of 1 to 200 bytes without control characters, such as deploy-staging")
        }
        return Project(root: "lock \(name)", identity: "lock \(name)")
    }

    /// The user's machine-wide lane (`--machine`): one lock for every project, state in
    /// `<base>/seq-exec-machine/`.
    public static let machine = Project(root: "(machine-wide)", hash: "machine")

    /// Resolves the project root: `explicit` if given, else the nearest directory at or above
    /// `searchingFrom` (default: the current directory) holding `.git` (a directory, or a file
    /// in worktrees and submodules), else that directory itself. Found by walking up, not by
    /// running git: start-up matters.
    /// - Throws: `GuardFailure` (125) if the directory does not exist.
    public static func resolve(explicit: String?, searchingFrom start: String? = nil) throws(GuardFailure) -> Project {
        if let explicit {
            do {
                let real = try FileSystem.realPath(explicit)
                let status = try FileSystem.status(real)
                guard status.isDirectory else {
                    throw GuardFailure("project '\(explicit)' is not a directory; pass a directory to --project")
                }
                return Project(directory: real, status: status)
            } catch let error as GuardFailure {
                throw error
            } catch {
                throw GuardFailure("cannot use project '\(explicit)': \(error); pass an existing directory to --project", errno: error as? Errno)
            }
        }
        let cwd: String
        do throws(Errno) {
            let directory = if let start { start } else { try FileSystem.currentDirectory() }
            cwd = try FileSystem.realPath(directory)
        } catch {
            if let start { throw GuardFailure("cannot use directory '\(start)': \(error)", errno: error) }
            throw GuardFailure("cannot read the current directory: \(error); cd to the project or pass --project", errno: error)
        }
        var candidate = cwd
        var root = cwd
        while true {
            if FileSystem.exists(candidate == "/" ? "/.git" : candidate + "/.git") {
                root = candidate
                break
            }
            guard candidate != "/", let slash = candidate.lastIndex(of: "/") else { break }
            candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
        }
        do { return try directory(root) } catch {
            throw GuardFailure("cannot use project \(root): \(error); cd to the project or pass --project", errno: error)
        }
    }
}

/// Which lock a tool takes: seqexec's `seq-exec-<hash>`, make-seq's `make-lock-<hash>`.
public struct LockNamespace: Sendable, Equatable {
    public var directoryPrefix: String
    public var claimName: String

    public static let seqexec = LockNamespace(directoryPrefix: "seq-exec-", claimName: "executor.lock")
    public static let make = LockNamespace(directoryPrefix: "make-lock-", claimName: "executor.lock")

    /// A client's own namespace (seqpipe names its single-instance lock with one).
    public init(directoryPrefix: String, claimName: String) {
        self.directoryPrefix = directoryPrefix
        self.claimName = claimName
    }
}
