import SeqSystem

/// A git repository as git itself would find it, resolved by reading files, never by running
/// git (start-up matters, and a probe must never take a lock of its own).
public struct GitRepository: Sendable, Equatable {
    /// The working tree's top level; nil for a bare repository.
    public var worktree: String?
    /// The per-worktree git dir (`.git`, `.git/worktrees/NAME`, `.git/modules/NAME`).
    public var gitDirectory: String
    /// The directory shared by all worktrees (refs, config, packed-refs).
    public var commonDirectory: String

    /// The repository enclosing `start`: the nearest `.git` (a directory, or a file holding
    /// `gitdir: PATH` in worktrees and submodules) at or above it, or `start` itself if it is
    /// a git dir.
    public static func find(from start: String) -> GitRepository? {
        guard var candidate = try? FileSystem.realPath(start) else { return nil }
        while true {
            if isGitDirectory(candidate) { return repository(gitDirectory: candidate, worktree: nil) }
            let dotGit = join(candidate, ".git")
            if let status = try? FileSystem.status(dotGit) {
                if status.isDirectory { return repository(gitDirectory: dotGit, worktree: candidate) }
                // A `gitdir:` file is one line; git refuses a larger one, and so is it not read
                // whole here (a 1 GB `.git` file must not hold up the command's start).
                if status.isRegularFile, status.size <= maximumPointerBytes, let bytes = try? FileSystem.readFile(dotGit) {
                    let text = String(decoding: bytes, as: UTF8.self)
                    if text.hasPrefix("gitdir:") {
                        let path = text.dropFirst("gitdir:".count).trimmingWhitespace
                        return repository(gitDirectory: path.hasPrefix("/") ? path : join(candidate, path), worktree: candidate)
                    }
                }
            }
            guard candidate != "/", let slash = candidate.lastIndex(of: "/") else { return nil }
            candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
        }
    }

    /// The most a `.git` file or a `commondir` holding one path is read.
    static let maximumPointerBytes: Int64 = 64 << 10

    /// The repository from an explicit git dir (GIT_DIR, `--git-dir`).
    public static func repository(gitDirectory: String, worktree: String?) -> GitRepository? {
        guard let git = try? FileSystem.realPath(gitDirectory) else { return nil }
        var common = git
        if let status = try? FileSystem.status(join(git, "commondir")), status.size <= maximumPointerBytes,
           let bytes = try? FileSystem.readFile(join(git, "commondir")) {
            let path = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
            if let real = try? FileSystem.realPath(path.hasPrefix("/") ? path : join(git, path)) { common = real }
        }
        return GitRepository(worktree: worktree.flatMap { try? FileSystem.realPath($0) }, gitDirectory: git, commonDirectory: common)
    }

    static func isGitDirectory(_ path: String) -> Bool {
        guard let head = try? FileSystem.status(join(path, "HEAD")), head.isRegularFile else { return false }
        return FileSystem.exists(join(path, "objects")) || FileSystem.exists(join(path, "commondir"))
    }

    /// The names git creates with O_EXCL while it changes a file (lockfile.c).
    public static let lockNames = ["index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock"]

    /// Lock files present now: the fixed names in the git dir and the common dir, and every
    /// `*.lock` under `refs/`.
    public func lockFiles() -> [String] {
        var found: [String] = []
        let directories = gitDirectory == commonDirectory ? [gitDirectory] : [gitDirectory, commonDirectory]
        for directory in directories {
            for name in Self.lockNames where FileSystem.exists(Self.join(directory, name)) {
                found.append(Self.join(directory, name))
            }
        }
        var pending = directories.map { Self.join($0, "refs") }
        while let directory = pending.popLast() {
            guard let entries = try? FileSystem.entries(ofDirectory: directory) else { continue }
            for entry in entries {
                let path = Self.join(directory, entry.name)
                if entry.isDirectory { pending.append(path) } else if entry.name.hasSuffix(".lock") { found.append(path) }
            }
        }
        return found
    }

    /// What the repository is called in messages.
    public var displayName: String { worktree ?? gitDirectory }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

extension Substring {
    var trimmingWhitespace: String {
        var text = self
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}

extension String {
    var trimmingWhitespace: String { self[...].trimmingWhitespace }
}

/// A live git process of a repository.
public struct GitProcess: Sendable {
    public var identity: ProcessIdentity
    public var command: String

    public var description: String { "git pid \(identity.pid) ('\(command)')" }
}

/// Waits out other git operations before a git command starts, once and right: git has no
/// wait of its own for index.lock, so two overlapping operations corrupt or fail.
public struct GitGuard {
    public var repository: GitRepository
    public var reporter: Reporter
    public var signals: SignalReceiver
    /// Seconds to wait for an active operation to finish.
    public var wait: Double
    public var cleanStaleLocks: Bool
    /// A lock file younger than this with no process behind it may be a writer that just
    /// closed it, about to rename it into place: it counts as active, not stale.
    public var freshLockSeconds: Int64 = 2
    /// Told once, when the wait starts: the lock file and the git process waited for, so the
    /// holder's record can say it (`--status`: reason git).
    public var onWaiting: ((_ lock: String?, _ git: GitProcess?) -> Void)?

    /// git subcommands that run long and never take a lock: a pager open on `git log`, an
    /// IDE's `cat-file --batch`, the fsmonitor and credential daemons. Waiting for them would
    /// make every guarded git command wait its full --git-wait.
    public static let longRunningReaders: Set<String> = [
        "log", "show", "blame", "grep", "help", "cat-file", "shortlog", "whatchanged",
        "fsmonitor--daemon", "credential-cache--daemon", "daemon", "instaweb",
    ]

    public init(repository: GitRepository, reporter: Reporter, signals: SignalReceiver, wait: Double, cleanStaleLocks: Bool) {
        self.repository = repository
        self.reporter = reporter
        self.signals = signals
        self.wait = wait
        self.cleanStaleLocks = cleanStaleLocks
    }

    public enum Outcome: Sendable, Equatable {
        case clear
        case gaveUp(String)
        case interrupted(signal: Signal)
    }

    /// The repository a git command line works in: `-C DIR` and `--git-dir` applied, then
    /// GIT_DIR, then the enclosing repository of the current directory.
    public static func repository(forGitArguments arguments: [String]) -> GitRepository? {
        var directory = (try? FileSystem.currentDirectory()) ?? "."
        var gitDirectory = Spawn.environmentValue("GIT_DIR")
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "-C", index + 1 < arguments.count {
                let next = arguments[index + 1]
                if !next.isEmpty { directory = next.hasPrefix("/") ? next : GitRepository.join(directory, next) }
                index += 2
            } else if argument == "--git-dir", index + 1 < arguments.count {
                gitDirectory = arguments[index + 1]
                index += 2
            } else if argument.hasPrefix("--git-dir=") {
                gitDirectory = String(argument.dropFirst("--git-dir=".count))
                index += 1
            } else if argument == "-c" || argument == "--work-tree" || argument == "--namespace" {
                index += 2
            } else if argument.hasPrefix("-") {
                index += 1
            } else {
                break
            }
        }
        if let gitDirectory, !gitDirectory.isEmpty {
            let path = gitDirectory.hasPrefix("/") ? gitDirectory : GitRepository.join(directory, gitDirectory)
            return GitRepository.repository(gitDirectory: path, worktree: nil)
        }
        return GitRepository.find(from: directory)
    }

    /// Live git processes working in the same repository (any of its worktrees), found by
    /// their working directory. Long-running readers and daemons are left out.
    public func liveGitProcesses(in table: [ProcStat]) -> [GitProcess] {
        var cache: [String: Bool] = [:]
        var result: [GitProcess] = []
        for stat in table where stat.command == "git" && stat.state != "Z" && stat.pid != Processes.currentPid {
            guard let arguments = Processes.commandLine(stat.pid) else { continue }
            if let subcommand = Self.subcommand(arguments), Self.longRunningReaders.contains(subcommand) { continue }
            guard let cwd = Processes.workingDirectory(stat.pid) else { continue }
            let same: Bool
            if let known = cache[cwd] { same = known } else {
                same = GitRepository.find(from: cwd)?.commonDirectory == repository.commonDirectory
                cache[cwd] = same
            }
            if same { result.append(GitProcess(identity: stat.identity, command: arguments.joined(separator: " "))) }
        }
        return result
    }

    /// `commit` for `git -C x -c a=b commit -m y`.
    static func subcommand(_ arguments: [String]) -> String? {
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            if ["-C", "-c", "--git-dir", "--work-tree", "--namespace"].contains(argument) { index += 2; continue }
            if argument.hasPrefix("-") { index += 1; continue }
            return argument
        }
        return nil
    }

    /// True when this process runs inside a git operation of the same repository (a hook,
    /// `rebase -x`): that git's locks are its parent's, and waiting for them would never end.
    public func insideGitOperation(_ ancestors: [ProcStat]) -> GitProcess? {
        liveGitProcesses(in: ancestors.filter { $0.command == "git" }).first
    }

    /// Waits until no other git operation is active in the repository, or `wait` passes.
    /// - Throws: `GuardFailure` (125) for a stale lock file, unless `cleanStaleLocks`.
    @available(*, noasync)
    public func waitForQuiet() throws(GuardFailure) -> Outcome {
        let ancestors = Processes.ancestors()
        if let parent = insideGitOperation(ancestors) {
            reporter.step("running inside \(parent.description); not waiting for its git locks")
            return .clear
        }
        let ancestorPids = Set(ancestors.map(\.pid))
        let started = Clock.monotonicNanoseconds()
        let deadline = started + Int64(wait * 1e9)
        var told = false
        while true {
            let locks = repository.lockFiles()
            let gits = liveGitProcesses(in: Processes.all()).filter { !ancestorPids.contains($0.identity.pid) }
            if locks.isEmpty && gits.isEmpty {
                if told { reporter.step("git is quiet in \(repository.displayName) after \(formatDuration(Double(Clock.monotonicNanoseconds() - started) / 1e9))") }
                return .clear
            }
            if gits.isEmpty {
                // Locks with no git process of the repository behind them, and no process
                // holding them open, are left over from a crash or a kill -9.
                let now = Clock.wallTime().seconds
                var removed = false
                for path in locks {
                    guard let status = try? FileSystem.status(path) else { continue }
                    if now - status.modified < freshLockSeconds { continue }
                    if !Processes.holding(device: status.device, inode: status.inode).isEmpty { continue }
                    guard cleanStaleLocks else {
                        throw GuardFailure("stale git lock \(path): no git process is running in \(repository.displayName); remove it with 'rm \(path)' or rerun with --clean-stale-git-locks")
                    }
                    // Confirmed again just before removing: still no git process, same file.
                    guard liveGitProcesses(in: Processes.all()).isEmpty,
                          let again = try? FileSystem.status(path), again.inode == status.inode, again.device == status.device
                    else { continue }
                    do {
                        try FileSystem.removeFile(path)
                        removed = true
                        reporter.notice("removed stale git lock \(path) (no git process was running in \(repository.displayName))")
                    } catch {
                        throw GuardFailure("cannot remove stale git lock \(path): \(error); remove it by hand", errno: error)
                    }
                }
                if removed { continue }
            }
            let now = Clock.monotonicNanoseconds()
            let what = gits.first.map { $0.description } ?? "a git operation"
            let lockText = locks.first.map { " holding \($0)" } ?? ""
            if now >= deadline {
                if locks.isEmpty {
                    // Only a process, no lock: nothing for the command to collide with yet.
                    reporter.notice("\(what) is still running in \(repository.displayName) after \(formatDuration(wait)); going ahead")
                    return .clear
                }
                return .gaveUp("gave up after \(formatDuration(wait)) waiting for \(what)\(lockText) in \(repository.displayName); retry, or raise --git-wait")
            }
            if !told {
                reporter.notice("waiting up to \(formatDuration(wait)) for \(what)\(lockText) in \(repository.displayName)")
                onWaiting?(locks.first, gits.first)
                told = true
            }
            let timeout = Int32(clamping: min(50, (deadline - now) / 1_000_000 + 1))
            if !Poll.readable([signals.descriptor], timeoutMilliseconds: timeout).isEmpty {
                for received in signals.drain() where [.interrupt, .terminate, .hangup, .quit].contains(received.signal) {
                    return .interrupted(signal: received.signal)
                }
            }
        }
    }
}
