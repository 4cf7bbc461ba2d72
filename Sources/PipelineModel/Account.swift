import SeqDatabase
import SeqGuard
import SeqSystem

/// An account jobs post to, with its own limits and failure budget.
public struct Account: Sendable {
    public var name: String
    /// Successful jobs a day; 0 means no limit.
    public var dailyLimit = 0
    public var paused = false
    public var pausedReason: String?
    public var infraFailures = 0
    public var cooldownUntil: Moment?
    public var cooldownLevel = 0
    /// Resting after its last job (`account_rest_seconds`) until then.
    public var restUntil: Moment?

    public init(name: String) { self.name = name }
}
