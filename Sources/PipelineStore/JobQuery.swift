import PipelineModel
import SeqDatabase
/// Which jobs `seqpipe jobs` and /api/jobs list: each filter empty or nil matches any job.
public struct JobQuery: Sendable {
    public var status: String?
    public var account: String?
    public var device: String?
    /// The error type (suspended, infrastructure, invalid, poison, ...).
    public var errorType: String?
    /// Text found (any case) in the id, the account, the error or a payload field.
    public var search: String?

    public init(status: String? = nil, account: String? = nil, device: String? = nil, errorType: String? = nil, search: String? = nil) {
        (self.status, self.account, self.device, self.errorType, self.search) = (status, account, device, errorType, search)
    }

    /// No filter given: it matches every job.
    public var isEmpty: Bool { [status, account, device, errorType, search].allSatisfy { ($0 ?? "").isEmpty } }

    public func matches(_ job: Job) -> Bool {
        func wanted(_ filter: String?, _ value: String?) -> Bool { (filter ?? "").isEmpty || filter == value }
        guard wanted(status, job.status.rawValue), wanted(account, job.account), wanted(device, job.device), wanted(errorType, job.errorType)
        else { return false }
        guard let needle = search?.lowercased(), !needle.isEmpty else { return true }
        return ([job.id, job.account, job.error ?? ""] + job.payload.map(\.1)).contains { $0.lowercased().contains(needle) }
    }
}
