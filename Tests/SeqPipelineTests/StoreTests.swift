import SeqDatabase
import Glibc
@testable import PipelineModel
@testable import SeqPipeline
import SeqSystem
import Testing
import TestSupport

/// A fresh SQLite store in its own directory, with devices d0…d(n-1).
func makeStore(_ directory: TemporaryDirectory, devices: Int = 2) throws -> SQLJobStore {
    let store = try SQLJobStore(path: directory.path + "/pipeline.db", create: true)
    try store.migrate()
    for index in 0..<devices { try store.addDevice(Device(name: "d\(index)")) }
    return store
}

func job(_ id: String, _ account: String, maxAttempts: Int = 3) -> Job {
    var job = Job(id: id, account: account)
    job.maxAttempts = maxAttempts
    return job
}

let day = "2026-11-23"

@Suite struct ClaimTests {
    @Test(arguments: StoreDriver.all) func oneAccountNeverHasTwoJobsAtOnceAndOrderIsPriorityThenAge(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        var urgent = job("c", "bob")
        urgent.priority = 5
        _ = try store.addJobs([job("a", "alice"), job("b", "alice"), urgent])
        let first = try #require(try store.claim(worker: 0, device: "d0", now: 100, today: day, bootSeconds: 1))
        #expect(first.job.id == "c")
        let second = try #require(try store.claim(worker: 1, device: "d1", now: 100, today: day, bootSeconds: 1))
        #expect(second.job.id == "a")
        // Alice is busy with "a" and bob has nothing left: no third claim.
        #expect(try store.claim(worker: 2, device: "d0", now: 100, today: day, bootSeconds: 1) == nil)
        #expect(try store.finish(second, outcome: .success, policy: FailurePolicy(), now: 101, today: day))
        #expect(try store.claim(worker: 2, device: "d0", now: 102, today: day, bootSeconds: 1)?.job.id == "b")
    }

    @Test(arguments: StoreDriver.all) func twoConnectionsRacingNeverClaimOneJobTwice(_ driver: StoreDriver) throws {
        // Separate connections to one store, as separate worker processes have: each claim
        // is one serialised write transaction, so a job goes to exactly one of them.
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 4)
        _ = try store.addJobs((0..<40).map { job("j\($0)", "acct\($0)") })
        let others = try (1..<4).map { _ in try SQLJobStore.open(place.location) }
        var claimed: [String] = []
        for round in 0..<10 {
            for (worker, connection) in ([store] + others).enumerated() {
                let claim = try #require(try connection.claim(worker: worker, device: "d\(worker)", now: Moment(seconds: Double(round)), today: day, bootSeconds: 1))
                claimed.append(claim.job.id)
                #expect(try connection.finish(claim, outcome: .success, policy: FailurePolicy(), now: Moment(seconds: Double(round)), today: day))
            }
        }
        #expect(Set(claimed).count == 40)
    }

    @Test(arguments: StoreDriver.all) func aStaleTokenCannotOverwriteANewerAttempt(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice")])
        let stale = try #require(try store.claim(worker: 0, device: "d0", now: 1, today: day, bootSeconds: 1))
        // The claim is taken back (its worker was presumed dead) and claimed again.
        #expect(try store.requeueClaims(worker: 0, crashed: true, policy: FailurePolicy(), now: 2) == ["a"])
        let fresh = try #require(try store.claim(worker: 1, device: "d1", now: 100, today: day, bootSeconds: 1))
        #expect(fresh.token != stale.token)
        #expect(fresh.job.runs == 2)
        #expect(try !store.markRunning(stale, bootSeconds: 2))
        #expect(try !store.recordProgress(stale, progress: 1, bootSeconds: 2, completed: nil))
        #expect(try !store.finish(stale, outcome: .success, policy: FailurePolicy(), now: 3, today: day))
        #expect(try store.job("a")?.status == .claimed)
        #expect(try store.finish(fresh, outcome: .success, policy: FailurePolicy(), now: 101, today: day))
        #expect(try store.job("a")?.status == .success)
    }

    @Test(arguments: StoreDriver.all) func dailyLimitHoldsUntilTheNextDay(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        try store.addAccount("alice", dailyLimit: 1)
        _ = try store.addJobs([job("a", "alice"), job("b", "alice")])
        let claim = try #require(try store.claim(worker: 0, device: "d0", now: 1, today: day, bootSeconds: 1))
        #expect(try store.finish(claim, outcome: .success, policy: FailurePolicy(), now: 2, today: day))
        #expect(try store.claim(worker: 0, device: "d0", now: 3, today: day, bootSeconds: 1) == nil)
        #expect(try store.remainingWork(today: day) == 0)
        #expect(try store.claim(worker: 0, device: "d0", now: 3, today: "2026-11-24", bootSeconds: 1)?.job.id == "b")
    }

    @Test(arguments: StoreDriver.all) func anUnhealthyDeviceGetsNoJob(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice")])
        #expect(try store.recordHealth(device: "d0", ok: false, responseMilliseconds: nil, error: "refused", now: 1) == 1)
        #expect(try store.claim(worker: 0, device: "d0", now: 2, today: day, bootSeconds: 1) == nil)
        #expect(try store.recordHealth(device: "d0", ok: true, responseMilliseconds: 12, error: nil, now: 3) == 0)
        #expect(try store.claim(worker: 0, device: "d0", now: 4, today: day, bootSeconds: 1)?.job.id == "a")
    }
}

@Suite struct FailureTests {
    var policy: FailurePolicy {
        var policy = FailurePolicy()
        policy.backoffBaseSeconds = 10
        policy.backoffCapSeconds = 10
        policy.infraRetrySeconds = 0
        policy.cooldownBaseSeconds = 100
        policy.maxInfrastructureAttempts = 5
        return policy
    }

    @Test(arguments: StoreDriver.all) func retryableFailuresUseTheJobsAttemptsThenFail(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice", maxAttempts: 2)])
        let first = try #require(try store.claim(worker: 0, device: "d0", now: 0, today: day, bootSeconds: 1))
        #expect(try store.finish(first, outcome: .retryable(message: "boom"), policy: policy, now: 0, today: day))
        let retrying = try #require(try store.job("a"))
        #expect(retrying.status == .retrying && retrying.attempts == 1)
        #expect(try #require(retrying.retryAt) <= 10)
        let second = try #require(try store.claim(worker: 0, device: "d0", now: 11, today: day, bootSeconds: 1))
        #expect(try store.finish(second, outcome: .retryable(message: "boom again"), policy: policy, now: 11, today: day))
        let failed = try #require(try store.job("a"))
        #expect(failed.status == .failed && failed.error == "boom again" && failed.errorType == "retryable")
    }

    @Test(arguments: StoreDriver.all) func infrastructureFailuresChargeAccountAndDeviceNotTheJob(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 3)
        _ = try store.addJobs([job("a", "alice", maxAttempts: 1)])
        for (round, device) in ["d0", "d1", "d2"].enumerated() {
            let claim = try #require(try store.claim(worker: 0, device: device, now: Moment(seconds: Double(round)), today: day, bootSeconds: 1))
            #expect(try store.finish(claim, outcome: .infrastructure(message: "adb: device offline"), policy: policy, now: Moment(seconds: Double(round)), today: day))
        }
        let job = try #require(try store.job("a"))
        // Three infrastructure failures, and the job's single attempt is still unspent.
        #expect(job.status == .retrying && job.attempts == 0 && job.infraAttempts == 3 && job.errorType == "infrastructure")
        let account = try #require(try store.accounts().first { $0.name == "alice" })
        #expect(account.cooldownLevel == 1 && (account.cooldownUntil ?? 0) == 102)
        // Each device failed once: none is on cooldown.
        #expect(try store.devices().allSatisfy { $0.cooldownUntil == nil && $0.infraFailures == 1 })
        #expect(try store.claim(worker: 0, device: "d0", now: 50, today: day, bootSeconds: 1) == nil)
        let after = try #require(try store.claim(worker: 0, device: "d0", now: 103, today: day, bootSeconds: 1))
        #expect(try store.finish(after, outcome: .success, policy: policy, now: 104, today: day))
        #expect(try store.accounts().first { $0.name == "alice" }?.cooldownLevel == 0)
    }

    @Test(arguments: StoreDriver.all) func aDeviceFailingThreeTimesInARowCoolsDownLongerEachTime(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 1)
        _ = try store.addJobs((0..<6).map { job("j\($0)", "acct\($0)") })
        var now: Moment = 0.0
        var levels: [Double] = []
        for _ in 0..<6 {
            let claim = try #require(try store.claim(worker: 0, device: "d0", now: now, today: day, bootSeconds: 1))
            #expect(try store.finish(claim, outcome: .infrastructure(message: "appium down"), policy: policy, now: now, today: day))
            if let until = try store.devices()[0].cooldownUntil, until > now {
                levels.append(until - now)
                now = until
            }
        }
        #expect(levels == [100, 200])
    }

    @Test(arguments: StoreDriver.all) func aJobThatNeverGetsThroughTheInfrastructureFailsInTheEnd(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 1)
        _ = try store.addJobs([job("a", "alice")])
        var limited = policy
        limited.cooldownAfter = 100
        for round in 0..<5 {
            let claim = try #require(try store.claim(worker: 0, device: "d0", now: Moment(seconds: Double(round)), today: day, bootSeconds: 1))
            #expect(try store.finish(claim, outcome: .infrastructure(message: "timeout"), policy: limited, now: Moment(seconds: Double(round)), today: day))
        }
        let job = try #require(try store.job("a"))
        #expect(job.status == .failed && job.errorType == "infrastructure" && job.infraAttempts == 5)
    }

    @Test(arguments: StoreDriver.all) func aPermanentErrorPausesEveryPendingJobOfTheAccountUntilResumed(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice"), job("b", "alice"), job("c", "alice"), job("x", "bob")])
        let claim = try #require(try store.claim(worker: 0, device: "d0", now: 0, today: day, bootSeconds: 1))
        #expect(try store.finish(claim, outcome: .permanent(type: "suspended", message: "account suspended"), policy: policy, now: 0, today: day))
        #expect(try store.job("a")?.status == .failed)
        #expect(try store.accounts().first { $0.name == "alice" }?.paused == true)
        #expect(try store.claim(worker: 0, device: "d0", now: 1, today: day, bootSeconds: 1)?.job.id == "x")
        #expect(try store.claim(worker: 1, device: "d1", now: 1, today: day, bootSeconds: 1) == nil)
        #expect(try store.remainingWork(today: day) == 1)  // only bob's running job
        #expect(try store.resumeAccount("alice", by: "test") == .changed(from: "paused (suspended (job a))"))
        #expect(try store.resumeAccount("alice", by: "test") == .unchanged("running"))
        #expect(try store.resumeAccount("nobody", by: "test") == .missing)
        #expect(try store.claim(worker: 1, device: "d1", now: 2, today: day, bootSeconds: 1)?.job.id == "b")
    }

    @Test(arguments: StoreDriver.all) func aJobThatKillsItsWorkerThreeTimesIsQuarantined(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice", maxAttempts: 10)])
        for round in 0..<2 {
            _ = try #require(try store.claim(worker: 0, device: "d0", now: Moment(seconds: Double(round * 100)), today: day, bootSeconds: 1))
            #expect(try store.requeueClaims(worker: 0, crashed: true, policy: policy, now: Moment(seconds: Double(round * 100))) == ["a"])
            #expect(try store.job("a")?.status == .retrying)
        }
        // The third death is by the memory limit: it counts the same.
        let claim = try #require(try store.claim(worker: 0, device: "d0", now: 300, today: day, bootSeconds: 1))
        #expect(try store.finish(claim, outcome: .memory(message: "over 100 MB"), policy: policy, now: 300, today: day))
        let job = try #require(try store.job("a"))
        #expect(job.status == .failed && job.errorType == "poison" && job.crashes == 3)
    }

    /// The targeted reads: one device by name, and the claimed or running jobs alone, in
    /// claim order, whatever the queue holds.
    @Test(arguments: StoreDriver.all) func aDeviceAndTheClaimsAreReadWithoutTheirTables(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        #expect(try store.device("d1")?.name == "d1")
        #expect(try store.device("nope") == nil)
        var urgent = job("c", "carol")
        urgent.priority = 5
        _ = try store.addJobs([job("a", "alice"), job("b", "bob"), urgent])
        #expect(try store.claimedJobs().isEmpty)
        let first = try #require(try store.claim(worker: 0, device: "d0", now: 0, today: day, bootSeconds: 1))
        let second = try #require(try store.claim(worker: 1, device: "d1", now: 0, today: day, bootSeconds: 1))
        #expect(try store.markRunning(second, bootSeconds: 2))
        #expect(try store.claimedJobs().map(\.id) == [first.job.id, second.job.id])
        #expect(try store.claimedJobs().map(\.status) == [.claimed, .running])
        #expect(try store.finish(first, outcome: .success, policy: policy, now: 2, today: day))
        #expect(try store.claimedJobs().map(\.id) == [second.job.id])
    }

    @Test(arguments: StoreDriver.all) func orphanedClaimsGoBackUnchargedAndStoppedRunsToo(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice"), job("b", "bob")])
        let a = try #require(try store.claim(worker: 0, device: "d0", now: 0, today: day, bootSeconds: 1))
        _ = try #require(try store.claim(worker: 1, device: "d1", now: 0, today: day, bootSeconds: 1))
        #expect(try store.finish(a, outcome: .stopped, policy: policy, now: 1, today: day))
        #expect(try store.requeueClaims(worker: nil, crashed: false, policy: policy, now: 1) == ["b"])
        for id in ["a", "b"] {
            let job = try #require(try store.job(id))
            #expect(job.status == .pending && job.attempts == 0 && job.crashes == 0 && job.runs == 1)
        }
    }

    /// What a change by hand found: refused, already so, changed, or no such job; and each
    /// change an event naming who asked.
    @Test(arguments: StoreDriver.all) func retryAndCancelByHand(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice", maxAttempts: 1), job("b", "bob"), job("c", "carol")])
        let claim = try #require(try store.claim(worker: 0, device: "d0", now: 0, today: day, bootSeconds: 1))
        #expect(try store.cancel("a", by: "test") == .refused(.claimed))  // claimed: the worker owns it
        #expect(try store.retry("b", by: "test") == .unchanged(.pending))
        #expect(try store.finish(claim, outcome: .retryable(message: "x"), policy: policy, now: 0, today: day))
        #expect(try store.job("a")?.status == .failed)
        #expect(try store.retry("a", by: "alice at the terminal") == .changed(from: .failed))
        let retried = try #require(try store.job("a"))
        #expect(retried.status == .pending && retried.attempts == 0 && retried.runs == 1 && retried.attemptLimit == 2, "\(retried)")
        #expect(try store.events(job: "a").contains { $0.kind == .jobRetry && $0.message == "put back to pending by alice at the terminal" })
        #expect(try store.cancel("b", by: "test") == .changed(from: .pending))
        #expect(try store.cancel("b", by: "test") == .unchanged(.cancelled))
        #expect(try store.retry("nope", by: "test") == .missing)
        #expect(try store.job("b")?.status == .cancelled)
        let c = try #require(try store.claim(worker: 0, device: "d0", now: 1, today: day, bootSeconds: 1))
        #expect(c.job.id == "a" || c.job.id == "c")
        #expect(try store.finish(c, outcome: .success, policy: policy, now: 2, today: day))
        #expect(try store.cancel(c.job.id, by: "test") == .refused(.success))
    }

    /// A device paused by hand takes no claim until resumed; a held one is released at once.
    @Test(arguments: StoreDriver.all) func devicesArePausedResumedAndReleasedByHand(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place, devices: 1)
        _ = try store.addJobs([job("a", "alice"), job("b", "bob")])
        #expect(try store.pauseDevice("d0", by: "test") == .changed(from: "running"))
        #expect(try store.pauseDevice("d0", by: "test") == .unchanged("paused"))
        #expect(try store.claim(worker: 0, device: "d0", now: 0, today: day, bootSeconds: 1) == nil)
        #expect(try store.resumeDevice("d0", by: "test") == .changed(from: "paused (by test)"))
        #expect(try store.resumeDevice("d0", by: "test") == .unchanged("not paused"))
        let now = try store.currentTime()
        try store.holdDevice("d0", until: now + 3600, reason: "port 4723 is busy")
        #expect(try store.claim(worker: 0, device: "d0", now: now, today: day, bootSeconds: 1) == nil)
        guard case .changed(let from) = try store.releaseDevice("d0", by: "test") else { Issue.record("not released"); return }
        #expect(from.hasPrefix("held until ") && from.hasSuffix("(port 4723 is busy)"), "\(from)")
        #expect(try store.releaseDevice("d0", by: "test") == .unchanged("not held"))
        #expect(try store.claim(worker: 0, device: "d0", now: now, today: day, bootSeconds: 1) != nil)
        #expect(try store.pauseDevice("nope", by: "test") == .missing)
        let kinds = try store.events(since: 0, limit: 100).map(\.kind)
        #expect([EventKind.devicePaused, .deviceResumed, .deviceReleased].allSatisfy(kinds.contains), "\(kinds)")
    }

    @Test(arguments: StoreDriver.all) func migrationsAreVersionedAndIdempotent(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        try store.migrate()
        let again = try SQLJobStore.open(place.location)
        try again.migrate()
        if driver == .sqlite {
            #expect(try again.connection.query("PRAGMA user_version").first?["user_version"].int == Int64(SQLJobStore.schemaVersion))
            #expect(try again.connection.query("PRAGMA journal_mode").first?["journal_mode"].string == "wal")
        } else {
            #expect(try again.connection.query("SELECT MAX(version) AS v FROM schema_version").first?["v"].int == Int64(again.schemaVersion))
        }
        #expect(try again.devices().count == 2)
    }

    @Test(arguments: StoreDriver.all) func aJobHandedOffByADeviceGoesToAnotherUnlessNoneIsHealthy(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        _ = try store.addJobs([job("a", "alice")])
        let first = try #require(try store.claim(worker: 0, device: "d0", now: 100, today: day, bootSeconds: 1))
        #expect(try store.finish(first, outcome: .handOff(message: "device offline"), policy: FailurePolicy(), now: 100, today: day))
        #expect(try store.job("a")?.avoidDevice == "d0" && store.job("a")?.attempts == 0)
        // d0 does not get it back while d1 is healthy; d1 does.
        #expect(try store.claim(worker: 0, device: "d0", now: 1000, today: day, bootSeconds: 1) == nil)
        #expect(try store.recordHealth(device: "d1", ok: false, responseMilliseconds: nil, error: "down", now: 1000) == 1)
        let again = try #require(try store.claim(worker: 0, device: "d0", now: 1000, today: day, bootSeconds: 1))
        #expect(try store.finish(again, outcome: .success, policy: FailurePolicy(), now: 1001, today: day))
        #expect(try store.job("a")?.avoidDevice == nil)
    }

    @Test(arguments: StoreDriver.all) func alertsRaiseOnceRefreshAndClear(_ driver: StoreDriver) throws {
        let place = try driver.place()
        let store = try driver.makeStore(place)
        #expect(try store.raiseAlert("stuck:plan", kind: .stuck, message: "first", now: 10))
        #expect(try !store.raiseAlert("stuck:plan", kind: .stuck, message: "still", now: 20))
        let alert = try #require(try store.alerts().first)
        #expect(alert.raisedAt == 10 && alert.seenAt == 20 && alert.message == "still")
        #expect(try store.clearAlert("stuck:plan", now: 30) && !store.clearAlert("stuck:plan", now: 31))
        #expect(try store.alerts().isEmpty)
        #expect(try store.raiseAlert("stuck:plan", kind: .stuck, message: "again", now: 40) && store.alerts().first?.raisedAt == 40)
        try store.recordCheck("health", ok: false, message: "the queue is empty", now: 50)
        #expect(try store.checks().map { "\($0.name) \($0.ok) \($0.message)" } == ["health false the queue is empty"])
        try store.addEvent(Event(at: 5, kind: EventKind(rawValue: "old"), message: "x"))
        try store.addEvent(Event(at: 60, kind: EventKind(rawValue: "new"), message: "y"))
        #expect(try store.events(since: 50, limit: 10).map(\.kind.rawValue) == ["new"])
    }
}
