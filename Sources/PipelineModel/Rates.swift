import SeqDatabase

/// Attempts, outcomes and response times of a device or an account over a window (the
/// store counts them by the hour).
public struct Rates: Sendable, Equatable {
    /// Attempts that ended (success, failed, retrying or pending again); of them, the
    /// successes and the failures.
    public var attempts = 0, successes = 0, failures = 0
    /// Health checks that measured a response, and their mean; those the device did not answer.
    public var responses = 0, unanswered = 0
    public var meanResponseMilliseconds: Int?

    public init() {}

    public var successRate: Double? { attempts == 0 ? nil : Double(successes) / Double(attempts) }
}
