import SeqDatabase
import SeqGuard
import SeqSystem

/// Numbers the store needs to turn an outcome into state.
public struct FailurePolicy: Sendable {
    public var backoffBaseSeconds: Double = 30
    public var backoffCapSeconds: Double = 3600
    public var infraRetrySeconds: Double = 60
    public var cooldownAfter = 3
    public var cooldownBaseSeconds: Double = 600
    public var cooldownCapSeconds: Double = 4 * 3600
    public var poisonAfter = 3
    public var maxInfrastructureAttempts = 10
    public var requeueSpreadSeconds: Double = 30
    /// A rest for the account after each job it completes, drawn afresh from the range: the
    /// next job of the account waits for it, as for a cooldown. Nil: none.
    public var accountRestSeconds: ClosedRange<Double>?

    public init() {}

    /// Exponential backoff with full jitter: a uniform draw in [0, min(cap, base·2^(n-1))].
    public func backoff<G: RandomNumberGenerator>(failures: Int, using generator: inout G) -> Double {
        Backoff.fullJitter(attempt: failures, base: backoffBaseSeconds, cap: backoffCapSeconds, using: &generator)
    }

    /// The cooldown for the level-th cooldown in a row: base·2^level, capped.
    public func cooldown(level: Int) -> Double {
        min(cooldownCapSeconds, cooldownBaseSeconds * Double(1 << min(level, 30)))
    }
}

/// Backoff arithmetic.
public enum Backoff {
    /// A uniform draw in [0, min(cap, base·2^(attempt-1))] (AWS's "full jitter").
    public static func fullJitter<G: RandomNumberGenerator>(attempt: Int, base: Double, cap: Double, using generator: inout G) -> Double {
        let ceiling = min(cap, base * Double(1 << min(max(attempt - 1, 0), 30)))
        return ceiling <= 0 ? 0 : Double.random(in: 0...ceiling, using: &generator)
    }

    public static func fullJitter(attempt: Int, base: Double, cap: Double) -> Double {
        var generator = SystemRandomNumberGenerator()
        return fullJitter(attempt: attempt, base: base, cap: cap, using: &generator)
    }
}
