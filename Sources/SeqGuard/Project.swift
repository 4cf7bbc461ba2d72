import SeqSystem

/// A project: the directory whose commands are serialised, and the name of its state.
public struct Project: Sendable, Equatable {
    /// The real path of the project root.
    public var root: String
    /// First 8 hex digits of SHA-1 over the root and a newline (`printf '%s\n' "$root" | sha1sum | cut -c1-8`).
    public var hash: String

    public init(root: String) {
        self.root = root
        self.hash = String(SHA1.hexDigest(Array((root + "\n").utf8)).prefix(8))
    }

    init(root: String, hash: String) {
        self.root = root
        self.hash = hash
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
                guard try FileSystem.status(real).isDirectory else {
                    throw GuardFailure("project '\(explicit)' is not a directory; pass a directory to --project")
                }
                return Project(root: real)
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
        while true {
            if FileSystem.exists(candidate == "/" ? "/.git" : candidate + "/.git") { return Project(root: candidate) }
            guard candidate != "/", let slash = candidate.lastIndex(of: "/") else { break }
            candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
        }
        return Project(root: cwd)
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
