@testable import PipelineStore
@testable import PipelineModel
@testable import SeqPipeline
import SeqDatabase
import Testing
import TestSupport

/// Outcomes and response times per device and per account, rolled up by the hour in the
/// store, and the window's rates computed from them; rows past the window are pruned.
@Suite struct MetricsTests {
    @Test(arguments: StoreDriver.all) func outcomesAndResponsesGiveRatesOverTheLastHourAndDay(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 1)
        let policy = FailurePolicy()
        _ = try store.addJobs([job("a", "alice"), job("b", "alice"), job("c", "bob")])
        let now: Moment = 1_796_200_000.0
        // a succeeds, b fails retryably, then b (first in line again) succeeds 90 minutes later.
        for (id, outcome, at) in [("a", JobOutcome.success, now), ("b", .retryable(message: "flaky"), now + 10), ("b", .success, now + 5400)] {
            let claim = try #require(try store.claim(worker: 0, device: "d0", now: at, today: day, bootSeconds: 1), "claim \(id)")
            #expect(claim.job.id == id)
            #expect(try store.finish(claim, outcome: outcome, policy: policy, now: at, today: day))
        }
        _ = try store.recordHealth(device: "d0", ok: true, responseMilliseconds: 100, error: nil, now: now + 5400)
        _ = try store.recordHealth(device: "d0", ok: true, responseMilliseconds: 300, error: nil, now: now + 5401)
        _ = try store.recordHealth(device: "d0", ok: false, responseMilliseconds: nil, error: "down", now: now + 5402)

        let hour = try store.rates(subject: "device:d0", seconds: 3600, now: now + 5400)
        #expect(hour.attempts == 1 && hour.successes == 1 && hour.responses == 2 && hour.unanswered == 1, "\(hour)")
        #expect(hour.meanResponseMilliseconds == 200)
        let dayRates = try store.rates(subject: "device:d0", seconds: 86400, now: now + 5400)
        #expect(dayRates.attempts == 3 && dayRates.successes == 2 && dayRates.successRate == 2.0 / 3.0, "\(dayRates)")
        let alice = try store.rates(subject: "account:alice", seconds: 86400, now: now + 5400)
        #expect(alice.attempts == 3 && alice.successes == 2 && alice.failures == 0, "\(alice)")
        #expect(try store.rates(subject: "account:bob", seconds: 86400, now: now + 5400) == Rates())

        // Past the kept window, the first row of a new hour prunes the old ones.
        let later = now + Double(SQLJobStore.metricsKeepDays + 1) * 86400
        _ = try store.recordHealth(device: "d0", ok: true, responseMilliseconds: 50, error: nil, now: later)
        let all = try store.rates(subject: "device:d0", seconds: Double(SQLJobStore.metricsKeepDays + 5) * 86400, now: later)
        #expect(all.attempts == 0 && all.responses == 1, "old hours are gone: \(all)")
    }
}

/// The cumulative counts /metrics shows: counted in the transaction of what they count, never
/// pruned, and shown as Prometheus counters and histograms.
@Suite struct CounterTests {
    @Test(arguments: StoreDriver.all) func claimsAttemptsAndDurationsAreCountedAndShownCumulatively(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 1)
        let policy = FailurePolicy()
        _ = try store.addJobs([job("a", "alice"), job("b", "bob")])
        let now: Moment = 1_796_200_000.0
        // a: claimed and succeeds after 2 s; b: fails retryably after 30 s, then is lost with its worker.
        let a = try #require(try store.claim(worker: 0, device: "d0", now: now, today: day, bootSeconds: 1))
        #expect(try store.recordProgress(a, progress: 1, bootSeconds: 2, completed: CompletedStep(name: "post", seconds: 0.7)))
        #expect(try store.finish(a, outcome: .success, policy: policy, now: now + 2, today: day))
        let b = try #require(try store.claim(worker: 0, device: "d0", now: now + 10, today: day, bootSeconds: 1))
        #expect(try store.finish(b, outcome: .retryable(message: "flaky"), policy: policy, now: now + 40, today: day))
        let again = try #require(try store.claim(worker: 0, device: "d0", now: now + 100_000, today: day, bootSeconds: 1))
        #expect(again.job.id == "b")
        #expect(try store.requeueClaims(worker: 0, crashed: true, policy: policy, now: now + 100_001) == ["b"])

        let text = Dashboard.counterFamilies(try store.counterSamples())
        let host = store.host
        #expect(text.contains("# TYPE seqpipe_claims_total counter\nseqpipe_claims_total 3\n"), "\(text)")
        for outcome in ["success", "retryable", "lost"] {
            #expect(text.contains("seqpipe_job_attempts_total{account=") && text.contains("outcome=\"\(outcome)\"} 1"), "\(outcome): \(text)")
        }
        #expect(text.contains("seqpipe_jobs_finished_total{account=\"alice\",device=\"d0\",host=\"\(host)\",outcome=\"success\"} 1"), "\(text)")
        #expect(!text.contains("seqpipe_jobs_finished_total{account=\"bob\""), "b has not finished")
        // Histograms: cumulative buckets, +Inf equal to _count, _sum the total.
        #expect(text.contains("seqpipe_job_attempt_duration_seconds_bucket{host=\"\(host)\",outcome=\"success\",le=\"1\"} 0\n"
                              + "seqpipe_job_attempt_duration_seconds_bucket{host=\"\(host)\",outcome=\"success\",le=\"5\"} 1\n"), "\(text)")
        #expect(text.contains("seqpipe_job_attempt_duration_seconds_bucket{host=\"\(host)\",outcome=\"retryable\",le=\"60\"} 1\n"), "\(text)")
        #expect(text.contains("seqpipe_job_attempt_duration_seconds_sum{host=\"\(host)\",outcome=\"retryable\"} 30\n"), "\(text)")
        #expect(text.contains("seqpipe_step_duration_seconds_bucket{host=\"\(host)\",step=\"post\",le=\"1\"} 1\n"
                              + "seqpipe_step_duration_seconds_bucket{host=\"\(host)\",step=\"post\",le=\"5\"} 1\n"), "\(text)")
        // The wait of a first claim only: a's and b's, not b's second (mostly its backoff).
        #expect(text.contains("seqpipe_job_claim_wait_seconds_bucket{le=\"+Inf\"} 2\nseqpipe_job_claim_wait_seconds_sum "), "\(text)")
        #expect(text.contains("seqpipe_job_claim_wait_seconds_count 2\n"), "\(text)")
    }

    /// A completed step's output and counts go with its progress, and only while the claim
    /// holds (on PostgreSQL in one statement): a stale worker writes neither.
    @Test(arguments: StoreDriver.all) func aStepsOutputGoesWithItsProgressOnlyWhileTheClaimHolds(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 1)
        _ = try store.addJobs([job("a", "alice")])
        let claim = try #require(try store.claim(worker: 0, device: "d0", now: 1_796_200_000, today: day, bootSeconds: 1))
        func output(_ text: String) -> StepOutput {
            StepOutput(job: "a", run: claim.job.runs, step: "post", attempt: 1, at: 1_796_200_001, ending: "exit 0", succeeded: true, text: text)
        }
        #expect(try store.recordProgress(claim, progress: 1, bootSeconds: 2, completed: CompletedStep(name: "post", seconds: 0.2, output: output("posted\n"))))
        let stale = ClaimedJob(job: claim.job, token: "not-the-token")
        #expect(try !store.recordProgress(stale, progress: 1, bootSeconds: 2, completed: CompletedStep(name: "post", seconds: 0.2, output: output("stale\n"))))
        let kept = try store.outputs(job: "a")
        #expect(kept.map(\.text) == ["posted\n"] && kept.first?.run == 1 && kept.first?.succeeded == true, "\(kept)")
        let text = Dashboard.counterFamilies(try store.counterSamples())
        #expect(text.contains("seqpipe_step_attempts_total{host=\"\(store.host)\",outcome=\"success\",step=\"post\"} 1\n"), "\(text)")
        #expect(text.contains("seqpipe_step_duration_seconds_count{host=\"\(store.host)\",step=\"post\"} 1\n"), "\(text)")
        // A failed run's output is kept on its own; the slot of a later run of the same try is reused.
        try store.recordOutput(StepOutput(job: "a", run: 1, step: "post", attempt: 2, at: 1_796_200_002, ending: "exit 1", succeeded: false, text: "no\n"))
        try store.recordOutput(StepOutput(job: "a", run: 1 + StepOutput.runsKept, step: "post", attempt: 2, at: 1_796_200_003, ending: "exit 1", succeeded: false, text: "later\n"))
        #expect(try store.outputs(job: "a").map(\.text) == ["posted\n", "later\n"])
    }
}
