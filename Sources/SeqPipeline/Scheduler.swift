import Glibc
import SeqGuard
import SeqSystem

/// The orchestrator's scheduler process: starts each recurring job at its offset, then at
/// its interval, each run a child process (`seqpipe recurring-run NAME`) that runs the job's
/// command through the guard. A run due while the previous one still runs is skipped (and
/// recorded) or queued, by the job's overlap policy. Only the orchestrator holding the
/// store's lock starts a scheduler, so a restart never doubles the schedule.
public struct Scheduler {
    public var store: any JobStore
    public var config: PipelineConfig
    public var paths: PipelinePaths
    public var signals: SignalReceiver
    public var reporter: Reporter

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

    struct Entry {
        var job: RecurringJob
        var due: Int64
        var running: ProcessIdentity?
        var queued = false
    }

    /// When each job first runs: its offset after start, or, for a run missed while the
    /// scheduler was down, once soon (within the missed jitter) instead of once per slot.
    func firstDue(_ job: RecurringJob, last: Heartbeat?, start: Int64, wallNow: Double) -> (Int64, missed: Bool) {
        let atOffset = start + Int64(job.offset * 1e9)
        guard config.scheduler.missed == .once, let lastStart = last?.lastStart else { return (atOffset, false) }
        let missedBy = wallNow - (lastStart + job.intervalMaximum)
        guard missedBy > 0, wallNow - lastStart > job.offset else { return (atOffset, false) }
        let jitter = config.scheduler.missedJitterSeconds > 0 ? Double.random(in: 0...config.scheduler.missedJitterSeconds) : 0
        return (min(atOffset, start + Int64(jitter * 1e9)), true)
    }

    /// Runs until SIGTERM (or the orchestrator's death, delivered as SIGTERM).
    @available(*, noasync)
    public func run() -> Int32 {
        let start = Clock.monotonicNanoseconds()
        let beats: [String: Heartbeat]
        do {
            beats = Dictionary(try store.heartbeats().map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        } catch {
            reporter.error("scheduler: store: \(error.message)")
            return ExitCode.toolFailure
        }
        let wallNow = nowSeconds()
        var entries: [Entry] = []
        for job in config.recurring.sorted(by: { ($0.priority, $0.offset) < ($1.priority, $1.offset) }) {
            let (due, missed) = firstDue(job, last: beats[job.name], start: start, wallNow: wallNow)
            if missed { log("\(job.name): a run was missed while the scheduler was down; running it once") }
            entries.append(Entry(job: job, due: due))
        }
        log("started: \(entries.map { "\($0.job.name) at +\(Schedule.clock(Double($0.due - start) / 1e9)) \($0.job.intervalText)" }.joined(separator: ", "))")

        var stopping = false
        var stopDeadline: Int64?
        while true {
            while let (pid, status) = (try? Spawn.reapAny()) ?? nil {
                guard let index = entries.firstIndex(where: { $0.running?.pid == pid }) else { continue }
                entries[index].running = nil
                if status != .exited(0) && status != .exited(1) {
                    // The run process itself died (killed): record it, since it could not.
                    try? store.recordRecurringEnd(entries[index].job.name, succeeded: false,
                                                  error: "its run process ended (\(GuardedCommand.describe(status)))", now: nowSeconds())
                }
                if entries[index].queued && !stopping {
                    entries[index].queued = false
                    entries[index].due = Clock.monotonicNanoseconds()
                }
            }
            if stopping {
                if entries.allSatisfy({ $0.running == nil }) { break }
                if let deadline = stopDeadline, Clock.monotonicNanoseconds() >= deadline {
                    for entry in entries { if let process = entry.running { Processes.signal(process, SIGKILL) } }
                    stopDeadline = nil
                }
            } else {
                let now = Clock.monotonicNanoseconds()
                // Due runs, the most important first.
                for index in entries.indices where entries[index].due <= now {
                    let job = entries[index].job
                    entries[index].due = now + Int64(job.nextInterval() * 1e9)
                    if entries[index].running != nil {
                        switch job.overlap {
                        case .skip:
                            log("\(job.name): due, but its last run still runs; skipped")
                            try? store.recordRecurringSkip(job.name, reason: "the previous run was still running", now: nowSeconds())
                        case .queue:
                            entries[index].queued = true
                        }
                        continue
                    }
                    entries[index].running = spawn(job)
                }
            }
            var wake = entries.map(\.due).min() ?? Int64.max
            if stopping { wake = stopDeadline ?? (Clock.monotonicNanoseconds() + 100_000_000) }
            let wait = Int32(clamping: max(0, wake - Clock.monotonicNanoseconds()) / 1_000_000 + 1)
            guard !Poll.readable([signals.descriptor], timeoutMilliseconds: min(wait, 1000)).isEmpty else { continue }
            for signal in signals.drain() where [SIGTERM, SIGINT, SIGHUP].contains(signal.number) && !stopping {
                stopping = true
                log("\(SignalName.of(signal.number)): stopping; running jobs get \(durationText(config.stopGraceSeconds)) to finish")
                for entry in entries { if let process = entry.running { Processes.signal(process, SIGTERM) } }
                stopDeadline = Clock.monotonicNanoseconds() + Int64((config.stopGraceSeconds + config.killGraceSeconds + 1) * 1e9)
            }
        }
        log("stopped")
        return 0
    }

    /// Starts one run of `job` as a child process; nil (and a recorded failure) if it cannot.
    func spawn(_ job: RecurringJob) -> ProcessIdentity? {
        let executable = (try? FileSystem.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        let argv = [executable, "--db", paths.database, "--config", paths.config, "recurring-run", job.name]
        do {
            let pid = try Spawn.spawn(argv, environment: Spawn.currentEnvironment(), resetSignals: signals.signalsToReset())
            return ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
        } catch {
            log("\(job.name): cannot start a run: \(error)")
            try? store.recordRecurringEnd(job.name, succeeded: false, error: "cannot start: \(error)", now: nowSeconds())
            return nil
        }
    }
}

/// One run of a recurring job: its attempts, with backoff between them, through the guard.
public struct RecurringRun {
    public var store: any JobStore
    public var config: PipelineConfig
    public var job: RecurringJob
    public var runner: StepRunner

    /// `captureFile` holds each attempt's output before it is copied to stdout (the log).
    public init(store: any JobStore, config: PipelineConfig, job: RecurringJob, signals: SignalReceiver, captureFile: String) {
        self.store = store
        self.config = config
        self.job = job
        runner = StepRunner(
            signals: signals, reporter: Reporter(toolName: "seqpipe \(job.name)"), captureFile: captureFile,
            killGrace: config.killGraceSeconds, stopGrace: config.stopGraceSeconds, environment: Spawn.currentEnvironment())
    }

    /// 0 when an attempt succeeded, 1 when all failed (or the run was stopped).
    @available(*, noasync)
    public func run() throws(StoreError) -> Int32 {
        let me = ProcessIdentity(pid: Processes.currentPid, startTime: (try? ProcStat.read(Processes.currentPid).startTime) ?? 0)
        try store.recordRecurringStart(job.name, process: me, now: nowSeconds())
        var error = ""
        for attempt in 1...job.attempts {
            if attempt > 1 {
                try store.recordRecurringState(job.name, state: "backoff")
                let wait = Backoff.fullJitter(attempt: attempt - 1, base: config.scheduler.backoffBaseSeconds, cap: config.scheduler.backoffCapSeconds)
                if !pause(wait) { break }
                try store.recordRecurringState(job.name, state: "running")
            }
            let result = runner.run(job.run, timeout: job.timeoutSeconds, memoryLimitMegabytes: job.memoryLimitMegabytes,
                                    label: "\(job.name) attempt \(attempt) of \(job.attempts)")
            if result.succeeded {
                try store.recordRecurringEnd(job.name, succeeded: true, error: nil, now: nowSeconds())
                return 0
            }
            error = "attempt \(attempt) of \(job.attempts): \(result.endingText)\(result.lastLine.isEmpty ? "" : ": \(result.lastLine)")"
            if result.run.stopRequested || result.run.ending == .stopped { error += " (stopped)"; break }
        }
        try store.recordRecurringEnd(job.name, succeeded: false, error: error, now: nowSeconds())
        return 1
    }

    /// Sleeps up to `seconds`; false if a stop signal came.
    func pause(_ seconds: Double) -> Bool {
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while true {
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 { return true }
            if !Poll.readable([runner.signals.descriptor], timeoutMilliseconds: Int32(clamping: left / 1_000_000 + 1)).isEmpty {
                if runner.signals.drain().contains(where: { [SIGTERM, SIGINT, SIGHUP].contains($0.number) }) { return false }
            }
        }
    }
}
