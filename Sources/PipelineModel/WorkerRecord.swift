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

