/// One line of the events table: what happened, to what.
public struct Event: Sendable, Equatable {
    public var at: Double
    public var kind: String
    public var job: String?
    public var account: String?
    public var device: String?
    public var worker: Int?
    public var message: String

    public init(at: Double, kind: String, job: String? = nil, account: String? = nil, device: String? = nil, worker: Int? = nil, message: String) {
        (self.at, self.kind, self.message) = (at, kind, message)
        (self.job, self.account, self.device, self.worker) = (job, account, device, worker)
    }
}

extension Job {
    /// An event about this job (its account, device and worker as it holds them) at `at`.
    public func event(_ kind: String, _ message: String, at: Double) -> Event {
        Event(at: at, kind: kind, job: id, account: account, device: device, worker: worker, message: message)
    }
}
