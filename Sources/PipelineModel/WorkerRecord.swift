import SeqDatabase
import SeqGuard
import SeqSystem

/// A worker slot as the orchestrator records it.
public struct WorkerRecord: Sendable {
    /// The host whose orchestrator runs it ('' in a store from before hosts).
    public var host = ""
    public var index: Int
    public var pid: Int32
    public var startTime: UInt64
    public var device: String
    public var state: WorkerState
    public var job: String?
    public var restarts: Int
    public var heartbeatBootSeconds: Double?
    /// Since when it is in its state (with its job).
    public var since: Moment?

    public init(host: String = "", index: Int, pid: Int32, startTime: UInt64, device: String, state: WorkerState, job: String? = nil, restarts: Int,
                heartbeatBootSeconds: Double? = nil, since: Moment? = nil) {
        self.since = since
        self.host = host
        self.index = index
        self.pid = pid
        self.startTime = startTime
        self.device = device
        self.state = state
        self.job = job
        self.restarts = restarts
        self.heartbeatBootSeconds = heartbeatBootSeconds
    }
}

/// What a worker is doing, as the store records it. The stored word is the raw value; one
/// this version does not name (a newer version wrote it) is read and shown as it is.
public typealias WorkerState = StoredWord<WorkerStateWords>
public enum WorkerStateWords {}

extension StoredWord where Of == WorkerStateWords {
    /// Started by the orchestrator, not yet looking for a job.
    public static let starting = Self("starting")
    /// Looking for a job (none it may take).
    public static let idle = Self("idle")
    /// Holding a claim and running its steps.
    public static let running = Self("running")
    /// Waiting for the processes of an earlier attempt of its job to be gone.
    public static let fencing = Self("fencing")
    /// Waiting out its device's cooldown, or for its device to answer again.
    public static let cooldown = Self("cooldown")
    public static let unhealthy = Self("unhealthy")
    /// Its device was paused by hand (`seqpipe device pause`).
    public static let paused = Self("paused")
    public static let stopped = Self("stopped")
    /// Its host was taken over by another (a farm).
    public static let lost = Self("lost")
}
