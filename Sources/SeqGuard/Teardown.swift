import SeqSystem

/// The one way this toolkit ends processes: a list of steps (send a signal, give the targets
/// a grace to go), then SIGKILL until nothing is left, then a check that nothing is. Targets
/// are found afresh before every signal, by pid and start time, and waited on with pidfds, so
/// a reused pid is never hit and an exit wakes the wait at once.
///
/// seqexec's timeout and memory limit, `--kill-all`, seqpipe's stop, its fencing of orphaned
/// attempts and the watchdog's hung runs all end processes through this.
public struct Teardown: Sendable {
    /// One step: send `signal` (with SIGCONT after it, so a stopped process can act on it)
    /// and wait up to `grace` seconds for the targets to go.
    public enum Step: Sendable {
        case send(Signal, grace: Double)
    }

    public var steps: [Step]
    /// Rounds of SIGKILL after the steps, each waiting up to `killWait` seconds.
    public var killRounds = 10
    public var killWait = 1.0

    public init(_ steps: [Step]) { self.steps = steps }

    /// SIGTERM, `grace` seconds, then SIGKILL.
    public static func graceful(_ grace: Double) -> Teardown { Teardown([.send(.terminate, grace: grace)]) }

    /// A process to end. Lower waves go first: each wave of a step is signalled and waited
    /// for before the next is signalled (waiters before holders, for `--kill-all`).
    public struct Target: Hashable, Sendable {
        public var process: ProcessIdentity
        public var command: String
        public var wave: Int

        public init(_ process: ProcessIdentity, command: String, wave: Int = 0) {
            self.process = process
            self.command = command
            self.wave = wave
        }
    }

    /// What a teardown did.
    public struct Report: Sendable {
        /// Every process signalled at least once, in the order first signalled.
        public var ended: [Target] = []
        /// Those that needed SIGKILL.
        public var killed: Set<ProcessIdentity> = []
        /// Those still alive at the end (a process stuck in the kernel): the caller must not
        /// act as if they were gone.
        public var survivors: [Target] = []

        public var isComplete: Bool { survivors.isEmpty }
    }

    /// Ends what `find` returns. `find` is asked again before every signal with the signal
    /// about to be sent, so it may name roots for a polite step and whole trees for SIGKILL,
    /// and it catches processes started meanwhile. `escalate` (asked every 20 ms) may cut a
    /// grace short; `reap` is called whenever something ended, for a parent that must reap.
    @available(*, noasync)
    @discardableResult
    public func run(find: (Signal) -> [Target], escalate: (() -> Bool)? = nil, reap: () -> Void = {}) -> Report {
        var report = Report()
        var signalledOnce = Set<ProcessIdentity>()
        func note(_ target: Target) {
            if signalledOnce.insert(target.process).inserted { report.ended.append(target) }
        }
        reap()
        for case .send(let signal, let grace) in steps {
            let first = find(signal)
            if first.isEmpty { return report }
            for wave in Set(first.map(\.wave)).sorted() {
                var sent = Set<ProcessIdentity>()
                let deadline = Clock.monotonicNanoseconds() + Int64(grace * 1e9)
                while true {
                    let current = find(signal).filter { $0.wave == wave }
                    if current.isEmpty { break }
                    for target in current where !sent.contains(target.process) {
                        sent.insert(target.process)
                        if Processes.signal(target.process, signal) {
                            if signal != .kill && signal != .continue { Processes.signal(target.process, .continue) }
                            note(target)
                        }
                    }
                    if !wait(for: current.map(\.process), until: deadline, escalate: escalate, reap: reap) { break }
                }
            }
        }
        for _ in 0..<killRounds {
            let all = find(.kill)
            if all.isEmpty { return report }
            // Waves in order here too: a supervisor (a higher wave) outlives the tree it
            // watches, so whatever the tree starts meanwhile is still found under it.
            for wave in Set(all.map(\.wave)).sorted() {
                let current = all.filter { $0.wave == wave }
                for target in current where Processes.signal(target.process, .kill) {
                    note(target)
                    report.killed.insert(target.process)
                }
                let deadline = Clock.monotonicNanoseconds() + Int64(killWait * 1e9)
                while wait(for: current.map(\.process), until: deadline, escalate: nil, reap: reap) {
                    if current.allSatisfy({ !$0.process.isAlive }) { break }
                }
            }
        }
        reap()
        report.survivors = find(.kill)
        return report
    }

    /// Waits until one of `processes` exits (true), or the deadline passes or `escalate` says
    /// so (false). A process that is already gone counts as exited.
    func wait(for processes: [ProcessIdentity], until deadline: Int64, escalate: (() -> Bool)?, reap: () -> Void) -> Bool {
        var pidfds: [FileDescriptor] = []
        defer { for fd in pidfds { fd.close() } }
        for process in processes {
            guard let fd = Processes.openPidfd(process) else {
                // Gone already, or no pidfds here: look again soon.
                if !process.isAlive { reap(); return true }
                continue
            }
            pidfds.append(fd)
        }
        while true {
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 || escalate?() == true { return false }
            // Without pidfds for all (an old kernel), or with an escalation to ask, wake often.
            let cap: Int64 = escalate != nil ? 20 : pidfds.count < processes.count ? 50 : 1000
            let ready = Poll.readable(pidfds, timeoutMilliseconds: Int32(clamping: min(left / 1_000_000 + 1, cap)))
            if !ready.isEmpty || processes.contains(where: { !$0.isAlive }) {
                reap()
                return true
            }
        }
    }
}

extension Teardown {
    /// A finder for `roots` and every process under them. A process once seen stays a target
    /// while it lives, even after its parent died and it was reparented out of the tree.
    /// `rootsOnlyFor` names signals that go to the roots alone (a polite SIGTERM that the
    /// root passes on to its own command in its own way); for the others, `extra` adds
    /// targets found another way, and their trees.
    public final class TreeFinder: @unchecked Sendable {
        // @unchecked: used from the one thread that runs the teardown.
        var seen: [ProcessIdentity: String] = [:]
        var roots: [ProcessIdentity]
        let rootsOnlyFor: Set<Signal>
        let extra: () -> [Target]

        /// - Parameter extra: more targets found another way (a lock's holders), asked each time.
        public init(roots: [ProcessIdentity], rootsOnlyFor: Set<Signal> = [], extra: @escaping () -> [Target] = { [] }) {
            self.roots = roots
            self.rootsOnlyFor = rootsOnlyFor
            self.extra = extra
        }

        public func find(_ signal: Signal) -> [Target] {
            var found: [ProcessIdentity: String] = [:]
            for root in roots where root.isAlive { found[root] = (try? ProcStat.read(root.pid).command) ?? "?" }
            var waves: [ProcessIdentity: Int] = [:]
            if !rootsOnlyFor.contains(signal) {
                for target in extra() where target.process.isAlive {
                    found[target.process] = target.command
                    waves[target.process] = target.wave
                }
                let table = Processes.all()
                let alive = Set(table.filter { $0.state != "Z" }.map(\.identity))
                for (process, command) in seen where alive.contains(process) { found[process] = command }
                for stat in Processes.descendants(of: Set(found.keys.map(\.pid)), in: table) { found[stat.identity] = stat.command }
            }
            for (process, command) in found { seen[process] = command }
            // Roots first, then the rest deepest first: a run hears of its stop before its step dies.
            let rootSet = Set(roots)
            return found.sorted { lhs, rhs in
                let (l, r) = (rootSet.contains(lhs.key), rootSet.contains(rhs.key))
                return l != r ? l : lhs.key.pid > rhs.key.pid
            }.map { Target($0.key, command: $0.value, wave: waves[$0.key] ?? 0) }
        }
    }
}
