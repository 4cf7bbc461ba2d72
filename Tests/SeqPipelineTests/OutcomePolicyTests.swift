@testable import PipelineModel
@testable import SeqPipeline
import SeqDatabase
import Testing

/// The outcome policy is a pure function: the same outcome, counters and generator give the
/// same change, whatever store applies it. A seeded generator makes the jitter repeatable.
@Suite struct OutcomePolicyTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    var policy: FailurePolicy {
        var policy = FailurePolicy()
        (policy.poisonAfter, policy.maxInfrastructureAttempts, policy.cooldownAfter) = (3, 4, 2)
        (policy.backoffBaseSeconds, policy.backoffCapSeconds, policy.infraRetrySeconds) = (10, 100, 60)
        (policy.cooldownBaseSeconds, policy.cooldownCapSeconds) = (600, 2000)
        return policy
    }

    func job(attempts: Int = 1, maxAttempts: Int = 3, crashes: Int = 0, infra: Int = 0) -> Job {
        var job = Job(id: "j1", account: "a1")
        (job.attempts, job.maxAttempts, job.crashes, job.infraAttempts, job.runs, job.device) = (attempts, maxAttempts, crashes, infra, attempts, "d1")
        return job
    }

    func change(_ outcome: JobOutcome, _ job: Job, seed: UInt64 = 1) -> JobChange {
        var generator = SplitMix(state: seed)
        return policy.change(for: outcome, of: job, device: "d1", now: 1000, using: &generator)
    }

    @Test func aSuccessCompletesAndResetsTheInfrastructureCounters() {
        let done = change(.success, job())
        #expect(done.status == .success && done.completes && done.infrastructure == .reset)
        #expect(done.error == .clear && done.retryAt == .clear && done.avoidDevice == .clear)
        #expect(done.events.map(\.kind.rawValue) == ["job-success"])
    }

    @Test func retryableFailuresBackOffUntilTheAttemptsRunOut() {
        let retry = change(.retryable(message: "flaky"), job(attempts: 2))
        #expect(retry.status == .retrying && !retry.completes && retry.errorType == .set("retryable"))
        guard case .set(let at) = retry.retryAt else { Issue.record("no retry time"); return }
        // Full jitter over min(cap, base·2^(2-1)) = 20 s.
        #expect(at >= 1000 && at <= 1020)
        #expect(change(.retryable(message: "flaky"), job(attempts: 2), seed: 1) == retry, "same seed, same change")
        let last = change(.retryable(message: "flaky"), job(attempts: 3))
        #expect(last.status == .failed && last.completes && last.events.map(\.kind.rawValue) == ["job-failed"])
    }

    @Test func memoryKillsCountTowardPoison() {
        let second = change(.memory(message: "tree over 512 MB"), job(crashes: 1))
        #expect(second.status == .retrying && second.crashes == 2 && second.errorType == .set("memory"))
        let third = change(.memory(message: "tree over 512 MB"), job(crashes: 2))
        #expect(third.status == .failed && third.crashes == 3 && third.errorType == .set("poison"))
        #expect(third.events.map(\.kind.rawValue) == ["job-poison"])
    }

    @Test func infrastructureIsNotTheJobsFaultButHasItsOwnBudget() {
        let first = change(.infrastructure(message: "server down"), job(infra: 0))
        #expect(first.status == .retrying && first.refundsAttempt && first.infrastructureAttempts == 1 && first.infrastructure == .charge)
        guard case .set(let at) = first.retryAt else { Issue.record("no retry time"); return }
        #expect(at >= 1000 && at <= 1060)
        let exhausted = change(.infrastructure(message: "server down"), job(infra: 3))
        #expect(exhausted.status == .failed && exhausted.completes && exhausted.refundsAttempt && exhausted.infrastructureAttempts == 4)
        let handOff = change(.handOff(message: "device stuck"), job())
        #expect(handOff.avoidDevice == .set("d1") && handOff.events.map(\.kind.rawValue) == ["job-handoff", "job-infrastructure"])
    }

    @Test func permanentTroublePausesTheAccountAndInvalidJobsFailAlone() {
        let banned = change(.permanent(type: "banned", message: "account banned"), job())
        #expect(banned.status == .failed && banned.pauseAccount == "banned (job j1)" && banned.errorType == .set("banned"))
        let invalid = change(.invalid(message: "no {video}"), job())
        #expect(invalid.status == .failed && invalid.pauseAccount == nil && invalid.infrastructure == .untouched)
        let stopped = change(.stopped, job())
        #expect(stopped.status == .pending && stopped.refundsAttempt && stopped.retryAt == .clear && !stopped.completes)
    }

    @Test func lostClaimsAreRequeuedOrQuarantined() {
        var generator = SplitMix(state: 7)
        let orphan = policy.changeForLostClaim(of: job(), crashed: false, now: 1000, using: &generator)
        #expect(orphan.status == .pending && orphan.refundsAttempt && orphan.crashes == nil)
        let crash = policy.changeForLostClaim(of: job(crashes: 1), crashed: true, now: 1000, using: &generator)
        #expect(crash.status == .retrying && crash.crashes == 2 && crash.errorType == .set("crash"))
        let poison = policy.changeForLostClaim(of: job(crashes: 2), crashed: true, now: 1000, using: &generator)
        #expect(poison.status == .failed && poison.completes && poison.errorType == .set("poison"))
    }

    @Test func aSuccessRestsTheAccountForADrawFromItsRange() {
        var resting = policy
        resting.accountRestSeconds = 10...20
        var generator = SplitMix(state: 3)
        let done = resting.change(for: .success, of: job(), device: "d1", now: 1000, using: &generator)
        #expect((1010...1020).contains(done.accountRestsUntil ?? 0) && done.events.map(\.kind.rawValue) == ["job-success", "account-rest"])
        let failed = resting.change(for: .retryable(message: "x"), of: job(), device: "d1", now: 1000, using: &generator)
        #expect(failed.accountRestsUntil == nil, "a rest follows a processed job, not a failure")
        #expect(change(.success, job()).accountRestsUntil == nil, "none configured, none taken")
    }

    @Test func cooldownsStartAtTheNthFailureInARowAndDouble() {
        #expect(policy.charge(failures: 0, level: 0) == (1, 0, nil))
        #expect(policy.charge(failures: 1, level: 0) == (0, 1, 600))
        #expect(policy.charge(failures: 1, level: 1) == (0, 2, 1200))
        #expect(policy.charge(failures: 1, level: 5) == (0, 6, 2000))
    }
}
