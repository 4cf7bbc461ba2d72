import SeqSystem

/// Everything one guarded invocation needs, already parsed from flags and environment.
public struct GuardConfiguration: Sendable {
    public var toolName = "seqexec"
    public var projectPath: String?
    /// Where the project is looked for when none is given (make-seq's `make -C DIR`); nil for
    /// the current directory.
    public var searchDirectory: String?
    /// make-seq: take the project's make lock too, before its executor lock, so that makes of
    /// the project queue among themselves and each still excludes every guarded command.
    public var takesMakeLock = false
    /// Changes to the command's environment: a value sets the variable, nil removes it.
    public var environmentChanges: [(name: String, value: String?)] = []
    public var stateBase: String?
    /// Seconds; nil for no limit.
    public var timeout: Double? = 3600
    public var killGrace: Double = 5
    public var waitTimeout: Double?
    public var slots = 1
    public var priority = Priority.normal
    public var verbose = false
    public var quiet = false
    public var arguments: [String] = []
    /// The command as bytes, exactly as given on the command line (argv need not be UTF-8);
    /// nil: `arguments` as UTF-8. `arguments` is for display and decisions only.
    public var rawArguments: [[UInt8]]?
    /// What is executed: `rawArguments`, else `arguments`.
    public var commandBytes: [[UInt8]] { rawArguments ?? arguments.map { Array($0.utf8) } }
    /// MiB; 0 turns the memory monitor off.
    public var memoryLimitMegabytes = 2048
    /// Seconds: the longest gap between memory samples.
    public var checkInterval: Double = 5
    public var memoryMetric = MemoryMetric.rss
    public var memoryAction = MemoryAction.tree
    /// Whether the kernel enforces the memory limit (a cgroup per run): nil, the default, when
    /// a limit was given (`-m`, MEMORY_LIMIT_MB) and the monitor's rss-and-tree defaults stand;
    /// `--kernel-limits` (1) always, SEQEXEC_KERNEL_LIMITS=0 never.
    public var kernelMemoryLimit: Bool?
    /// `-m` or its variable was given: the default 2048 MB stays the sampler's alone, so a
    /// run that asked for no limit pays nothing for a cgroup.
    public var memoryLimitGiven = false
    /// `--pool NAME`: the run is one of the pool's (its file under the state base), which
    /// share its memory, CPU and slots across projects.
    public var poolName: String?
    /// `--cpus N`, `--cpu-weight W`, `--io-weight W`: enforced by the kernel (cgroup).
    public var cpus: Double?
    public var cpuWeight: Int?
    public var ioWeight: Int?

    /// What the kernel is asked to enforce for this run.
    public var kernelLimits: KernelLimits {
        var limits = KernelLimits()
        let kernel = kernelMemoryLimit ?? (memoryLimitGiven && memoryMetric == .rss && memoryAction == .tree)
        if kernel && memoryLimitMegabytes > 0 { limits.memoryBytes = Int64(memoryLimitMegabytes) << 20 }
        limits.cpus = cpus
        limits.cpuWeight = cpuWeight
        limits.ioWeight = ioWeight
        return limits
    }
    /// MiB of MemAvailable needed before the command may start.
    public var minimumAvailableMegabytes: Int?
    /// Take the user's machine-wide lock instead of the project's.
    public var machineWide = false
    /// Guard a resource by name (`--lock NAME`) instead of a project directory.
    public var lockName: String?
    /// `--order newest-first`: a newer waiter that asks the same replaces this one in the
    /// line (deploy only the latest); this one exits 76 naming it.
    public var newestFirst = false
    /// `--store postgresql://…`: the named lock is one line for every host using that database.
    public var store: String?
    /// Seconds a shared lock's holder or waiter stays alive without renewing (`--lease`).
    public var lease: Double = 15
    /// What this host is called in a shared lock's rows (`--host`); nil: the machine's name.
    public var hostName: String?
    /// `--cancel-running`: joining a shared lock ends the runs that hold it (GitHub's
    /// cancel-in-progress); they exit 76 naming this run.
    public var cancelRunning = false
    public var gitMode = GitMode.auto
    /// Seconds to wait for another git operation of the repository.
    public var gitWait: Double = 10
    public var cleanStaleGitLocks = false
    public var historyMaximumBytes = History.defaultMaximumBytes
    /// A submitted run (`--submit`): its id, under which its supervisor records the result.
    public var runID: String?
    /// A submitted run: the nested-call tokens in the environment are whoever submitted it
    /// (a guarded command), not an ancestor it may run straight through under.
    public var ignoresInheritedTokens = false
    /// Written once (one byte) and closed when the run has its place: its queue line, or the
    /// lock itself. `--submit` returns only then, so the next submit lands behind it.
    public var announce: FileDescriptor?

    /// When git safety applies: to git commands (argv[0]'s base name is `git`), always
    /// (`--git-guard`, for a script that runs git), or never (`--no-git-wait`).
    public enum GitMode: Sendable { case auto, always, off }

    public init() {}

    public var memoryPolicy: MemoryPolicy? {
        guard memoryLimitMegabytes > 0 else { return nil }
        return MemoryPolicy(limitBytes: Int64(memoryLimitMegabytes) << 20, interval: checkInterval, metric: memoryMetric, action: memoryAction)
    }

    /// Whether the command gets git safety.
    public var guardsGit: Bool {
        switch gitMode {
        case .off: return false
        case .always: return true
        case .auto: return arguments.first.map { $0.split(separator: "/").last == "git" } ?? false
        }
    }

    public var reporter: Reporter { Reporter(toolName: toolName, verbose: verbose, quiet: quiet) }

    /// The project, found from the flags, the environment and the current directory.
    public func project() throws(GuardFailure) -> Project {
        if let lockName {
            if let projectPath { throw GuardFailure("--lock \(lockName) and --project \(projectPath) are two different locks; give one") }
            return try Project.named(lockName)
        }
        return try Project.resolve(explicit: projectPath, searchingFrom: searchDirectory)
    }

    /// The locks a run takes, outermost first; see LOCK ORDER in seqguard(7). The machine
    /// lane is outermost; a make lock comes before the executor lock it guards.
    public func lockPlan() throws(GuardFailure) -> [(Project, LockNamespace)] {
        try refuseTwoLanes()
        // A pool's lane is outermost: its slots hold back runs of every project in it.
        if let pool = try pool() { return [(pool.project, .seqexec)] + (try localPlan()) }
        return try localPlan()
    }

    /// The pool named by `--pool`, read from its file; nil without one.
    public func pool() throws(GuardFailure) -> Pool? {
        try poolName.map { name throws(GuardFailure) in try Pool.load(name, base: stateBase) }
    }

    func localPlan() throws(GuardFailure) -> [(Project, LockNamespace)] {
        if machineWide {
            return takesMakeLock ? [(.machine, .seqexec), (try project(), .make)] : [(.machine, .seqexec)]
        }
        let project = try project()
        return takesMakeLock ? [(project, .make), (project, .seqexec)] : [(project, .seqexec)]
    }

    /// The lane whose lock runs commands and keeps the history: the machine's with
    /// `--machine`, else the project's executor lock, with its state directory.
    public func openState() throws(GuardFailure) -> (Project, StateDirectory) {
        try refuseTwoLanes()
        let project = machineWide ? Project.machine : try project()
        return (project, try StateDirectory.open(project: project, base: stateBase, namespace: .seqexec))
    }

    /// The lanes `--kill-all` clears: the project's make lock and executor lock (a queued
    /// make-seq would otherwise start the moment the emergency stop is over), or the machine
    /// lane. Lanes with no state directory yet are left out.
    public func openKillAllStates() throws(GuardFailure) -> [StateDirectory] {
        try refuseTwoLanes()
        var plan: [(Project, LockNamespace)] = [(.machine, .seqexec)]
        if !machineWide {
            let project = try project()
            plan = [(project, .make), (project, .seqexec)]
        }
        var directories: [StateDirectory] = []
        for (project, namespace) in plan {
            do {
                directories.append(try StateDirectory.open(project: project, base: stateBase, namespace: namespace, create: false))
            } catch where error.errno == .noSuchFile {
                continue
            } catch {
                for directory in directories { directory.close() }
                throw error
            }
        }
        return directories
    }

    /// `--machine` with `--lock`: two lanes where a run takes one. A store without a lock
    /// name, or the store's modes without a store, ask for what does not exist.
    func refuseTwoLanes() throws(GuardFailure) {
        if machineWide, let lockName { throw GuardFailure("--lock \(lockName) and --machine are two different locks; give one") }
        if store != nil, lockName == nil {
            throw GuardFailure("--store keeps a named lock: add --lock NAME (every host names the resource the same way; a directory is not the same on two hosts)")
        }
        if cancelRunning, store == nil { throw GuardFailure("--cancel-running ends runs holding a shared lock: add --store URL and --lock NAME") }
        if store != nil, minimumAvailableMegabytes != nil {
            throw GuardFailure("--min-available is not kept for a lock in a store (a host's free memory is no line's business across hosts); drop one of them")
        }
    }
}
