import Glibc
import SeqSystem

/// Ending every descendant of this process, which is a child subreaper: orphans of the tree
/// are reparented here, so "no children left" (waitid's ECHILD) means the whole tree is gone.
public struct ProcessTree {
    public var signals: SignalReceiver

    public init(signals: SignalReceiver) { self.signals = signals }

    /// Reaps every child that has ended. Returns true when no child is left at all.
    public func reapEnded(_ onReap: (Int32, TerminationStatus) -> Void) -> Bool {
        while true {
            do {
                guard let (pid, status) = try Spawn.reapAny() else { return false }
                onReap(pid, status)
            } catch {
                return true
            }
        }
    }

    /// The live descendants of this process, found over /proc, deepest first.
    public func descendants() -> [ProcStat] {
        Processes.descendants(of: [Processes.currentPid])
    }

    /// Ends the whole tree: SIGTERM (and SIGCONT, so a stopped process can act on it) to every
    /// descendant, up to `grace` seconds for them to go, then SIGKILL until none is left.
    /// Every process that ends is reaped here. Returns how many processes were signalled.
    @available(*, noasync)
    @discardableResult
    public func end(grace: Double, onReap: (Int32, TerminationStatus) -> Void) -> Int {
        if reapEnded(onReap) { return 0 }
        var signalled = Set<ProcessIdentity>()
        for process in descendants() {
            let identity = process.identity
            if Processes.signal(identity, SIGTERM) {
                Processes.signal(identity, SIGCONT)
                signalled.insert(identity)
            }
        }
        if waitUntilEmpty(seconds: grace, onReap) { return signalled.count }
        // Some ignored SIGTERM or spawned more: kill what is there, again, until nothing is.
        for _ in 0..<50 {
            for process in descendants() where Processes.signal(process.identity, SIGKILL) {
                signalled.insert(process.identity)
            }
            if waitUntilEmpty(seconds: 0.5, onReap) { return signalled.count }
        }
        return signalled.count
    }

    /// Waits for SIGCHLD, reaping, until no child is left or `seconds` pass.
    func waitUntilEmpty(seconds: Double, _ onReap: (Int32, TerminationStatus) -> Void) -> Bool {
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while true {
            if reapEnded(onReap) { return true }
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 { return false }
            // SIGCHLD arrives for our own children; a grandchild that outlives its parent becomes
            // our child. Wake at least every 100 ms to re-check in case that parent ignored us.
            if !Poll.readable([signals.descriptor], timeoutMilliseconds: Int32(min(left / 1_000_000 + 1, 100))).isEmpty {
                _ = signals.drain()
            }
        }
    }
}

/// How a guarded command's run ended.
public enum RunEnding: Sendable, Equatable {
    case exited(TerminationStatus)
    case timedOut
    case couldNotStart(Errno)
}

/// Runs one command and sees it to its end: signals forwarded, a time limit, leftovers ended.
public struct Supervisor {
    public var signals: SignalReceiver
    public var reporter: Reporter
    /// Seconds, or nil for no limit.
    public var timeout: Double?
    public var killGrace: Double

    public init(signals: SignalReceiver, reporter: Reporter, timeout: Double?, killGrace: Double) {
        self.signals = signals
        self.reporter = reporter
        self.timeout = timeout
        self.killGrace = killGrace
    }

    /// Spawns `arguments` (argv as given, never through a shell), calls `onStart` with the
    /// child's identity, and returns once the command and every descendant are gone.
    @available(*, noasync)
    public func run(
        _ arguments: [String], environment: [String], onStart: (ProcessIdentity) -> Void
    ) -> RunEnding {
        let pid: Int32
        do {
            pid = try Spawn.spawn(arguments, environment: environment, resetSignals: signals.signalsToReset())
        } catch {
            return .couldNotStart(error)
        }
        let startTime = (try? ProcStat.read(pid).startTime) ?? 0
        onStart(ProcessIdentity(pid: pid, startTime: startTime))
        reporter.step("started pid \(pid): \(arguments.joined(separator: " "))")

        let tree = ProcessTree(signals: signals)
        let deadline = timeout.map { Clock.monotonicNanoseconds() + Int64($0 * 1e9) }
        var status: TerminationStatus?
        let record = { (reaped: Int32, ending: TerminationStatus) in if reaped == pid { status = ending } }
        while status == nil {
            _ = tree.reapEnded(record)
            if status != nil { break }
            var wait: Int32 = -1
            if let deadline {
                let left = deadline - Clock.monotonicNanoseconds()
                if left <= 0 {
                    reporter.error("timed out after \(formatDuration(timeout!)): '\(arguments.joined(separator: " "))'; ending its process tree")
                    tree.end(grace: killGrace, onReap: record)
                    return .timedOut
                }
                wait = Int32(clamping: left / 1_000_000 + 1)
            }
            guard !Poll.readable([signals.descriptor], timeoutMilliseconds: wait).isEmpty else { continue }
            for signal in signals.drain() where signal.number != SIGCHLD {
                // A terminal's Ctrl-C already reached the command, which shares our process group.
                if signal.cameFromTerminal { continue }
                reporter.step("forwarding \(SignalName.of(signal.number)) to pid \(pid)")
                Processes.signalChild(pid, signal.number)
            }
        }
        // The command is gone; anything it left behind is still ours to end.
        if !tree.reapEnded({ _, _ in }) {
            let leftovers = tree.descendants()
            if !leftovers.isEmpty {
                reporter.notice("ending \(leftovers.count) leftover process\(leftovers.count == 1 ? "" : "es") of '\(arguments.joined(separator: " "))'")
            }
            tree.end(grace: killGrace, onReap: { _, _ in })
        }
        return .exited(status!)
    }
}

/// `5s`, `1.5s`.
func formatDuration(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}
