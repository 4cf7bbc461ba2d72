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
    public var state: String
    public var job: String?
    public var restarts: Int
    public var heartbeatBootSeconds: Double?

    public init(host: String = "", index: Int, pid: Int32, startTime: UInt64, device: String, state: String, job: String? = nil, restarts: Int, heartbeatBootSeconds: Double? = nil) {
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

/// A host of the farm as its lease row says: its orchestrator, when it last renewed, until
/// when the lease holds, and whether it is running, stopped cleanly or was lost (taken over).
public struct HostRecord: Sendable {
    public var name: String
    public var pid: Int32?
    public var state: String
    public var startedAt: Double?
    public var beatAt: Double?
    public var leaseUntil: Double?
    public var note: String?

    public init(name: String, pid: Int32? = nil, state: String, startedAt: Double? = nil, beatAt: Double? = nil, leaseUntil: Double? = nil, note: String? = nil) {
        self.name = name
        self.pid = pid
        self.state = state
        self.startedAt = startedAt
        self.beatAt = beatAt
        self.leaseUntil = leaseUntil
        self.note = note
    }
}

/// What taking over a lost host did: its name, the claims put back, its devices held.
public struct HostTakeover: Sendable {
    public var host: String
    public var requeued: [String]
    public var devices: [String]

    public init(host: String, requeued: [String], devices: [String]) {
        self.host = host
        self.requeued = requeued
        self.devices = devices
    }
}
