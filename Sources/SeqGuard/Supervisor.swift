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

        var result = SupervisedRun(ending: .timedOut, child: child)
        var monitor = memory.map { policy in
            var monitor = MemoryMonitor(policy: policy)
            monitor.spared = spared
            return monitor
        }
        func finished() -> SupervisedRun {
            result.runNanoseconds = Clock.monotonicNanoseconds() - started
            if let monitor, monitor.samplesTaken > 0 { result.peakSharedFileBytes = monitor.peakSharedFiles }
            return result
        }
        var tree = ProcessTree(signals: signals, spared: spared)
        let deadline = timeout.map { started + Int64($0 * 1e9) }
        let firstLook = started + Int64(MemoryMonitor.startupDelay * 1e9)
        var nextSample = firstLook
        var oomBaselineDue = true
        var warned = false
        // With --memory-action largest: processes already ended, left out of later samples.
        var victims = Set<ProcessIdentity>()
        var commandEndedForMemory = false
        var status: TerminationStatus?
        let record = { (reaped: Int32, ending: TerminationStatus) in if reaped == pid { status = ending } }
        /// The run serves no one any more (`cancelled` or `abandoned` is set): its tree is ended
        /// at once, after `cancelGrace`.
        func endNow(_ notice: String) -> SupervisedRun {
            result.peakTreeBytes = monitor?.peak
            reporter.notice(notice)
            tree.end(Teardown.graceful(cancelGrace), onReap: record)
            result.ending = .stopped
            return finished()
        }
        var stopDeadline: Int64?
        var nextTick = tick.map { started + Int64($0.interval * 1e9) }
        var nextOutputCheck = started + 50_000_000
        var released: Int64 = 0
        var outputSeen: Int64 = 0
        while status == nil {
            _ = tree.reapEnded(record)
            if status != nil { break }
            var now = Clock.monotonicNanoseconds()
            if let deadline, deadline <= now {
                result.peakTreeBytes = monitor?.peak
                reporter.error("timed out after \(formatDuration(timeout!)): '\(display)'; ending its process tree")
                tree.end(.graceful(killGrace), onReap: record)
                return finished()
            }
            if let stopDeadline, stopDeadline <= now {
                result.peakTreeBytes = monitor?.peak
                reporter.notice("stop asked for: ending '\(display)' after its \(formatDuration(stopGrace ?? 0)) grace")
                tree.end(.graceful(killGrace), onReap: record)
                result.ending = .stopped
                return finished()
            }
            if let tick, let due = nextTick, due <= now {
                if !tick.action() {
                    result.abandoned = true
                    return endNow("'\(display)' serves no one any more: ending it now")
                }
                nextTick = Clock.monotonicNanoseconds() + Int64(tick.interval * 1e9)
            }
            if let outputCap, let output, nextOutputCheck <= now {
                let size = (try? output.status().size) ?? 0
                released = Self.capOutput(output, size: size, cap: outputCap, released: released)
                // A command printing fast (a quarter of the cap since the last look) is looked
                // at every 50 ms until it slows down.
                nextOutputCheck = now + (size - outputSeen > outputCap / 4 ? 50_000_000 : 500_000_000)
                outputSeen = size
            }
            if oomBaselineDue && firstLook <= now {
                result.oomKillsAtStart = SystemMemory.oomKillCount()
                oomBaselineDue = false
            }
            if var sampler = monitor, nextSample <= now {
                let (usage, delay) = sampler.sampleAndSchedule(excluding: victims)
                monitor = sampler
                nextSample = now + Int64(delay * 1e9)
                let limit = sampler.policy.limitBytes
                if usage.total >= limit {
                    let biggest = usage.biggest.map { "; biggest \($0.description)" } ?? ""
                    let measure = "\(formatMegabytes(usage.total)) \(sampler.policy.metric.rawValue) over \(usage.processes.count) process\(usage.processes.count == 1 ? "" : "es")"
                    switch sampler.policy.action {
                    case .tree:
                        reporter.error("memory limit \(formatMegabytes(limit)) reached by '\(display)': \(measure), peak \(formatMegabytes(sampler.peak))\(biggest); ending its process tree (exit 137)")
                        // The grace is for cleaning up, not for growing: a tree that keeps
                        // growing past the limit meanwhile gets SIGKILL at once.
                        var watcher = sampler
                        tree.end(.graceful(killGrace), escalate: {
                            watcher.sample().total > limit + limit / 10
                        }, onReap: record)
                        result.ending = .memoryExceeded
                        result.peakTreeBytes = max(sampler.peak, watcher.peak)
                        return finished()
                    case .largest:
                        if let victim = usage.biggest {
                            reporter.error("memory limit \(formatMegabytes(limit)) reached by '\(display)': \(measure); ending its largest process, pid \(victim.identity.pid) '\(victim.command)' \(formatMegabytes(victim.bytes))")
                            // The rest of the tree runs on; this one process gets the grace.
                            let report = Teardown.graceful(killGrace).run(
                                find: { _ in victim.identity.isAlive ? [Teardown.Target(victim.identity, command: victim.command)] : [] },
                                reap: { _ = tree.reapEnded(record) })
                            if !report.ended.isEmpty {
                                victims.insert(victim.identity)
                                result.memoryVictims += 1
                                if victim.identity == child { commandEndedForMemory = true }
                            }
                        }
                    }
                } else if !warned && usage.total * 2 >= limit {
                    warned = true
                    let biggest = usage.biggest.map { "; biggest \($0.description)" } ?? ""
                    reporter.warning("memory: '\(display)' uses \(formatMegabytes(usage.total)) (\(sampler.policy.metric.rawValue)), over half its \(formatMegabytes(limit)) limit\(biggest)")
                }
            }
            victims = victims.filter(\.isAlive)
            now = Clock.monotonicNanoseconds()
            var wake = deadline ?? Int64.max
            if monitor != nil { wake = min(wake, nextSample) }
            if let stopDeadline { wake = min(wake, stopDeadline) }
            if let nextTick { wake = min(wake, nextTick) }
            if outputCap != nil && output != nil { wake = min(wake, nextOutputCheck) }
            if oomBaselineDue { wake = min(wake, firstLook) }
            let wait: Int32 = wake == Int64.max ? -1 : Int32(clamping: max(0, wake - now) / 1_000_000 + 1)
            let ready = Poll.readable([signals.descriptor] + (cancel.map { [$0] } ?? []), timeoutMilliseconds: wait)
            if ready.contains(1) {
                result.cancelled = true
                return endNow("the process this run serves is gone: ending '\(display)' now")
            }
            guard ready.contains(0) else { continue }
            for received in signals.drain() where received.signal != .child {
                if let stopGrace, [.interrupt, .terminate, .hangup].contains(received.signal) {
                    result.stopRequested = true
                    if stopDeadline == nil {
                        stopDeadline = Clock.monotonicNanoseconds() + Int64(stopGrace * 1e9)
                        reporter.step("\(received.signal.name): letting '\(display)' finish within \(formatDuration(stopGrace))")
                    }
                    continue
                }
                // A terminal's Ctrl-C already reached the command, which shares our process group.
                if received.cameFromTerminal { continue }
                reporter.step("forwarding \(received.signal.name) to pid \(pid)")
                Processes.signalChild(pid, received.signal)
            }
        }
        result.peakTreeBytes = monitor?.peak
        result.ending = commandEndedForMemory ? .memoryExceeded : .exited(status!)
        // The command is gone; anything it left behind is still ours to end.
        if !tree.reapEnded({ _, _ in }) {
            if let spareAtEnd { tree.spared.formUnion(spareAtEnd()) }
            let leftovers = tree.descendants()
            if !leftovers.isEmpty {
                reporter.notice("ending \(leftovers.count) leftover process\(leftovers.count == 1 ? "" : "es") of '\(display)'")
            }
            tree.end(.graceful(killGrace), onReap: { _, _ in })
        }
        return finished()
    }
}


extension Supervisor {
    /// Gives back the blocks of `output` before its last `cap / 2` bytes once it holds more
    /// than `cap` (whole 64 KiB pieces); returns where the released range now ends. A
    /// filesystem without holes keeps the file whole.
    static func capOutput(_ output: FileDescriptor, size: Int64, cap: Int64, released: Int64) -> Int64 {
        guard size - released > cap else { return released }
        let upTo = (size - cap / 2) / 65536 * 65536
        guard upTo > released, (try? output.releaseRange(offset: released, length: upTo - released)) != nil else { return released }
        return upTo
    }
}
