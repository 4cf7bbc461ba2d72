import SeqGuard
import SeqSystem

/// One line of the events table: what happened, to what.
public struct Event: Sendable {
    public var at: Double
    public var kind: String
    public var job: String?
    public var account: String?
    public var device: String?
    public var worker: Int?
    public var message: String

    public init(at: Double, kind: String, job: String? = nil, account: String? = nil, device: String? = nil, worker: Int? = nil, message: String) {
        self.at = at
        self.kind = kind
        self.job = job
        self.account = account
        self.device = device
        self.worker = worker
        self.message = message
    }
}
