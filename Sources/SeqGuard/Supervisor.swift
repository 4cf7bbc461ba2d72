import SeqSystem

/// How a guarded command's run ended.
public enum RunEnding: Sendable, Equatable {
    case exited(TerminationStatus)
    case timedOut
    /// The memory monitor ended the tree (or, with `--memory-action largest`, the command).
    case memoryExceeded
    case couldNotStart(Errno)
    /// A stop was asked for (`stopGrace` set) and the command outlived the grace.
    case stopped
}

/// A finished run, as the history records it.
public struct SupervisedRun: Sendable {
    public var ending: RunEnding
    public var child: ProcessIdentity?
    public var runNanoseconds: Int64 = 0
    /// The largest tree total the monitor saw; nil when it did not run.
    public var peakTreeBytes: Int64?
    /// Of it, the most in tmpfs files and memfds the tree had open.
    public var peakSharedFileBytes: Int64?
    /// Processes the monitor ended with `--memory-action largest`.
    public var memoryVictims = 0
    /// The kernel's OOM-kill count soon after the start (read 20 ms in, not on the way in:
    /// a command that ends sooner never pays for it), to tell an OOM kill from a kill -9.
    public var oomKillsAtStart: Int64?
    /// SIGINT, SIGTERM or SIGHUP arrived while it ran, with `stopGrace` set: the caller
    /// should stop after this command.
    public var stopRequested = false
    /// The `cancel` descriptor became readable (a worker's orchestrator is gone): the tree
    /// was ended at once and the caller must stop now.
    public var cancelled = false
    /// The tick said the run serves no one any more: the tree was ended at once.
    public var abandoned = false
    /// Who enforced the memory limit: "kernel" (a cgroup) or "sampled" (/proc); nil without one.
    public var enforcement: String?

    public init(ending: RunEnding, child: ProcessIdentity? = nil) {
        self.ending = ending
        self.child = child
    }
}

/// Runs one command and sees it to its end: signals forwarded, a time limit, a memory limit
/// over the whole tree, leftovers ended.
public struct Supervisor {
    public var signals: SignalReceiver
    public var reporter: Reporter
    /// Seconds, or nil for no limit.
    public var timeout: Double?
    public var killGrace: Double
    /// Nil turns the memory monitor off: nothing is read from /proc while the command runs.
    public var memory: MemoryPolicy?
    /// Where the command's stdout and stderr go; nil inherits ours.
    public var output: FileDescriptor?
    /// Where the command's stdin comes from; nil inherits ours.
    public var input: FileDescriptor?
    /// When set, a SIGINT, SIGTERM or SIGHUP sent to this process is not forwarded: the
    /// command gets this many seconds to finish, then its tree is ended. A caller that runs
    /// a sequence of commands (a pipeline worker) stops cleanly between them.
    public var stopGrace: Double?
    /// Called about every `interval` seconds while the command runs (a heartbeat). When it
    /// answers false the run serves no one any more (a pipeline step whose claim was taken
    /// back): the tree is ended at once and the run is `.stopped` with `abandoned` set.
    public var tick: (interval: Double, action: () -> Bool)?
    /// About this many bytes of `output` (a file) are kept on disk while the command runs:
    /// every half second (every 50 ms while it prints fast), what came before its last
    /// `outputCap / 2` bytes is given back to the disk (a hole; the size and the tail stay),
    /// so a command that prints without end cannot fill it. Nil: no cap.
    public var outputCap: Int64?
    /// Descriptors open in the command as the numbers given (a progress channel).
    public var passing: [(descriptor: FileDescriptor, as: Int32)] = []
    /// Once readable, the command's tree is ended at once (SIGTERM, `cancelGrace`, SIGKILL)
    /// and the run returns `.stopped` with `cancelled` set: a pidfd of the process this one
    /// serves, so that nothing it started outlives it for long.
    public var cancel: FileDescriptor?
    public var cancelGrace = 0.5
    /// The run's cgroups, when the kernel enforces limits: the command is spawned inside them.
    public var cgroup: RunCgroup?
    /// What is said when `cancel` ends the run; nil: the process it serves is gone.
    public var cancelNotice: (() -> String)?
    /// Children of this process that are not the command's (a worker's device server): left
    /// out of its memory and never ended with its tree.
    public var spared: Set<Int32> = []
    /// Asked once the command has ended, when something of its tree is left: processes (and
    /// their trees) that are not leftovers after all (runs submitted from inside the command,
    /// which outlive it by design). Nil: everything left is a leftover.
    public var spareAtEnd: (@Sendable () -> Set<Int32>)?

    public init(signals: SignalReceiver, reporter: Reporter, timeout: Double?, killGrace: Double, memory: MemoryPolicy? = nil) {
        self.signals = signals
        self.reporter = reporter
        self.timeout = timeout
        self.killGrace = killGrace
        self.memory = memory
    }

    /// Spawns `arguments` (argv as given, never through a shell), calls `onStart` with the
    /// child's identity, and returns once the command and every descendant are gone.
    @available(*, noasync)
    public func run(
        _ arguments: [String], environment: [String], onStart: (ProcessIdentity) -> Void
    ) -> SupervisedRun {
        run(arguments.map { Array($0.utf8) }, environment: environment.map { Array($0.utf8) }, onStart: onStart)
    }

    /// The same with argv and the environment as bytes, passed on exactly.
    @available(*, noasync)
    public func run(
        _ arguments: [[UInt8]], environment: [[UInt8]], onStart: (ProcessIdentity) -> Void
    ) -> SupervisedRun {
        let started = Clock.monotonicNanoseconds()
        let pid: Int32
        do {
            // Born in the run's cgroups: this process steps in for the spawn and back out.
            if let cgroup {
                do { try cgroup.enter() } catch {
                    cgroup.leave()
                    reporter.error("\(error.message); '\(GuardedCommand.displayCommand(arguments.map { String(decoding: $0, as: UTF8.self) }))' was not run")
                    return SupervisedRun(ending: .couldNotStart(error.errno ?? .notPermitted))
                }
            }
            defer { cgroup?.leave() }
            pid = try Spawn.spawn(
                arguments, environment: environment, resetSignals: signals.signalsToReset(),
                input: input, output: output, passing: passing)
        } catch {
            return SupervisedRun(ending: .couldNotStart(error))
        }
        let child = ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
        onStart(child)
        let display = GuardedCommand.displayCommand(arguments.map { String(decoding: $0, as: UTF8.self) })
        reporter.step("started pid \(pid): \(display)")

        return RunLoop(self, child: child, display: display, started: started).run()
    }
}
