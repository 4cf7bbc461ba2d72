import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// One worker process: owns one device and its ports, claims one job at a time, checks the
/// device, runs the job's steps through the guard with adaptive delays and per-step retries,
/// and records the outcome. Stops cleanly between steps on SIGTERM, and at once, ending its
/// step, when its orchestrator is gone.
///
/// It holds its device's lock for its whole life and each job's lock from the claim to the
/// outcome; every command it starts inherits both, so neither is free while any process of
/// an attempt lives.
public struct Worker {
    public var store: any JobStore
    public var config: PipelineConfig
    public var index: Int
    public var deviceName: String
    public var signals: SignalReceiver
    public var reporter: Reporter
    /// Where each command's output is captured before it is copied to the log.
    public var captureFile: String
    var stopping = false
    var lastResponseSeconds: Double?
    /// The state last written to the workers table, and when (seconds since boot): an idle
    /// worker rewrites it once per heartbeat, not once per poll or per job.
    var recorded: (state: WorkerState, at: Double)?
    /// Graded recovery after infrastructure trouble: 1 has restarted the device's server, 2
    /// the device; past 2 the job goes to another device (or, for failed health checks, the
    /// device is held).
    var recoveryGrade = 0
    /// Readable once the orchestrator has exited (a pidfd of it).
    public var lifeline: FileDescriptor?
    /// The store's locks; the device's is taken at the start of `run`.
    public var locks: PipelineLocks?
    /// The orchestrator is gone: stop now.
    var orphaned = false
    /// Where the store, its config and the logs are: a device server is started with them.
    public var paths: PipelinePaths?
    /// The device's lock, held for the worker's whole life (and by its device server).
    var deviceLock: FileDescriptor?
    /// The device server this worker runs, if the device has one.
    var server: RunningServer?
    /// The store could not be reached; said once until it answers again.
    var storeLost = false
    /// The store file as this worker opened it, and whether its path was seen to name
    /// another file since.
    var storeIdentity: FileStatus?
    var storeChanged = false

    public init(store: any JobStore, config: PipelineConfig, index: Int, deviceName: String,
                signals: SignalReceiver, reporter: Reporter, captureFile: String) {
        self.store = store
        self.config = config
        self.index = index
        self.deviceName = deviceName
        self.signals = signals
        self.reporter = reporter
        self.captureFile = captureFile
    }

    var classifier: Classifier { Classifier(config: config) }

    func log(_ message: String) {
        try? FileDescriptor.standardOutput.writeAll("[\(Clock.isoUTC(Clock.wallTime()))] worker \(index): \(message)\n")
    }

    func today() -> String { ZoneCalendar.day(of: Moment.now(), zone: config.dayZone) }

    var runner: StepRunner {
        var environment = Spawn.currentEnvironment()
        environment.removeAll { $0.hasPrefix("SEQPIPE_WORKER=") }
        environment.append("SEQPIPE_WORKER=\(index)")
        var runner = StepRunner(
            signals: signals, reporter: reporter, captureFile: captureFile,
            killGrace: config.killGraceSeconds, stopGrace: config.stopGraceSeconds, environment: environment)
        runner.cancel = lifeline
        // The device server lives across steps: never part of a step's tree.
        if let server { runner.spared = [server.member.pid] }
        return runner
    }

    /// Runs a command through the guard, noting a stop or the orchestrator's end on the way.
    mutating func run(_ argv: [String], timeout: Double?, memoryLimitMegabytes: Int?, label: String,
                      tick: (interval: Double, action: () -> Bool)? = nil) -> StepResult {
        // Nothing new starts once the orchestrator is gone.
        if orphaned {
            var run = SupervisedRun(ending: .stopped)
            run.cancelled = true
            return StepResult(run: run, output: "")
        }
        let result = runner.run(argv, timeout: timeout, memoryLimitMegabytes: memoryLimitMegabytes, label: label, tick: tick)
        if result.run.stopRequested { stopping = true }
        if result.run.cancelled { noteOrphaned() }
        return result
    }

    mutating func noteOrphaned() {
        if !orphaned { log("the orchestrator is gone: stopping now") }
        orphaned = true
        stopping = true
    }

    /// Sleeps up to `seconds`, waking for a stop. Returns false once a stop was asked for.
    mutating func pause(_ seconds: Double) -> Bool {
        if stopping { return false }
        switch signals.sleep(seconds: seconds, wakingOn: lifeline.map { [$0] } ?? [], stopsOn: { [.terminate, .interrupt, .hangup].contains($0.signal) }) {
        case .elapsed:
            return true
        case .readable:
            noteOrphaned()
            return false
        case .stopped(let received):
            log("\(received.signal.name): stopping after the current step")
            stopping = true
            return false
        }
    }

    mutating func noteSignals() {
        for received in signals.drain() where [.terminate, .interrupt, .hangup].contains(received.signal) {
            if !stopping { log("\(received.signal.name): stopping after the current step") }
            stopping = true
        }
    }

    func placeholders(job: Job?) -> Placeholders {
        Placeholders.of(worker: index, device: deviceName, config: config, job: job)
    }

    /// The device's lock, taken for the worker's life; the exit status when it cannot be.
    /// The orchestrator fenced the device before starting this worker: a holder now is a
    /// process this worker must not run beside.
    mutating func takeTheDeviceLock() -> Int32? {
        guard let locks else { return nil }
        do {
            deviceLock = try locks.device(deviceName).tryAcquire()?.movedUp()
            try deviceLock?.clearCloseOnExec()
        } catch {
            log("cannot take device \(deviceName)'s lock \(locks.device(deviceName).path): \(error)")
            return ExitCode.toolFailure
        }
        guard deviceLock == nil else { return nil }
        let holders = locks.device(deviceName).holders().map { "pid \($0.pid)" }.joined(separator: ", ")
        log("device \(deviceName) is still held (\(holders)) by an earlier worker's process; not starting beside it")
        return ExitCode.gaveUpWaiting
    }

    /// Claims the next job for this device: `.some(nil)` when there is none, nil when the
    /// worker stops while the store is away. The token is chosen here: a claim whose reply is
    /// lost with the connection is found again by it, not left claimed by nobody.
    mutating func claimNext() throws(StoreError) -> ClaimedJob?? {
        let token = Processes.randomHex(bytes: 8)
        do {
            return .some(try store.claim(worker: index, device: deviceName, token: token, now: Moment.now(), today: today(), bootSeconds: Clock.secondsSinceBoot()))
        } catch where error.isUnreachable {
            let store = store
            return try stored("the claim", { () throws(StoreError) in try store.claimed(token: token) })
        }
    }

    /// The server first, then the phone itself (a cloud phone left running costs money).
    mutating func stopTheDevice() {
        stopServer(reason: "the worker stopped")
        if let device = try? store.device(deviceName), let stop = device.stopCommand {
            let result = runDeviceCommand(stop, label: "device stop", timeout: 60)
            try? store.recordPhone(device: deviceName, state: result?.succeeded == true ? .stopped : .stopFailed, now: Moment.now())
        }
    }

    /// Loops until stopped: health check, claim, run.
    @available(*, noasync)
    public mutating func run() -> Int32 {
        if let failure = takeTheDeviceLock() { return failure }
        defer { deviceLock?.close() }
        if let paths, !paths.isURL { storeIdentity = StoreFile.identity(paths.database) }
        // However the worker leaves, its server goes first.
        defer { stopServer(reason: orphaned ? "the orchestrator is gone" : "the worker stopped") }
        log("started: device \(deviceName), appium port \(config.appiumPort(worker: index)), system ports \(config.systemPort(worker: index))-\(config.systemPort(worker: index) + config.systemPortStride - 1)")
        releaseHoldOfAnotherPort()
        while !stopping {
            do {
                noteSignals()
                if stopping { break }
                guard let device = try store.device(deviceName) else {
                    // Removed (drained first by 'device remove --force'): a clean stop.
                    log("device \(deviceName) was removed from the store; stopping")
                    stopping = true
                    break
                }
                noteStoreBack()
                guard try waitOutHold(device) else { continue }
                guard try ensureServer(device) else { continue }
                guard try checkHealth(device) else { continue }
                try record(.idle)
                // A store file deleted, renamed or replaced under the run takes no more
                // claims here; the orchestrator stops the run.
                if let storeIdentity, let paths, !StoreFile.sameFile(paths.database, as: storeIdentity) {
                    if !storeChanged { log("the store \(paths.database) is no longer the file this worker opened: no more claims") }
                    storeChanged = true
                    _ = pause(config.idlePollSeconds)
                    continue
                }
                guard let claimed = try claimNext() else { break }
                guard let claim = claimed else {
                    _ = pause(config.idlePollSeconds)
                    continue
                }
                do { try runJob(claim) } catch where error.isUnreachable {
                    // Lost before any step ran (the steps' writes wait for the store
                    // themselves): the claim goes back once the store answers.
                    let store = store
                    let (policy, day) = (config.policy, today())
                    guard try stored("job \(claim.job.id)'s claim", { () throws(StoreError) in
                        try store.finish(claim, outcome: .stopped, policy: policy, now: Moment.now(), today: day)
                    }) != nil else { break }
                }
                // finish() left the worker idle in the store.
                recorded = (.idle, Clock.secondsSinceBoot())
            } catch where error.isUnreachable {
                // Between jobs an outage only waits: the connection tries again by itself.
                noteStoreLost(error)
                _ = pause(0.5)
            } catch {
                log("store: \(error.message)")
                reporter.error("worker \(index): store: \(error.message)")
                return ExitCode.toolFailure
            }
        }
        if orphaned { return 1 }
        stopTheDevice()
        try? store.updateWorker(index: index, state: .stopped, job: nil, bootSeconds: Clock.secondsSinceBoot())
        log("stopped")
        return 0
    }

    mutating func record(_ state: WorkerState) throws(StoreError) {
        let now = Clock.secondsSinceBoot()
        if let recorded, recorded.state == state, now - recorded.at < config.heartbeatSeconds { return }
        try store.updateWorker(index: index, state: state, job: nil, bootSeconds: now)
        recorded = (state, now)
    }

    func delay(pre: Bool) -> Double { config.delay(pre: pre, responseSeconds: lastResponseSeconds) }

    /// Runs the steps not done yet and records how the job ended, in four phases: take the
    /// attempt's lock, start (mark it running, reset the device), run the steps, record the
    /// outcome. Each phase that finds the claim gone ends the job here.
    mutating func runJob(_ claim: ClaimedJob) throws(StoreError) {
        let job = claim.job
        log("claimed job \(job.id) (account \(job.account), attempt \(job.attemptText))")
        let attempt = AttemptLock(locks?.job(job.id))
        defer { attempt.release() }
        let values = placeholders(job: job)
        guard try takeAttemptLock(attempt, for: claim), try start(claim, attempt, values) else { return }
        guard let outcome = try runSteps(of: claim, values) else { return }
        try record(outcome, of: claim, attempt)
    }

    /// The attempt's lock, which its steps inherit: the job goes back to the queue only once
    /// it is free. Held already means an earlier attempt still has a process, which is fenced;
    /// if it still holds, the claim is given back (false).
    mutating func takeAttemptLock(_ attempt: AttemptLock, for claim: ClaimedJob) throws(StoreError) -> Bool {
        guard let locks, let lock = attempt.lock else { return true }
        let job = claim.job
        attempt.held = try? lock.tryAcquire()?.movedUp()
        if attempt.held == nil {
            try store.updateWorker(index: index, state: .fencing, job: job.id, bootSeconds: Clock.secondsSinceBoot())
            let fencer = Fencer(locks: locks, store: store, config: config, say: log)
            // Never the orchestrator: only an earlier attempt's processes are ended.
            let sparing = Set([try? ProcStat.read(Processes.parentPid).identity].compactMap { $0 })
            if fencer.fence(device: nil, jobs: [job], worker: index, sparing: sparing) { attempt.held = try? lock.tryAcquire()?.movedUp() }
        }
        guard let held = attempt.held, (try? held.clearCloseOnExec()) != nil else {
            log("job \(job.id): an earlier attempt still holds its lock; giving the claim back")
            attempt.release()
            _ = try store.finish(claim, outcome: .stopped, policy: config.policy, now: Moment.now(), today: today())
            return false
        }
        return true
    }

    /// Marks the job running, then resets the device before it (reset_when: job or both, for
    /// every account alike). False when the claim was taken back or the run was orphaned.
    mutating func start(_ claim: ClaimedJob, _ attempt: AttemptLock, _ values: Placeholders) throws(StoreError) -> Bool {
        let job = claim.job
        let store = store
        guard let running = try stored("job \(job.id)'s start", { () throws(StoreError) in try store.markRunning(claim, bootSeconds: Clock.secondsSinceBoot()) }) else { return false }
        guard running else {
            log("job \(job.id): claim was taken back before it started")
            return false
        }
        recoveryGrade = 0
        if config.resetWhen.beforeJob, let reset = config.reset, let filled = try? values.fill(reset) {
            let timeout = config.steps.first?.timeoutSeconds ?? 600
            _ = run(filled, timeout: timeout, memoryLimitMegabytes: config.steps.first?.memoryLimitMegabytes, label: "reset before job \(job.id)")
            if orphaned {
                attempt.release()
                _ = try store.finish(claim, outcome: .stopped, policy: config.policy, now: Moment.now(), today: today())
                return false
            }
        }
        return true
    }

    /// Runs the steps from the job's progress on, recording each one done; the outcome, or
    /// nil when the claim was taken back (its new holder records the job).
    mutating func runSteps(of claim: ClaimedJob, _ values: Placeholders) throws(StoreError) -> JobOutcome? {
        let job = claim.job
        let store = store
        var progress = job.progress
        while progress < config.steps.count {
            let step = config.steps[progress]
            if !pause(delay(pre: true)) { return .stopped }
            let argv: [String]
            let check: [String]?
            do {
                argv = try values.fill(step.run)
                check = try step.check.map { (list) throws(ConfigError) -> [String] in try values.fill(list) }
            } catch {
                return .invalid(message: "step \(step.name): \(error.message)")
            }
            let stepStarted = Clock.monotonicNanoseconds()
            switch runStep(step, argv: argv, check: check, claim: claim, progress: progress, firstRunOfJob: job.runs == 1 && progress == job.progress && job.progress == 0) {
            case .done(let output):
                progress += 1
                let (done, took) = (progress, CompletedStep(name: step.name, seconds: Double(Clock.monotonicNanoseconds() - stepStarted) / 1e9, output: output))
                guard let recorded = try stored("job \(job.id)'s progress", { () throws(StoreError) in
                    try store.recordProgress(claim, progress: done, bootSeconds: Clock.secondsSinceBoot(), completed: took)
                }) else { return nil }
                guard recorded else {
                    log("job \(job.id): claim was taken back; leaving it to its new holder")
                    return nil
                }
                // The device must still answer after the step (a phone that froze mid-post):
                // if not, the job goes back as an infrastructure failure, after this step.
                if let device = try? store.device(deviceName) {
                    switch probe(device) {
                    case .answered(let seconds): lastResponseSeconds = seconds
                    case .failed(let problem): return .infrastructure(message: "step \(step.name): the device did not answer after it: \(problem)")
                    case .unchecked, .interrupted: break
                    }
                }
                if stopping && progress < config.steps.count { return .stopped }
                if progress < config.steps.count, !pause(delay(pre: false)) { return .stopped }
            case .failed(let failure):
                return failure
            }
        }
        return .success
    }

    /// Records how the job ended. The job's lock is let go just before each try (a worker
    /// that claims the job next must find it free), and taken again while the store cannot be
    /// reached, so no one starts the job while its outcome waits; the claim is still this
    /// worker's until the store says otherwise.
    mutating func record(_ outcome: JobOutcome, of claim: ClaimedJob, _ attempt: AttemptLock) throws(StoreError) {
        let job = claim.job
        let store = store
        var finishedOrNil: Bool?
        while true {
            attempt.release()
            do {
                finishedOrNil = try store.finish(claim, outcome: outcome, policy: config.policy, now: Moment.now(), today: today())
                noteStoreBack()
                break
            } catch where error.isUnreachable {
                if let lock = attempt.lock { attempt.held = try? lock.tryAcquire()?.movedUp() }
                // Tried again once the store answers (`stored` says the wait, once).
                guard try stored("job \(job.id)'s outcome", { () throws(StoreError) in try store.ping() }) != nil else { return }
            }
        }
        guard let finished = finishedOrNil else { return }
        guard finished else {
            log("job \(job.id): claim was taken back; its outcome is not recorded")
            return
        }
        log("job \(job.id): \(describe(outcome))")
        // The post-step delay follows the last step too: the device settles before the next job.
        if case .success = outcome { _ = pause(delay(pre: false)) }
    }

    func describe(_ outcome: JobOutcome) -> String {
        switch outcome {
        case .success: return "success"
        case .permanent(let type, let message): return "failed (\(type)): \(message); its account is paused"
        case .infrastructure(let message): return "infrastructure failure, will retry: \(message)"
        case .handOff(let message): return "infrastructure failure after the device's recovery; another device takes it: \(message)"
        case .retryable(let message): return "failed, retryable: \(message)"
        case .memory(let message): return "memory limit: \(message)"
        case .stopped: return "stopped; back to pending"
        case .invalid(let message): return "failed: \(message)"
        }
    }

    enum StepOutcome {
        /// Done, with its run's output (nil when its check said it was done already).
        case done(StepOutput?)
        case failed(JobOutcome)
    }

    /// One step with its retries: a `check` before any retry, the reset step and a
    /// full-jitter backoff between attempts.
    /// `progress` is the steps done before this one, which the heartbeat rewrites as it is.
    mutating func runStep(_ step: StepDefinition, argv: [String], check: [String]?, claim: ClaimedJob, progress: Int,
                          firstRunOfJob: Bool) -> StepOutcome {
        var last = JobOutcome.retryable(message: "")
        for attempt in 1...step.attempts {
            if attempt > 1 || !firstRunOfJob, let check {
                let result = run(check, timeout: step.timeoutSeconds, memoryLimitMegabytes: step.memoryLimitMegabytes, label: "\(step.name) check")
                if orphaned { return .failed(.stopped) }
                if result.succeeded {
                    log("job \(claim.job.id): step \(step.name): check says it is already done")
                    return .done(nil)
                }
                if result.run.stopRequested { noteSignals(); stopping = true; return .failed(.stopped) }
            }
            if attempt > 1 {
                if config.resetWhen.betweenAttempts, let reset = config.reset, let filled = try? placeholders(job: claim.job).fill(reset) {
                    _ = run(filled, timeout: step.timeoutSeconds, memoryLimitMegabytes: step.memoryLimitMegabytes, label: "reset")
                    if orphaned { return .failed(.stopped) }
                }
                let wait = Backoff.fullJitter(attempt: attempt - 1, base: config.stepBackoffBaseSeconds, cap: config.stepBackoffCapSeconds)
                if !pause(wait) { return .failed(.stopped) }
            }
            let store = store
            let token = claim
            let result = run(
                argv, timeout: step.timeoutSeconds, memoryLimitMegabytes: step.memoryLimitMegabytes,
                label: "job \(claim.job.id) step \(step.name) attempt \(attempt)",
                // The heartbeat also asks whether the claim is still this worker's: one taken
                // back (its host lost its lease, another host took the job) ends the step now.
                tick: (config.heartbeatSeconds, { (try? store.recordProgress(token, progress: progress, bootSeconds: Clock.secondsSinceBoot(), completed: nil)) ?? true }))
            // Kept with the job for `show` and the page: a success's in the write of the
            // step's progress, a failure's now (a store that cannot take it loses only this
            // copy; the worker's log has it too).
            let output = StepOutput(job: claim.job.id, run: claim.job.runs, step: step.name, attempt: attempt, at: Moment.now(),
                                    ending: result.endingText, succeeded: result.succeeded, text: result.output)
            if result.run.abandoned {
                log("job \(claim.job.id): its claim was taken back while step \(step.name) ran; ended the step")
                try? store.recordOutput(output)
                return .failed(.stopped)
            }
            if result.succeeded { return .done(output) }
            try? store.recordOutput(output)
            if orphaned { return .failed(.stopped) }
            let message = "step \(step.name): \(result.endingText)\(result.lastLine.isEmpty ? "" : ": \(result.lastLine)")"
            switch result.run.ending {
            case .stopped:
                return .failed(.stopped)
            case .memoryExceeded:
                return .failed(.memory(message: message))
            case .couldNotStart:
                return .failed(.invalid(message: message))
            default:
                break
            }
            let timedOut = result.run.ending == .timedOut
            switch classifier.classify(output: result.output, timedOut: timedOut) {
            case (.permanent(let type), _):
                return .failed(.permanent(type: type, message: message))
            case (.infrastructure, _):
                last = .infrastructure(message: message)
            case (.retryable, _):
                last = .retryable(message: message)
            }
            if stopping { return .failed(.stopped) }
            log("job \(claim.job.id): \(message) (attempt \(attempt) of \(step.attempts))")
            // Device trouble: the next grade of recovery before the next attempt.
            if case .infrastructure = last, attempt < step.attempts,
               let device = try? store.device(deviceName) {
                _ = try? recoverDevice(device, reason: "job \(claim.job.id): \(message)", job: claim.job.id)
            }
        }
        // Its server and the device were restarted (or have no command for it) and it
        // still fails: another device takes the job.
        if case .infrastructure(let message) = last, recoveryGrade >= 2 {
            return .failed(.handOff(message: message))
        }
        return .failed(last)
    }
}

/// A job attempt's lock (`job-ID.lock`), held while its steps run. It is let go before the
/// outcome is recorded: once it is, another worker may claim the job and must find it free.
/// Every process of the attempt is gone by then (the guard ended each step's tree).
final class AttemptLock {
    let lock: LockFile?
    var held: FileDescriptor?

    init(_ lock: LockFile?) { self.lock = lock }

    func release() {
        if let held, let lock {
            lock.remove(holding: held)
            held.close()
        }
        held = nil
    }
}
