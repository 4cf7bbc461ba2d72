import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// One run of a recurring job: its attempts, with backoff between them, through the guard.
public struct RecurringRun {
    public var store: any JobStore
    public var config: PipelineConfig
    public var job: RecurringJob
    public var runner: StepRunner

    /// `captureFile` holds each attempt's output before it is copied to stdout (the log).
    /// `lifeline`: readable once the scheduler is gone; the run's step is ended then.
    public init(store: any JobStore, config: PipelineConfig, job: RecurringJob, signals: SignalReceiver, captureFile: String,
                lifeline: FileDescriptor? = nil) {
        self.store = store
        self.config = config
        self.job = job
        runner = StepRunner(
            signals: signals, reporter: Reporter(toolName: "seqpipe \(job.name)"), captureFile: captureFile,
            killGrace: config.killGraceSeconds, stopGrace: config.stopGraceSeconds, environment: Spawn.currentEnvironment(),
            progressFile: captureFile + ".progress")
        runner.cancel = lifeline
    }

    /// 0 when an attempt succeeded, 1 when all failed (or the run was stopped).
    @available(*, noasync)
    public func run() throws(StoreError) -> Int32 {
        let me = ProcessIdentity(pid: Processes.currentPid, startTime: (try? ProcStat.read(Processes.currentPid).startTime) ?? 0)
        let (store, name) = (store, job.name)
        try recorded { () throws(StoreError) in try store.recordRecurringStart(job.name, process: me, now: Moment.now()) }
        var error = ""
        var stopped = false
        for attempt in 1...job.attempts {
            if attempt > 1 {
                try recorded { () throws(StoreError) in try store.recordRecurringState(job.name, state: .backoff) }
                let wait = Backoff.fullJitter(attempt: attempt - 1, base: config.scheduler.backoffBaseSeconds, cap: config.scheduler.backoffCapSeconds)
                if !pause(wait) { stopped = true; break }
                try recorded { () throws(StoreError) in try store.recordRecurringState(job.name, state: .running) }
            }
            // While the step runs: a heartbeat, with its progress reports.
            let result = runner.run(job.run, timeout: job.timeoutSeconds, memoryLimitMegabytes: job.memoryLimitMegabytes,
                                    label: "\(job.name) attempt \(attempt) of \(job.attempts)",
                                    beat: (config.heartbeatSeconds, { progress in try? store.recordRecurringBeat(name, progress: progress, now: Moment.now()) }))
            if result.succeeded {
                try recorded { () throws(StoreError) in try store.recordRecurringEnd(job.name, succeeded: true, error: nil, now: Moment.now()) }
                return 0
            }
            if result.run.stopRequested || result.run.ending == .stopped || result.run.cancelled || stopPending() {
                try recorded { () throws(StoreError) in try store.recordRecurringStopped(job.name, reason: "run stopped during attempt \(attempt) (\(result.endingText))", now: Moment.now()) }
                return 1
            }
            error = "attempt \(attempt) of \(job.attempts): \(result.endingText)\(result.lastLine.isEmpty ? "" : ": \(result.lastLine)")"
        }
        if stopped {
            try recorded { () throws(StoreError) in try store.recordRecurringStopped(job.name, reason: "run stopped between attempts", now: Moment.now()) }
            return 1
        }
        try recorded { () throws(StoreError) in try store.recordRecurringEnd(job.name, succeeded: false, error: error, now: Moment.now()) }
        return 1
    }

    /// A record of the run, tried until the store takes it: an unreachable store is waited
    /// for (the connection tries again by itself) while the scheduler lives.
    /// - Throws: what the store refused, or the outage once the scheduler is gone.
    @available(*, noasync)
    func recorded(_ body: () throws(StoreError) -> Void) throws(StoreError) {
        while true {
            do { return try body() } catch where error.isUnreachable {
                let lifeline = runner.cancel.map { [$0] } ?? []
                if case .readable = runner.signals.sleep(seconds: 0.25, wakingOn: lifeline, stopsOn: { _ in false }) { throw error }
            }
        }
    }

    /// Whether a stop signal is waiting: the watchdog signals the run before its step, so a
    /// step killed that way is a stop, not a failure.
    func stopPending() -> Bool {
        guard !Poll.readable([runner.signals.descriptor], timeoutMilliseconds: 0).isEmpty else { return false }
        return runner.signals.drain().contains { [.terminate, .interrupt, .hangup].contains($0.signal) }
    }

    /// Sleeps up to `seconds`; false if a stop signal came.
    func pause(_ seconds: Double) -> Bool {
        runner.signals.sleep(seconds: seconds, wakingOn: runner.cancel.map { [$0] } ?? []) {
            [.terminate, .interrupt, .hangup].contains($0.signal)
        } == .elapsed
    }
}
