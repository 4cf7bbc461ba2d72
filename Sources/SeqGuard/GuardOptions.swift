import SeqSystem

/// seqexec's and make-seq's options and settings, each declared once (see `ToolOption`), in
/// the order `--help` lists them.
public enum GuardOptions {
    /// The settings seqexec and make-seq share: flags of seqexec, variables of both.
    public static let settings: [ToolOption] = [
        ToolOption(OptionSpec("-p", "--project", kind: .value), "DIR", help: """
            Project root (default: the git top-level of the current
            directory, else the current directory). A project is
            its directory's device and inode, not its path: a
            symlink, bind mount or rename meets the same lock.
            """, summary: "project root", completes: .directory, environment: "PROJECT", emptyIsUnset: true,
            apply: { configuration, value, _ in configuration.projectPath = value }),
        ToolOption(OptionSpec("--lock", kind: .value), "NAME", help: """
            Guard the resource NAME instead of a project: every
            command given the same NAME, from any directory, waits
            in one line (as flock callers of one lock file).
            """, summary: "guard a named resource, not a project", environment: "LOCK", emptyIsUnset: true,
            apply: { configuration, value, _ in configuration.lockName = value }),
        ToolOption(OptionSpec("--state-dir", kind: .value), "DIR", help: """
            Base of the lock state, yours and private like the
            default (default: /tmp/seqguard-<uid>).
            """, summary: "base of the lock state", completes: .directory, environment: "STATE_DIR", emptyIsUnset: true,
            apply: { configuration, value, _ in configuration.stateBase = value }),
        ToolOption(OptionSpec("-t", "--timeout", kind: .value), "S", help: """
            End the command's whole tree after S seconds and exit
            124; 0 means no limit (default: 3600).
            """, summary: "end the tree after S seconds, exit 124", environment: "TIMEOUT", legacy: "TIMEOUT",
            apply: { configuration, value, name throws(GuardFailure) in
                let limit = try Setting.seconds(value ?? "", name)
                configuration.timeout = limit == 0 ? nil : limit
            }),
        ToolOption(OptionSpec("--kill-grace", kind: .value), "S", help: """
            Seconds from SIGTERM to SIGKILL when ending a tree
            (default: 5).
            """, summary: "seconds from SIGTERM to SIGKILL", environment: "KILL_GRACE",
            apply: { configuration, value, name throws(GuardFailure) in configuration.killGrace = try Setting.seconds(value ?? "", name) }),
        ToolOption(OptionSpec("-w", "--wait-timeout", kind: .value), "S", help: """
            Give up waiting for the lock after S seconds, exit 75;
            with --wait: stop following the run after S seconds,
            exit 75 (the run goes on).
            """, summary: "give up waiting after S seconds, exit 75", environment: "WAIT_TIMEOUT",
            apply: { configuration, value, name throws(GuardFailure) in configuration.waitTimeout = try Setting.seconds(value ?? "", name) }),
        ToolOption(OptionSpec("--slots", kind: .value), "N", help: """
            Let up to N commands of the project run at once
            (default: 1); the strictest running command's N
            wins: beside one that asked to be alone, none.
            """, summary: "commands of the project that may run at once", environment: "SLOTS",
            apply: { configuration, value, name throws(GuardFailure) in configuration.slots = try Setting.wholeNumber(value ?? "", name, minimum: 1) }),
        ToolOption(OptionSpec("--priority", kind: .value), "P", help: """
            high, normal or low; the queue runs by priority, then
            arrival (default: normal).
            """, summary: "queue priority", completes: .words(Priority.allCases.map(\.rawValue)), environment: "PRIORITY",
            apply: { configuration, value, name throws(GuardFailure) in configuration.priority = try Setting.priority(value ?? "", name) }),
        ToolOption(OptionSpec("--order", kind: .value), "O", help: """
            oldest-first (default): waiters run in arrival order.
            newest-first: a newer waiter that also asks newest-first
            takes the place of the older ones still waiting, which
            exit 76 naming it (deploy only the latest).
            """, summary: "oldest-first, or newest-first: a newer waiter replaces older ones",
            completes: .words(["oldest-first", "newest-first"]), environment: "ORDER",
            apply: { configuration, value, name throws(GuardFailure) in configuration.newestFirst = try Setting.newestFirst(value ?? "", name) }),
        ToolOption(OptionSpec("--store", kind: .value), "URL", help: """
            With --lock: keep the lock in the PostgreSQL database
            at URL (postgresql://...), one line for every host
            that uses it, in the database's arrival order. The
            command gets the lock's fencing token in SEQEXEC_FENCE.
            """, summary: "keep a --lock in PostgreSQL: one line across hosts", environment: "STORE", emptyIsUnset: true,
            apply: { configuration, value, name throws(GuardFailure) in configuration.store = try Setting.storeURL(value ?? "", name) }),
        ToolOption(OptionSpec("--lease", kind: .value), "S", help: """
            With --store: seconds a host that stops renewing (dead,
            frozen, cut off) keeps its place or the lock; a holder
            that cannot renew ends its command before (default: 15).
            """, summary: "seconds a silent host keeps a shared lock", environment: "LEASE",
            apply: { configuration, value, name throws(GuardFailure) in configuration.lease = try Setting.lease(value ?? "", name) }),
        ToolOption(OptionSpec("--host", kind: .value), "NAME", help: """
            With --store: this host's name in the line (default:
            the machine's host name).
            """, summary: "this host's name in a shared lock", environment: "HOST", emptyIsUnset: true,
            apply: { configuration, value, _ in configuration.hostName = value }),
        ToolOption(OptionSpec("--cancel-running"), help: """
            With --store: end the runs holding the lock now (they
            exit 76 naming this run), as GitHub's cancel-in-progress.
            """, summary: "end the runs holding the shared lock", environment: "CANCEL_RUNNING",
            apply: { configuration, value, _ in configuration.cancelRunning = value.map(Setting.flag) ?? true }),
        ToolOption(OptionSpec("-v", "--verbose"), help: "Log each step to stderr, prefixed [SEQUENTIAL].", summary: "log each step to stderr",
                   environment: "VERBOSE", legacy: "VERBOSE", apply: { configuration, value, _ in configuration.verbose = value.map(Setting.flag) ?? true }),
        ToolOption(OptionSpec("-q", "--quiet"), help: "Print nothing but errors.", summary: "print nothing but errors",
                   environment: "QUIET", apply: { configuration, value, _ in configuration.quiet = value.map(Setting.flag) ?? true }),
        ToolOption(OptionSpec("--machine"), help: """
            Take the user's machine-wide lock instead of the
            project's, for commands too heavy to run two at once
            anywhere on the machine.
            """, summary: "take the machine-wide lock", environment: "MACHINE",
            apply: { configuration, value, _ in configuration.machineWide = value.map(Setting.flag) ?? true }),
        ToolOption(OptionSpec("-m", "--memory-limit", kind: .value), "MB", help: """
            End the command's whole tree and exit 137 when it
            uses MB MiB together; 0 turns the monitor off
            (default: 2048). A warning comes at half of it.
            """, summary: "end the tree past MB MiB, exit 137", environment: "MEMORY_LIMIT_MB", legacy: "MEMORY_LIMIT_MB",
            apply: { configuration, value, name throws(GuardFailure) in
                configuration.memoryLimitMegabytes = try Setting.wholeNumber(value ?? "", name, minimum: 0)
                configuration.memoryLimitGiven = true
            }),
        ToolOption(OptionSpec("--kernel-limits"), help: """
            Have the kernel enforce the memory limit (a cgroup per
            run: v1 as root; v2 in a parent cgroup that is root's
            or delegated). The default when -m is given and a
            cgroup can be made; SEQEXEC_KERNEL_LIMITS=0 keeps the
            /proc monitor alone. Every page the tree charges
            counts, tmpfs files too; a ceiling 3% above is final.
            """, summary: "the kernel enforces the memory limit (cgroup)", environment: "KERNEL_LIMITS",
            apply: { configuration, value, _ in configuration.kernelMemoryLimit = value.map(Setting.flag) ?? true }),
        ToolOption(OptionSpec("--pool", kind: .value), "NAME", help: """
            Run as one of pool NAME's runs, which share the limits
            of <base>/pools/NAME (memory_mb=, cpus=, slots=) across
            projects: slots at once, memory and CPUs together.
            """, summary: "share a pool's memory, CPUs and slots", environment: "POOL", emptyIsUnset: true,
            apply: { configuration, value, _ in configuration.poolName = value }),
        ToolOption(OptionSpec("--cpus", kind: .value), "N", help: """
            Hold the command's tree to N CPUs (a kernel quota,
            e.g. 0.5 or 2); refused where no cpu cgroup exists.
            """, summary: "a CPU quota for the tree", environment: "CPUS",
            apply: { configuration, value, name throws(GuardFailure) in configuration.cpus = try Setting.cpus(value ?? "", name) }),
        ToolOption(OptionSpec("--cpu-weight", kind: .value), "W", help: """
            The tree's CPU share against others, 1 to 10000
            (default 100), as systemd's CPUWeight.
            """, summary: "the tree's CPU share, 1-10000", environment: "CPU_WEIGHT",
            apply: { configuration, value, name throws(GuardFailure) in configuration.cpuWeight = try Setting.wholeNumber(value ?? "", name, minimum: 1, maximum: 10000) }),
        ToolOption(OptionSpec("--io-weight", kind: .value), "W", help: """
            The tree's disk share, 1 to 10000 (default 100), as
            systemd's IOWeight; refused where the kernel has none.
            """, summary: "the tree's disk share, 1-10000", environment: "IO_WEIGHT",
            apply: { configuration, value, name throws(GuardFailure) in configuration.ioWeight = try Setting.wholeNumber(value ?? "", name, minimum: 1, maximum: 10000) }),
        ToolOption(OptionSpec("-i", "--check-interval", kind: .value), "S", help: """
            Longest gap between memory samples; they come faster
            at start-up and near the limit (default: 5).
            """, summary: "longest gap between memory samples", environment: "CHECK_INTERVAL", legacy: "CHECK_INTERVAL",
            apply: { configuration, value, name throws(GuardFailure) in configuration.checkInterval = try Setting.interval(value ?? "", name) }),
        ToolOption(OptionSpec("--memory-metric", kind: .value), "M", help: """
            rss (default), or pss for trees of forked workers
            that share pages, which rss counts once per process.
            """, summary: "what to add up", completes: .words(MemoryMetric.allCases.map(\.rawValue)), environment: "MEMORY_METRIC",
            apply: { configuration, value, name throws(GuardFailure) in configuration.memoryMetric = try Setting.memoryMetric(value ?? "", name) }),
        ToolOption(OptionSpec("--memory-action", kind: .value), "A", help: """
            tree (default): end the whole tree; largest: end
            only its largest process and let the rest run on.
            """, summary: "what to end at the limit", completes: .words(MemoryAction.allCases.map(\.rawValue)), environment: "MEMORY_ACTION",
            apply: { configuration, value, name throws(GuardFailure) in configuration.memoryAction = try Setting.memoryAction(value ?? "", name) }),
        ToolOption(OptionSpec("--min-available", kind: .value), "MB", help: """
            Stay queued, first in line, while the system's
            MemAvailable is below MB MiB.
            """, summary: "stay queued while MemAvailable is below MB", environment: "MIN_AVAILABLE_MB",
            apply: { configuration, value, name throws(GuardFailure) in
                configuration.minimumAvailableMegabytes = try Setting.wholeNumber(value ?? "", name, minimum: 0)
            }),
        ToolOption(OptionSpec("--git-wait", kind: .value), "S", help: """
            Before a git command, wait up to S seconds while
            another git operation of its repository is active
            (default: 10); then exit 75 if a lock is still held.
            """, summary: "wait up to S seconds for other git operations", environment: "GIT_WAIT",
            apply: { configuration, value, name throws(GuardFailure) in
                configuration.gitWait = try Setting.seconds(value ?? "", name)
                // A wait asked for after --no-git-wait turns git safety back on.
                if configuration.gitMode == .off { configuration.gitMode = .auto }
            }),
        ToolOption(OptionSpec("--git-guard"), help: """
            Apply git safety to a command that is not git itself
            (a script that runs git).
            """, summary: "git safety for a command that is not git", apply: { configuration, _, _ in configuration.gitMode = .always }),
        ToolOption(OptionSpec("--no-git-wait"), help: "No git safety.", summary: "no git safety",
                   apply: { configuration, _, _ in configuration.gitMode = .off }),
        ToolOption(OptionSpec("--clean-stale-git-locks"), help: """
            Remove git lock files no live git process holds (a
            crash or kill -9 left them), then go on; without it
            such a lock is reported and seqexec exits 125.
            """, summary: "remove git locks no live git process holds", apply: { configuration, _, _ in configuration.cleanStaleGitLocks = true }),
        ToolOption(nil, help: """
            Rotate history.jsonl past this size
            (default: 1024).
            """, environment: "HISTORY_MAX_KB",
            apply: { configuration, value, name throws(GuardFailure) in
                configuration.historyMaximumBytes = Int64(try Setting.wholeNumber(value ?? "", name, minimum: 1)) * 1024
            }),
    ]

    /// seqexec's own options beyond the settings: what it does instead of running a command.
    public static let seqexecModes: [ToolOption] = [
        ToolOption(OptionSpec("--status"), help: "Show the project's holder and queue, then exit.", summary: "show the holder and the queue"),
        ToolOption(OptionSpec("--history"), help: """
            Show the last runs: waits, run times, peak memory,
            how each ended.
            """, summary: "show the last runs"),
        ToolOption(OptionSpec("-n", "--lines", kind: .value), "N", help: "With --history: how many runs (default: 20).", summary: "with --history: how many runs"),
        ToolOption(OptionSpec("--json"), help: """
            With --status: one JSON object; with --history: a
            JSON array of runs.
            """, summary: "with --status, --history or --runs: print JSON"),
        ToolOption(OptionSpec("--kill-all"), help: """
            End the holder's whole tree and every waiter of the
            project, make-seq's too (only processes recorded in its
            state), clear the locks and the queues, exit 0. From
            its start no queued command starts.
            """, summary: "end every guarded run and waiter of the project"),
        ToolOption(OptionSpec("--submit"), help: """
            Queue the command as a run that outlives this call:
            print its id once it has its place, exit 0. Its
            supervisor leaves this session and terminal; output
            goes to <state>/runs/ID.log. 127 or 126 at once if
            the command cannot be run.
            """, summary: "queue the command as a run that outlives this call, print its id"),
        ToolOption(OptionSpec("--wait", kind: .value), "ID", help: """
            Follow run ID's output from its start, then exit
            with the run's own status. Kill it and wait again
            at will: the run is not touched.
            """, summary: "follow a submitted run, exit with its status", completes: .runs),
        ToolOption(OptionSpec("--tail"), help: "With --wait: only the output from now on.", summary: "with --wait: only the output from now on"),
        ToolOption(OptionSpec("--runs"), help: """
            List the submitted runs: queued (position), running
            (pid, since), ended (status), and their logs.
            """, summary: "list the submitted runs"),
        ToolOption(OptionSpec("--cancel", kind: .value), "ID", help: """
            A queued run leaves the queue; a running one's tree
            is ended (SIGTERM, then SIGKILL after --kill-grace).
            """, summary: "end a submitted run, queued or running", completes: .runs),
        ToolOption(OptionSpec("--mcp"), help: """
            Serve as an MCP server on stdin and stdout, for coding
            agents: the tools run, wait, status, runs, cancel and
            history queue and follow runs in this same line.
            """, summary: "serve as an MCP server over stdio, for agents"),
        ToolOption(OptionSpec("--completion", kind: .value), "SHELL", help: """
            Print the completion script for SHELL (bash, zsh or
            fish), made from these declarations.
            """, summary: "print the completion script for a shell", completes: .words(["bash", "zsh", "fish"])),
        ToolOption(OptionSpec("-h", "--help"), help: "Show this help.", summary: "show the help"),
        ToolOption(OptionSpec("--version"), help: "Show the version.", summary: "show the version"),
    ]

    /// Everything seqexec accepts, in `--help`'s order.
    public static let seqexec = settings + seqexecModes

    /// make-seq's own options, recognised only when the first argument is one of the long ones
    /// (`make-seq -n` is make's dry run).
    public static let makeSeq: [ToolOption] = [
        ToolOption(OptionSpec("--status"), help: """
            Show who holds the project's make lock and executor
            lock, and who waits for each.
            """, summary: "show both locks of the project and who waits"),
        ToolOption(OptionSpec("--json"), help: """
            With --status: one JSON object; with --history: a
            JSON array of runs.
            """, summary: "with --status or --history: print JSON"),
        ToolOption(OptionSpec("--history"), help: """
            Show the project's last guarded runs, makes and
            commands alike, as 'seqexec --history' does.
            """, summary: "show the last guarded runs of the project"),
        ToolOption(OptionSpec("-n", "--lines", kind: .value), "N", help: "With --history: how many runs (default: 20).", summary: "with --history: how many runs"),
        ToolOption(OptionSpec("--kill-all"), help: """
            End every guarded make, command and waiter of the
            project, as 'seqexec --kill-all' does.
            """, summary: "end every guarded make, command and waiter of the project"),
        ToolOption(OptionSpec("--mcp"), help: """
            Serve as an MCP server on stdin and stdout, for coding
            agents: run takes make's arguments; wait, status,
            runs, cancel and history as in 'seqexec --mcp'.
            """, summary: "serve as an MCP server over stdio, for agents"),
        ToolOption(OptionSpec("--completion", kind: .value), "SHELL", help: """
            Print the completion script for SHELL (bash, zsh or
            fish).
            """, summary: "print the completion script for a shell", completes: .words(["bash", "zsh", "fish"])),
        ToolOption(OptionSpec("--help"), help: "Show this help.", summary: "show the help"),
        ToolOption(OptionSpec("--version"), help: "Show the version.", summary: "show the version"),
    ]
}

extension GuardConfiguration {
    /// Applies the settings found in the environment. For each setting the first name set
    /// wins: `prefixes` in order (`SEQEXEC_`, or `MAKE_SEQ_` then `SEQEXEC_` for make-seq), then,
    /// under a migration shim only (`SEQEXEC_LEGACY_NAMES=1`), the original tooling's name
    /// where it had one. Flags, applied afterwards, beat all of them.
    /// - Throws: `GuardFailure` (125) naming the variable and the value expected.
    public mutating func applyEnvironment(prefixes: [String]) throws(GuardFailure) {
        let legacyNames = Spawn.environmentValue(Self.legacyNamesVariable).map(Setting.flag) ?? false
        for setting in GuardOptions.settings {
            guard let variable = setting.environment, let apply = setting.apply else { continue }
            let names = prefixes.map { $0 + variable } + (legacyNames ? setting.legacyEnvironment.map { [$0] } ?? [] : [])
            guard let (name, value) = names.lazy.compactMap({ name in Spawn.environmentValue(name).map { (name, $0) } }).first else { continue }
            if value.isEmpty && setting.emptyIsUnset { continue }
            try apply(&self, value, name)
        }
    }

    /// Applies an option the scanner found, if it is one of the settings.
    public mutating func apply(_ option: ScannedArguments.Option) throws(GuardFailure) {
        guard let apply = GuardOptions.settings.declaration(option.name)?.apply else { return }
        try apply(&self, option.value, option.typed)
    }
}
