import PipelineModel
import SeqDatabase
import SeqSystem

/// Where jobs, accounts, devices, workers and events live: one SQLite file, or PostgreSQL for
/// a farm of several hosts. Both keep these semantics:
/// - `claim` is atomic: two workers never hold one job, one account never has two jobs
///   claimed or running, and the job, its account and the device are leased together.
/// - Every write about a claimed job carries its token and is refused (`false`) once the
///   claim was taken back, so a stale worker never overwrites a newer attempt.
/// - No write transaction is held across a device's I/O: each call is one short transaction.
public protocol JobStore: AnyObject {
    /// Brings the schema to the current version.
    func migrate() throws(StoreError)
    /// The store's clock now (the database's, for a store shared by hosts): what its times
    /// are compared with.
    func currentTime() throws(StoreError) -> Moment

    func addDevice(_ device: Device) throws(StoreError)
    /// Removes a device; false if there was none by that name.
    func removeDevice(_ name: String) throws(StoreError) -> Bool
    func devices() throws(StoreError) -> [Device]
    /// One device by name (a worker reads its own, not the table); nil if there is none.
    func device(_ name: String) throws(StoreError) -> Device?
    func addAccount(_ name: String, dailyLimit: Int) throws(StoreError)
    func accounts() throws(StoreError) -> [Account]
    /// Unpauses an account and clears its cooldown, recording who asked (`by`).
    func resumeAccount(_ name: String, by: String) throws(StoreError) -> HandResult<String>

    /// Adds jobs in one transaction (accounts are created as needed). Returns their ids.
    func addJobs(_ jobs: [Job]) throws(StoreError) -> [String]
    /// Every job, in claim order (priority, then age).
    func jobs() throws(StoreError) -> [Job]
    func job(_ id: String) throws(StoreError) -> Job?
    /// The jobs claimed or running, in claim order: what the orchestrator checks against
    /// its workers, without reading the queue.
    func claimedJobs() throws(StoreError) -> [Job]
    /// How many jobs are in each status (one query, whatever the queue's length).
    func jobCounts() throws(StoreError) -> [JobStatus: Int]
    /// The cumulative counts /metrics shows (SQLJobStore+Counters.swift).
    func counterSamples() throws(StoreError) -> [CounterSample]
    /// The jobs in any of `statuses`, in claim order: how many, and the first `limit`.
    func jobs(in statuses: [JobStatus], limit: Int) throws(StoreError) -> (total: Int, jobs: [Job])
    /// The jobs `query` matches, in claim order: how many, and the first `limit`.
    func jobs(matching query: JobQuery, limit: Int) throws(StoreError) -> (total: Int, jobs: [Job])
    /// When the oldest waiting job was added, and the mean time from a job's creation to its
    /// latest claim over the claims since `since` (nil when none).
    func queueAges(since: Moment) throws(StoreError) -> (oldestWaiting: Moment?, meanClaimWait: Double?)
    /// Puts a failed, cancelled or retrying job back to pending with a fresh budget of
    /// attempts (its attempt number goes on), recording who asked (`by`).
    func retry(_ id: String, by: String) throws(StoreError) -> HandResult<JobStatus>
    /// Cancels a job that waits or failed: one claimed or running belongs to its worker.
    func cancel(_ id: String, by: String) throws(StoreError) -> HandResult<JobStatus>

    /// Claims the first eligible job for `worker` on `device` under `token`, or nil.
    func claim(worker: Int, device: String, token: String, now: Moment, today: String, bootSeconds: Double) throws(StoreError) -> ClaimedJob?
    /// The claim made under `token`, if it holds: a claim whose reply was lost with the
    /// connection is found again by the token its worker chose.
    func claimed(token: String) throws(StoreError) -> ClaimedJob?
    func markRunning(_ claim: ClaimedJob, bootSeconds: Double) throws(StoreError) -> Bool
    /// Records that steps before `progress` are done.
    /// The job's progress (its steps done), with the step that just completed and its time
    /// (a histogram of /metrics); nil for a heartbeat.
    func recordProgress(_ claim: ClaimedJob, progress: Int, bootSeconds: Double, completed step: CompletedStep?) throws(StoreError) -> Bool
    /// Keeps the tail of a step run's output (its last `StepOutput.kept` bytes) with the job,
    /// the latest `StepOutput.runsKept` runs of each step, and counts the run
    /// (seqpipe_step_attempts_total). A success's goes with its progress (`CompletedStep`).
    func recordOutput(_ output: StepOutput) throws(StoreError)
    /// A job's kept step outputs, oldest first.
    func outputs(job: String) throws(StoreError) -> [StepOutput]
    /// Records how the run ended and charges the right budgets.
    func finish(_ claim: ClaimedJob, outcome: JobOutcome, policy: FailurePolicy, now: Moment, today: String) throws(StoreError) -> Bool
    /// Takes back the claims of `worker` (nil: every claim) after a crash or an outage.
    /// A crash counts toward poison. Returns the ids requeued.
    func requeueClaims(worker: Int?, crashed: Bool, policy: FailurePolicy, now: Moment) throws(StoreError) -> [String]
    /// Jobs still to do: claimed or running, or pending/retrying on an account that is not
    /// paused and not at its daily limit.
    /// The jobs that can run now: those claimed or running, and those waiting whose retry
    /// time has come, whose account is neither paused, cooling down nor resting, and under
    /// its daily limit. What a time to empty is reckoned over.
    func runnableNow(today: String, now: Moment) throws(StoreError) -> Int
    func remainingWork(today: String) throws(StoreError) -> Int
    /// Successful jobs per account on `day`, against the daily limits.
    func successes(on day: String) throws(StoreError) -> [String: Int]

    /// A device's health check result; answers the consecutive failure count. A failure
    /// marks the device unhealthy (no claims on it) until a check passes.
    func recordHealth(device: String, ok: Bool, responseMilliseconds: Int?, error: String?, now: Moment) throws(StoreError) -> Int
    /// What a worker did with its device's server (`Device.serverState`): the state, the
    /// server's process and port when it has them, and why.
    func recordServer(device: String, state: ServerState, process: ProcessIdentity?, port: Int?, note: String?, now: Moment) throws(StoreError)
    /// The phone's own state, where no health check says it (stopped, stop failed).
    func recordPhone(device: String, state: PhoneState, now: Moment) throws(StoreError)
    /// Marks a device unhealthy until `until` (its restart failed).
    func holdDevice(_ name: String, until: Moment, reason: String) throws(StoreError)
    /// Pauses a device by hand (its worker finishes its job, then claims nothing).
    func pauseDevice(_ name: String, by: String) throws(StoreError) -> HandResult<String>
    /// Undoes a pause by hand.
    func resumeDevice(_ name: String, by: String) throws(StoreError) -> HandResult<String>
    /// Ends a hold (a cooldown after trouble, a busy port, failed restarts) now: the device is
    /// taken as healthy and its worker checks it at once.
    func releaseDevice(_ name: String, by: String) throws(StoreError) -> HandResult<String>

    func setWorker(_ record: WorkerRecord) throws(StoreError)
    func updateWorker(index: Int, state: WorkerState, job: String?, bootSeconds: Double) throws(StoreError)
    func workers() throws(StoreError) -> [WorkerRecord]
    func clearWorkers() throws(StoreError)

    /// A recurring job's run began in `process`.
    func recordRecurringStart(_ name: String, process: ProcessIdentity, now: Moment) throws(StoreError)
    /// The run waits between attempts ("backoff") or runs again ("running").
    func recordRecurringState(_ name: String, state: RecurringState) throws(StoreError)
    /// The run ended; a failure counts toward consecutive failures, a success clears them.
    func recordRecurringEnd(_ name: String, succeeded: Bool, error: String?, now: Moment) throws(StoreError)
    /// A run that was due did not start, and why.
    func recordRecurringSkip(_ name: String, reason: String, now: Moment) throws(StoreError)
    /// The run ended by a stop (not a failure of the job): no failure is counted.
    func recordRecurringStopped(_ name: String, reason: String, now: Moment) throws(StoreError)
    /// The running instance is alive; `progress`, when the step reported some, is its latest
    /// word (and moves `progressAt`, which the watchdog's hung rule reads).
    func recordRecurringBeat(_ name: String, progress: String?, now: Moment) throws(StoreError)
    /// The scheduler's plan for a job: when it next runs, and what a due run waits for.
    func recordRecurringPlan(_ name: String, nextDue: Moment?, waiting: String?) throws(StoreError)
    func heartbeats() throws(StoreError) -> [Heartbeat]

    /// Raises the alert `key` (or refreshes it); true when it was not already raised.
    func raiseAlert(_ key: String, kind: AlertKind, message: String, now: Moment) throws(StoreError) -> Bool
    /// Clears it; true when it was raised.
    func clearAlert(_ key: String, now: Moment) throws(StoreError) -> Bool
    /// Raises and clears waiting for the notifier, due now, oldest first.
    func dueNotifications(now: Moment, limit: Int) throws(StoreError) -> [Notification]
    func recordDelivery(_ id: Int64, delivered: Bool, error: String?, nextAt: Moment?, now: Moment) throws(StoreError)
    /// A device's (`device:NAME`) or an account's (`account:NAME`) rates over the last `seconds`.
    func rates(subject: String, seconds: Double, now: Moment) throws(StoreError) -> Rates
    /// The alerts raised and not cleared, oldest first.
    func alerts() throws(StoreError) -> [Alert]
    /// The latest result of a periodic check (the watchdog, the health check).
    func recordCheck(_ name: String, ok: Bool, message: String, now: Moment) throws(StoreError)
    func checks() throws(StoreError) -> [Check]
    /// What the pipeline health check reads.
    func pipelineHealth(now: Moment, claimedLongerThan seconds: Double) throws(StoreError) -> PipelineHealth

    /// The host this process works for: its workers, claims and devices.
    var host: String { get }
    /// This host's lease row: registered with the config version its run uses (answering the
    /// state it had: "lost" after a take-over), renewed (false once it was taken over),
    /// released at a clean stop.
    func registerHost(pid: Int32, leaseSeconds: Double, now: Moment, configVersion: Int?) throws(StoreError) -> String?
    func renewHost(leaseSeconds: Double, now: Moment) throws(StoreError) -> Bool
    func releaseHost(now: Moment) throws(StoreError)
    /// Other hosts whose lease ran out: lost, their claims requeued, their devices held.
    func takeOverLostHosts(policy: FailurePolicy, now: Moment) throws(StoreError) -> [HostTakeover]
    /// Takes or keeps a once-per-farm role (the scheduler) for this host; whether it has it.
    func lead(_ role: String, leaseSeconds: Double, now: Moment) throws(StoreError) -> Bool
    func hosts() throws(StoreError) -> [HostRecord]
    func leaders() throws(StoreError) -> [(role: String, host: String, leaseUntil: Moment)]

    /// The config, in numbered versions (SQLJobStore+Config.swift): the newest, one by
    /// number, every one without its text, a new one unless the newest says the same, and
    /// the one the running orchestrators use.
    func currentConfig() throws(StoreError) -> StoredConfig?
    func config(version: Int) throws(StoreError) -> StoredConfig?
    func configVersions() throws(StoreError) -> [StoredConfig]
    func loadConfig(_ text: String, source: String, now: Moment) throws(StoreError) -> (version: Int, new: Bool)
    func runningConfigVersion() throws(StoreError) -> Int?

    func addEvent(_ event: Event) throws(StoreError)
    /// Every event of one job, oldest first.
    func events(job: String) throws(StoreError) -> [Event]
    /// How many events of each of `kinds` fell in each `bucketSeconds`-long bucket since
    /// `since` (bucket: seconds since the epoch / bucketSeconds, rounded down), counted by the
    /// store: a week of events is a few hundred rows, not every event.
    func eventCounts(kinds: [EventKind], since: Moment, bucketSeconds: Int) throws(StoreError) -> [(bucket: Int64, kind: EventKind, count: Int)]
    /// The latest `limit` events at or after `since` (any time when nil), oldest first.
    func events(since: Moment?, limit: Int) throws(StoreError) -> [Event]

    /// One round trip to the store: throws while it cannot be reached.
    func ping() throws(StoreError)
    /// Since when the store cannot be reached, while it cannot.
    var outage: StoreOutage? { get }
    /// The outage a reconnect ended, once: the caller says the store is back.
    func takeRecovered() -> StoreOutage?
}

extension JobStore {
    /// Claims under a fresh token.
    public func claim(worker: Int, device: String, now: Moment, today: String, bootSeconds: Double) throws(StoreError) -> ClaimedJob? {
        try claim(worker: worker, device: device, token: Processes.randomHex(bytes: 8), now: now, today: today, bootSeconds: bootSeconds)
    }
}

/// What a change asked by hand (a command, a button) found and did: `State` is what it found
/// (a job's status, an account's state), so the words can say what actually changed.
public enum HandResult<State: Sendable & Equatable>: Sendable, Equatable {
    /// Changed; it was `from`.
    case changed(from: State)
    /// It already was what was asked: nothing changed.
    case unchanged(State)
    /// Its state does not allow the change: nothing changed.
    case refused(State)
    /// No such thing.
    case missing

    public var changed: Bool { if case .changed = self { true } else { false } }
}

/// The tail of what one run of a step printed, kept with its job: which run of the job (its
/// attempt number), which step and which of the step's own attempts, when it ended and how.
public struct StepOutput: Sendable, Equatable {
    public var job: String
    public var run: Int
    public var step: String
    public var attempt: Int
    public var at: Moment
    public var ending: String
    /// Whether the command exited 0 (the outcome label of seqpipe_step_attempts_total).
    public var succeeded: Bool
    public var text: String

    /// Bytes of a run's output kept (its end), and runs of each step kept per job.
    public static let kept = 16384
    public static let runsKept = 8

    public init(job: String, run: Int, step: String, attempt: Int, at: Moment, ending: String, succeeded: Bool, text: String) {
        (self.job, self.run, self.step, self.attempt, self.at, self.ending, self.succeeded) = (job, run, step, attempt, at, ending, succeeded)
        // The end, cut at a character boundary.
        var utf8 = Array(text.utf8)
        if utf8.count > Self.kept {
            utf8 = Array(utf8.suffix(Self.kept))
            while let first = utf8.first, first & 0xC0 == 0x80 { utf8.removeFirst() }
        }
        self.text = String(decoding: utf8, as: UTF8.self)
    }
}

/// A step that just completed, as its progress write records it: its time (a histogram of
/// /metrics) and its run's output (kept with the job), in the same transaction.
public struct CompletedStep: Sendable {
    public var name: String
    public var seconds: Double
    public var output: StepOutput?

    public init(name: String, seconds: Double, output: StepOutput? = nil) {
        (self.name, self.seconds, self.output) = (name, seconds, output)
    }
}
