import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// The orchestrator's scheduler process: starts each recurring job at its offset, then at
/// its interval, each run a child process (`seqpipe recurring-run NAME`) that runs the job's
/// command through the guard. A run due while the previous one still runs is skipped (and
/// recorded) or queued, by the job's overlap policy. A due run waits for its prerequisites
/// (run first when stale) and for a slot in the pools it needs, most important first; under
/// critical memory a non-critical run is skipped. The watchdog ends hung runs and starts
/// emergency runs of stuck jobs; the health check looks at the queue. Only the orchestrator
/// holding the store's lock starts a scheduler, so a restart never doubles the schedule.
public struct Scheduler {
    public var store: any JobStore
    public var config: PipelineConfig
    public var paths: PipelinePaths
    public var signals: SignalReceiver
    public var reporter: Reporter
    /// Readable once the orchestrator has exited: then the runs are ended and the scheduler stops.
    public var lifeline: FileDescriptor?
    /// The store's lock, as this process inherited it: passed on to each run.
    public var lockDescriptor: Int32?

    public init(store: any JobStore, config: PipelineConfig, paths: PipelinePaths, signals: SignalReceiver, reporter: Reporter) {
        self.store = store
        self.config = config
        self.paths = paths
        self.signals = signals
        self.reporter = reporter
    }

    func log(_ message: String) {
        try? FileDescriptor.standardOutput.writeAll("[\(Clock.isoUTC(Clock.wallTime()))] scheduler: \(message)\n")
    }

    func event(_ kind: EventKind, _ message: String) {
        log(message)
        try? store.addEvent(Event(at: Moment.now(), kind: kind, message: message))
    }

    struct Running {
        var process: ProcessIdentity
        var startedWall: Moment
        /// Set when the watchdog ended it as hung: why.
        var hung: String?
        /// It is itself the run again after a hung one.
        var recovery = false
    }

    /// A due run that has not started: why it runs, and what it waits for.
    struct Pending {
        var since: Int64
        var reason: String
        /// The prerequisite it waits on (and asked to run), if any.
        var prerequisite: String?
        var waiting: String?
    }

    struct Entry {
        var job: RecurringJob
        var due: Int64
        var running: Running?
        var pending: Pending?
        var queued = false
        var lastEmergency: Int64?
        /// What `status` was last told: (next due, waiting).
        var planned: (Int64, String?)?
    }

    /// When each job first runs: its offset after start, or, for a run missed while the
    /// scheduler was down, once soon (within the missed jitter) instead of once per slot.
    static func firstDue(_ job: RecurringJob, last: Heartbeat?, start: Int64, wallNow: Moment, policy: SchedulerPolicy) -> (Int64, missed: Bool) {
        let atOffset = start + Int64(job.offset * 1e9)
        guard policy.missed == .once, let lastStart = last?.lastStart else { return (atOffset, false) }
        let missedBy = wallNow - (lastStart + job.intervalMaximum)
        guard missedBy > 0, wallNow - lastStart > job.offset else { return (atOffset, false) }
        let jitter = policy.missedJitterSeconds > 0 ? Double.random(in: 0...policy.missedJitterSeconds) : 0
        return (min(atOffset, start + Int64(jitter * 1e9)), true)
    }

    /// Runs until SIGTERM (or the orchestrator's death, delivered as SIGTERM).
    @available(*, noasync)
    public func run() -> Int32 {
        let start = Clock.monotonicNanoseconds()
        let startWall = Moment.now()
        let (read, exitStatus) = heartbeats()
        guard let beats = read else { return exitStatus }
        var entries: [Entry] = []
        // Whether MemAvailable is in a pressure episode (the emergency command has run for it).
        var pressure = false
        for job in config.recurring.sorted(by: { ($0.priority, $0.offset) < ($1.priority, $1.offset) }) {
            let (due, missed) = Self.firstDue(job, last: beats[job.name], start: start, wallNow: startWall, policy: config.scheduler)
            if missed { log("\(job.name): a run was missed while the scheduler was down; running it once") }
            entries.append(Entry(job: job, due: due))
        }
        log("started: \(entries.map { "\($0.job.name) at +\(Schedule.clock(Double($0.due - start) / 1e9)) \($0.job.intervalText)" }.joined(separator: ", "))")
        let watchdog = config.watchdog
        var nextWatchdog = start + Int64(watchdog.intervalSeconds * 1e9)
        var nextHealth = start + Int64(watchdog.healthOffsetSeconds * 1e9)

        var stopping = false
        while true {
            reapEnded(&entries, stopping: stopping)
            if stopping {
                if entries.allSatisfy({ $0.running == nil }) { break }
            } else {
                let now = Clock.monotonicNanoseconds()
                markDue(&entries, now: now)
                if now >= nextWatchdog {
                    watch(&entries, startWall: startWall)
                    nextWatchdog = Clock.monotonicNanoseconds() + Int64(watchdog.intervalSeconds * 1e9)
                }
                if now >= nextHealth {
                    checkHealth(&entries)
                    nextHealth = Clock.monotonicNanoseconds() + Int64(watchdog.healthIntervalSeconds * 1e9)
                }
                startPending(&entries, pressure: &pressure)
                plan(&entries)
            }
            if stopping {
                // The teardown left only zombies to reap (SIGCHLD wakes this).
                _ = Poll.readable([signals.descriptor], timeoutMilliseconds: 100)
                _ = signals.drain()
                continue
            }
            let wake = min(entries.map(\.due).min() ?? Int64.max, nextWatchdog, nextHealth)
            let wait = Int32(clamping: max(0, wake - Clock.monotonicNanoseconds()) / 1_000_000 + 1)
            let ready = Poll.readable([signals.descriptor] + (lifeline.map { [$0] } ?? []), timeoutMilliseconds: min(wait, 1000))
            if ready.contains(1) {
                // No scheduler without its orchestrator: the runs are ended now, not finished.
                log("the orchestrator is gone: ending \(entries.filter { $0.running != nil }.count) run(s) and stopping")
                Teardown.graceful(0.5).run(find: Teardown.TreeFinder(roots: entries.compactMap { $0.running?.process }).find)
                return 1
            }
            guard ready.contains(0) else { continue }
            for received in signals.drain() where [.terminate, .interrupt, .hangup].contains(received.signal) && !stopping {
                stopping = true
                stop(&entries, received.signal)
            }
        }
        log("stopped")
        return 0
    }

    /// The recurring jobs' heartbeats, read once at start (a store that is away is waited
    /// for); nil with the status to exit with: 0 when stopped while waiting, 125 on a store error.
    func heartbeats() -> (beats: [String: Heartbeat]?, exitStatus: Int32) {
        var said = false
        while true {
            do {
                return (Dictionary(try store.heartbeats().map { ($0.name, $0) }, uniquingKeysWith: { $1 }), 0)
            } catch where error.isUnreachable {
                // A store that is away is waited for (the connection tries again by itself).
                if !said { log(error.message) }
                said = true
                switch signals.sleep(seconds: 0.5, wakingOn: lifeline.map { [$0] } ?? [], stopsOn: { [.terminate, .interrupt, .hangup].contains($0.signal) }) {
                case .elapsed: continue
                case .readable, .stopped: return (nil, 0)
                }
            } catch {
                reporter.error("scheduler: store: \(error.message)")
                return (nil, ExitCode.toolFailure)
            }
        }
    }

    /// Reaps the runs that ended: records a killed one, runs a hung one again (once), starts
    /// one queued behind it, and frees or skips the runs waiting on it as their prerequisite.
    func reapEnded(_ entries: inout [Entry], stopping: Bool) {
    while let (pid, status) = (try? Spawn.reapAny()) ?? nil {
        guard let index = entries.firstIndex(where: { $0.running?.process.pid == pid }), let ended = entries[index].running else { continue }
        entries[index].running = nil
        let name = entries[index].job.name
        var succeeded = status == .exited(0)
        if let hung = ended.hung {
            succeeded = false
            try? store.recordRecurringEnd(name, succeeded: false, error: hung, now: Moment.now())
            if stopping {
            } else if ended.recovery {
                // Run again at once only once: a job that hangs every time waits for
                // its next due run instead of looping.
                event(.watchdogRecovery, "\(name): its hung run is ended (\(GuardedCommand.describe(status))); it hung again right after a recovery run, so it waits for its next due run")
            } else {
                event(.watchdogRecovery, "\(name): its hung run is ended (\(GuardedCommand.describe(status))); running it again")
                entries[index].pending = Pending(since: Clock.monotonicNanoseconds(), reason: Self.recoveryReason)
                entries[index].queued = false
            }
        } else if status != .exited(0) && status != .exited(1) {
            // The run process itself died (killed): record it, since it could not.
            try? store.recordRecurringEnd(name, succeeded: false, error: "its run process ended (\(GuardedCommand.describe(status)))", now: Moment.now())
        }
        if entries[index].queued && !stopping {
            entries[index].queued = false
            entries[index].pending = Pending(since: Clock.monotonicNanoseconds(), reason: "queued behind the previous run")
        }
        // Runs waiting on this one as their prerequisite: a failure skips them.
        for other in entries.indices where entries[other].pending?.prerequisite == name {
            if succeeded {
                entries[other].pending?.prerequisite = nil
            } else {
                entries[other].pending = nil
                try? store.recordRecurringSkip(entries[other].job.name, reason: "its prerequisite \(name) did not succeed", now: Moment.now())
            }
        }
    }
    }

    /// The entries due at `now`: each becomes pending, or is skipped (or queued, with
    /// overlap: queue) while its last run still waits or runs.
    func markDue(_ entries: inout [Entry], now: Int64) {
    for index in entries.indices where entries[index].due <= now {
        let job = entries[index].job
        entries[index].due = now + Int64(job.nextInterval() * 1e9)
        if let pending = entries[index].pending {
            log("\(job.name): due, but its last due run still waits (\(pending.waiting ?? pending.reason)); skipped")
            try? store.recordRecurringSkip(job.name, reason: "the previous due run was still waiting (\(pending.waiting ?? pending.reason))", now: Moment.now())
        } else if entries[index].running != nil {
            switch job.overlap {
            case .skip:
                log("\(job.name): due, but its last run still runs; skipped")
                try? store.recordRecurringSkip(job.name, reason: "the previous run was still running", now: Moment.now())
            case .queue:
                entries[index].queued = true
            }
        } else {
            entries[index].pending = Pending(since: now, reason: "due")
        }
    }
    }

    /// SIGTERM (or INT, HUP): nothing new starts, and the runs hear SIGTERM and stop their
    /// steps in their own time; what is left after the grace is killed, run and tree.
    func stop(_ entries: inout [Entry], _ signal: Signal) {
        log("\(signal.name): stopping; running jobs get \(formatDuration(config.stopGraceSeconds)) to finish")
        for index in entries.indices { entries[index].pending = nil }
        let runs = entries.compactMap { $0.running?.process }
        Teardown([.send(.terminate, grace: config.stopGraceSeconds + config.killGraceSeconds + 1)])
            .run(find: Teardown.TreeFinder(roots: runs, rootsOnlyFor: [.terminate]).find)
    }

    static let memoryAlertKey = "memory:critical"

    /// The start of a memory-pressure episode: an alert, and `scheduler.emergency` run once
    /// through the guard (a minute at most), before any run is skipped for it.
    func relieve(reading: Int64, critical: Int64) {
        let message = "MemAvailable \(formatMegabytes(reading)) is below scheduler.memory_critical_mb \(formatMegabytes(critical))"
        _ = try? store.raiseAlert(Self.memoryAlertKey, kind: .memory, message: message, now: Moment.now())
        guard let emergency = config.scheduler.emergency else {
            event(.memoryCritical, "\(message); no scheduler.emergency command to run")
            return
        }
        let runner = StepRunner(
            signals: signals, reporter: reporter, captureFile: "\(paths.run)/emergency.out",
            killGrace: config.killGraceSeconds, stopGrace: 0, environment: Spawn.currentEnvironment())
        let result = runner.run(emergency, timeout: 60, memoryLimitMegabytes: nil, label: "memory emergency")
        let after = SystemMemory.available().map(formatMegabytes) ?? "?"
        event(.memoryEmergency, "\(message): ran \(GuardedCommand.displayCommand(emergency)) (\(result.succeeded ? "ok" : result.endingText)); MemAvailable now \(after)")
    }

    static let recoveryReason = "recovery after a hung run"

    /// The prerequisite `job` waits for: the first of its `after` rules whose job has not
    /// succeeded within the rule's age (a rule naming no known job is ignored), with the
    /// index of that job's entry when it must be started for it (it neither runs nor waits).
    static func prerequisiteToWaitFor(
        _ job: RecurringJob, entries: [Entry], now wall: Moment, lastSuccess: (String) -> Moment?
    ) -> (rule: RecurringJob.Prerequisite, lastSuccess: Moment?, start: Int?)? {
        for rule in job.after {
            let last = lastSuccess(rule.job)
            if let last, wall - last <= rule.maxAgeSeconds { continue }
            guard let other = entries.firstIndex(where: { $0.job.name == rule.job }) else { continue }
            let idle = entries[other].running == nil && entries[other].pending == nil
            return (rule, last, idle ? other : nil)
        }
        return nil
    }

    /// The first pool `job` needs that has no slot for it, with how many runs hold it: every
    /// slot in use, or kept (`reserved`) for a more important run that waits for it.
    static func fullPool(for job: RecurringJob, entries: [Entry], reserved: Set<String>, pools: [String: Int]) -> (pool: String, inUse: Int)? {
        var inUse: [String: Int] = [:]
        for entry in entries where entry.running != nil { for pool in entry.job.needs { inUse[pool, default: 0] += 1 } }
        guard let full = job.needs.first(where: { reserved.contains($0) || inUse[$0, default: 0] >= pools[$0] ?? Int.max }) else { return nil }
        return (full, inUse[full, default: 0])
    }

    /// Starts the due runs that may start, most important (then longest waiting) first: a
    /// stale prerequisite runs first, a full pool keeps its slot for the first in line, and
    /// critical memory skips a non-critical run.
    func startPending(_ entries: inout [Entry], pressure: inout Bool) {
        var beats: [String: Heartbeat]?
        var reserved: Set<String> = []
        var again = true
        while again {
            again = false
            let order = entries.indices.filter { entries[$0].pending != nil && entries[$0].running == nil }
                .sorted { (entries[$0].job.priority, entries[$0].pending!.since) < (entries[$1].job.priority, entries[$1].pending!.since) }
            for index in order where entries[index].pending != nil && entries[index].running == nil {
                let job = entries[index].job
                if let prerequisite = entries[index].pending?.prerequisite {
                    // A prerequisite that succeeded was cleared when it was reaped; one that
                    // neither runs nor waits was skipped (memory) or could not start.
                    guard let other = entries.firstIndex(where: { $0.job.name == prerequisite }),
                          entries[other].running == nil && entries[other].pending == nil else { continue }
                    entries[index].pending = nil
                    log("\(job.name): its prerequisite \(prerequisite) did not run; skipped")
                    try? store.recordRecurringSkip(job.name, reason: "its prerequisite \(prerequisite) did not run", now: Moment.now())
                    continue
                }
                // Prerequisites: each must have succeeded within its age.
                if !job.after.isEmpty {
                    if beats == nil { beats = Dictionary(((try? store.heartbeats()) ?? []).map { ($0.name, $0) }, uniquingKeysWith: { $1 }) }
                    let wall = Moment.now()
                    if let wait = Self.prerequisiteToWaitFor(job, entries: entries, now: wall, lastSuccess: { beats?[$0]?.lastSuccess }) {
                        if let other = wait.start {
                            let age = wait.lastSuccess.map { "is \(formatDuration(wall - $0)) old" } ?? "never happened"
                            event(.dependencyRun, "\(job.name): its prerequisite \(wait.rule.job)'s last success \(age) (max \(formatDuration(wait.rule.maxAgeSeconds))); running \(wait.rule.job) first")
                            entries[other].pending = Pending(since: Clock.monotonicNanoseconds(), reason: "prerequisite of \(job.name)")
                            again = true
                        }
                        entries[index].pending?.prerequisite = wait.rule.job
                        entries[index].pending?.waiting = "waiting for its prerequisite \(wait.rule.job)"
                        continue
                    }
                }
                // Pools: one slot of each; a slot a more important run waits for stays its.
                if let (full, inUse) = Self.fullPool(for: job, entries: entries, reserved: reserved, pools: config.pools) {
                    let waiting = "waiting for pool \(full) (\(inUse) of \(config.pools[full] ?? 0) in use)"
                    if entries[index].pending?.waiting != waiting { log("\(job.name): \(waiting)") }
                    entries[index].pending?.waiting = waiting
                    reserved.formUnion(job.needs)
                    continue
                }
                // Memory: the guard's reading of MemAvailable.
                let critical = Int64(config.scheduler.memoryCriticalMegabytes) << 20
                var available = SystemMemory.available()
                if let reading = available, reading < critical, !pressure {
                    // A new pressure episode: an alert for people, and the clean-up, once.
                    pressure = true
                    relieve(reading: reading, critical: critical)
                    available = SystemMemory.available()
                } else if let reading = available, reading >= critical, pressure {
                    pressure = false
                    _ = try? store.clearAlert(Self.memoryAlertKey, now: Moment.now())
                    event(.memoryRecovered, "MemAvailable \(formatMegabytes(reading)) is back above scheduler.memory_critical_mb \(formatMegabytes(critical))")
                }
                if let available, available < critical {
                    let reading = "MemAvailable \(formatMegabytes(available)) is below scheduler.memory_critical_mb \(formatMegabytes(critical))"
                    if !job.critical {
                        log("\(job.name): memory critical (\(reading)); skipped")
                        try? store.recordRecurringSkip(job.name, reason: "memory critical: \(reading)", now: Moment.now())
                        entries[index].pending = nil
                        continue
                    }
                    event(.memoryWarning, "\(job.name): memory critical (\(reading)); a critical job, so it runs anyway")
                }
                let reason = entries[index].pending?.reason ?? "due"
                if reason != "due" { log("\(job.name): starting (\(reason))") }
                entries[index].pending = nil
                if let process = spawn(job) {
                    entries[index].running = Running(process: process, startedWall: Moment.now(), recovery: reason == Self.recoveryReason)
                }
            }
        }
    }

    /// Tells the store (for `status`) each job's next run and what a due run waits for.
    func plan(_ entries: inout [Entry]) {
        let now = Clock.monotonicNanoseconds()
        let wall = Moment.now()
        for index in entries.indices {
            let waiting = entries[index].pending.map { $0.waiting ?? "starting" }
            if let planned = entries[index].planned, planned.0 == entries[index].due, planned.1 == waiting { continue }
            entries[index].planned = (entries[index].due, waiting)
            try? store.recordRecurringPlan(entries[index].job.name, nextDue: wall + Double(entries[index].due - now) / 1e9, waiting: waiting)
        }
    }

    /// Starts one run of `job` as a child process; nil (and a recorded failure) if it cannot.
    func spawn(_ job: RecurringJob) -> ProcessIdentity? {
        let executable = (try? FileSystem.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        var orders = MemberOrders(.recurringRun, parent: Processes.currentPid, lockDescriptor: lockDescriptor, configVersion: config.version)
        orders.job = job.name
        let argv = orders.command(executable: executable, paths: paths)
        do {
            let pid = try Spawn.spawn(argv, environment: paths.memberStore(Spawn.currentEnvironment()).environment, resetSignals: signals.signalsToReset())
            return ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
        } catch {
            log("\(job.name): cannot start a run: \(error)")
            try? store.recordRecurringEnd(job.name, succeeded: false, error: "cannot start: \(error)", now: Moment.now())
            return nil
        }
    }
}
