import SeqDatabase
import SeqGuard

/// What becomes of a job when an attempt ends, decided from the outcome and the job's
/// counters alone: attempt budgets, poison, infrastructure budgets, backoff and hand-off.
/// A pure function of its inputs (the jitter comes from the generator passed in), so any
/// store (SQLite, PostgreSQL) applies the same policy.
public struct JobChange: Sendable, Equatable {
    /// A column the change sets, clears, or leaves as it is.
    public enum Field<Value: Sendable & Equatable>: Sendable, Equatable {
        case keep
        case set(Value)
        case clear
    }

    /// What the account and the device of the attempt go through.
    public enum Infrastructure: Sendable, Equatable {
        case untouched
        /// A success: their infrastructure failures and cooldown levels start again from 0.
        case reset
        /// One more infrastructure failure each (`FailurePolicy.charge`).
        case charge
    }

    public var status: JobStatus
    /// The job is finished now (completed_at; for a success also the day it counts toward).
    public var completes = false
    /// The attempt is not charged: attempts go back down by one.
    public var refundsAttempt = false
    public var crashes: Int?
    public var infrastructureAttempts: Int?
    public var retryAt: Field<Moment> = .keep
    public var error: Field<String> = .keep
    public var errorType: Field<String> = .keep
    /// The device the job should not go back to (a hand-off).
    public var avoidDevice: Field<String> = .keep
    /// The account is paused, for this reason.
    public var pauseAccount: String?
    /// The account rests until then before its next job (`account_rest_seconds`).
    public var accountRestsUntil: Moment?
    public var infrastructure = Infrastructure.untouched
    /// What to write to the events table, about the job, at the change's time.
    public var events: [Event] = []

    init(status: JobStatus) { self.status = status }
}

extension FailurePolicy {
    /// The change for `outcome` of the attempt of `job` (its counters as the store holds them,
    /// this attempt already counted in `attempts`) that ran on `device`, at `now`. Longer
    /// than 80 lines on purpose: one case per outcome, each a few lines, read side by side.
    public func change<G: RandomNumberGenerator>(
        for outcome: JobOutcome, of job: Job, device: String, now: Moment, using generator: inout G
    ) -> JobChange {
        var change: JobChange
        func event(_ kind: EventKind, _ message: String) { change.events.append(job.event(kind, message, at: now)) }
        switch outcome {
        case .success:
            change = JobChange(status: .success)
            change.completes = true
            (change.retryAt, change.error, change.errorType, change.avoidDevice) = (.clear, .clear, .clear, .clear)
            change.infrastructure = .reset
            event(.jobSuccess, "done in attempt \(job.attemptText)")
            if let rest = accountRestSeconds {
                let until = now + Double.random(in: rest, using: &generator)
                change.accountRestsUntil = until
                event(.accountRest, "\(job.account) rests \(formatDuration(until - now)) before its next job")
            }

        case .permanent(let type, let message):
            change = JobChange(status: .failed)
            change.completes = true
            (change.error, change.errorType) = (.set(message), .set(type))
            change.pauseAccount = "\(type) (job \(job.id))"
            event(.accountPaused, "\(type): \(message); its jobs wait for 'seqpipe account resume \(job.account)'")

        case .infrastructure(let message), .handOff(let message):
            // Not the job's fault: its attempts stay uncharged, the account's and the device's
            // counters take it. A separate, larger budget still ends a job that never gets
            // through, so no job retries forever.
            let attempts = job.infraAttempts + 1
            let exhausted = attempts >= maxInfrastructureAttempts
            change = JobChange(status: exhausted ? .failed : .retrying)
            change.refundsAttempt = true
            change.infrastructureAttempts = attempts
            (change.error, change.errorType) = (.set(message), .set("infrastructure"))
            change.infrastructure = .charge
            if case .handOff = outcome {
                change.avoidDevice = .set(device)
                event(.jobHandoff, "device \(device) could not run it after its server and device restarts; another device takes it")
            }
            if exhausted {
                change.completes = true
                event(.jobFailed, "after \(attempts) infrastructure failures: \(message)")
            } else {
                change.retryAt = .set(now + Double.random(in: 0...max(infraRetrySeconds, 0), using: &generator))
                event(.jobInfrastructure, message)
            }

        case .retryable(let message), .memory(let message):
            var crashes = job.crashes
            var type = "retryable"
            if case .memory = outcome {
                crashes += 1
                type = "memory"
            }
            if crashes >= poisonAfter {
                change = JobChange(status: .failed)
                change.completes = true
                type = "poison"
                event(.jobPoison, "quarantined after \(crashes) crashes: \(message)")
            } else if job.attempts >= job.maxAttempts {
                change = JobChange(status: .failed)
                change.completes = true
                event(.jobFailed, "attempt \(job.attemptText) failed; no attempts left: \(message)")
            } else {
                change = JobChange(status: .retrying)
                change.retryAt = .set(now + backoff(failures: job.attempts, using: &generator))
                event(.jobRetrying, "attempt \(job.attemptText) failed: \(message)")
            }
            change.crashes = crashes
            (change.error, change.errorType) = (.set(message), .set(type))

        case .invalid(let message):
            change = JobChange(status: .failed)
            change.completes = true
            (change.error, change.errorType) = (.set(message), .set("invalid"))
            event(.jobFailed, message)

        case .stopped:
            change = JobChange(status: .pending)
            change.refundsAttempt = true
            change.retryAt = .clear
            event(.jobReleased, "stopped before it finished; back to pending")
        }
        return change
    }

    /// The change for a claim whose attempt never reported: its worker died during it
    /// (`crashed`, counted toward poison) or no orchestrator held it (an orphan, uncharged).
    /// Requeues are spread over `requeueSpreadSeconds`, so a recovered fleet is not flooded.
    public func changeForLostClaim<G: RandomNumberGenerator>(
        of job: Job, crashed: Bool, now: Moment, using generator: inout G
    ) -> JobChange {
        let retryAt = now + Double.random(in: 0...max(requeueSpreadSeconds, 0), using: &generator)
        guard crashed else {
            var change = JobChange(status: .pending)
            change.refundsAttempt = true
            change.retryAt = .set(retryAt)
            change.events = [job.event(.jobRequeued, "orphaned claim (no orchestrator held it); requeued", at: now)]
            return change
        }
        let crashes = job.crashes + 1
        var change = JobChange(status: crashes >= poisonAfter ? .failed : .retrying)
        change.crashes = crashes
        change.error = .set("its worker died during the job")
        if crashes >= poisonAfter {
            change.completes = true
            change.errorType = .set("poison")
            change.events = [job.event(.jobPoison, "quarantined: its worker died \(crashes) times during it", at: now)]
        } else {
            change.retryAt = .set(retryAt)
            change.errorType = .set("crash")
            change.events = [job.event(.jobRequeued, "worker died mid-job (crash \(crashes) of \(poisonAfter)); requeued", at: now)]
        }
        return change
    }

    /// One more infrastructure failure for an account or a device that has had `failures` in
    /// a row and `level` cooldowns: the new counters, and the cooldown to start, if any. The
    /// Nth failure in a row starts one that doubles each time, until a success.
    public func charge(failures: Int, level: Int) -> (failures: Int, level: Int, cooldownSeconds: Double?) {
        let failures = failures + 1
        guard failures >= cooldownAfter else { return (failures, level, nil) }
        return (0, level + 1, cooldown(level: level))
    }
}
