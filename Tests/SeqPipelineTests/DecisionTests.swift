@testable import PipelineModel
@testable import PipelineRuntime
import SeqDatabase
import SeqSystem
import Testing

/// The runtime's decisions, as values in and a value out, without processes or a store:
/// when a recurring job first fires, what a job waits for before it may start, and how long
/// a dead member waits before it starts again. The end-to-end suites run the same decisions
/// with real processes; these pin the rules down case by case.
@Suite struct DecisionTests {
    static let config = """
        {"steps": [{"run": ["true"]}],
         "pools": {"browser": 1, "disk": 2},
         "scheduler": {"missed": "once", "missed_jitter_seconds": 5},
         "recurring": [
           {"name": "feed", "run": ["true"], "interval_seconds": 600, "offset_seconds": 30, "needs": ["browser"]},
           {"name": "post", "run": ["true"], "interval_seconds": [60, 120], "needs": ["browser", "disk"],
            "after": [{"job": "feed", "max_age_seconds": 3600}, {"job": "clean", "max_age_seconds": 60}]},
           {"name": "clean", "run": ["true"], "interval_seconds": 86400}
         ]}
        """

    let config: PipelineConfig
    init() throws { config = try PipelineConfig.parse(Self.config, path: "p.json") }

    func job(_ name: String) throws -> RecurringJob { try #require(config.recurring.first { $0.name == name }) }

    func entries(running: Set<String> = [], pending: Set<String> = []) -> [Scheduler.Entry] {
        config.recurring.map { job in
            var entry = Scheduler.Entry(job: job, due: 0)
            if running.contains(job.name) { entry.running = .init(process: ProcessIdentity(pid: 1, startTime: 1), startedWall: 0) }
            if pending.contains(job.name) { entry.pending = .init(since: 0, reason: "due") }
            return entry
        }
    }

    // MARK: when a recurring job fires first

    @Test func aJobFirstFiresAtItsOffsetUnlessARunWasMissed() throws {
        let feed = try job("feed")
        let start: Int64 = 1_000_000_000_000
        let wall: Moment = 2_000_000.0
        var never = Heartbeat(name: "feed")
        never.lastStart = nil
        #expect(Scheduler.firstDue(feed, last: nil, start: start, wallNow: wall, policy: config.scheduler) == (start + 30_000_000_000, false))
        #expect(Scheduler.firstDue(feed, last: never, start: start, wallNow: wall, policy: config.scheduler).missed == false)
        // Started 5 minutes ago, every 10 minutes: nothing was missed.
        var recent = Heartbeat(name: "feed")
        recent.lastStart = wall - 300
        #expect(Scheduler.firstDue(feed, last: recent, start: start, wallNow: wall, policy: config.scheduler) == (start + 30_000_000_000, false))
        // Started an hour ago: a run was missed; it runs once, soon (within the 5 s jitter).
        var stale = Heartbeat(name: "feed")
        stale.lastStart = wall - 3600
        let (due, missed) = Scheduler.firstDue(feed, last: stale, start: start, wallNow: wall, policy: config.scheduler)
        #expect(missed && due >= start && due <= start + 5_000_000_000)
        // With missed: skip, a missed run is not made up.
        var skip = config.scheduler
        skip.missed = .skip
        #expect(Scheduler.firstDue(feed, last: stale, start: start, wallNow: wall, policy: skip) == (start + 30_000_000_000, false))
    }

    // MARK: what a due job waits for

    @Test func aJobWaitsForThePrerequisiteThatHasNotSucceededRecently() throws {
        let post = try job("post")
        let wall: Moment = 1_000_000.0
        let fresh: (String) -> Moment? = { _ in wall - 10 }
        #expect(Scheduler.prerequisiteToWaitFor(post, entries: entries(), now: wall, lastSuccess: fresh) == nil, "both succeeded recently")
        // feed succeeded 2 h ago (its rule allows 1 h) and is idle: it is started for post.
        let wait = try #require(Scheduler.prerequisiteToWaitFor(post, entries: entries(), now: wall, lastSuccess: { $0 == "feed" ? wall - 7200 : wall - 10 }))
        #expect(wait.rule.job == "feed" && wait.lastSuccess == wall - 7200 && wait.start == 0)
        // Already running (or waiting its own turn): post waits, nothing more is started.
        let running = try #require(Scheduler.prerequisiteToWaitFor(post, entries: entries(running: ["feed"]), now: wall, lastSuccess: { _ in nil }))
        #expect(running.rule.job == "feed" && running.start == nil)
        let pending = try #require(Scheduler.prerequisiteToWaitFor(post, entries: entries(pending: ["feed"]), now: wall, lastSuccess: { _ in nil }))
        #expect(pending.start == nil)
        // The first unmet rule decides: feed is fresh, clean never succeeded.
        let clean = try #require(Scheduler.prerequisiteToWaitFor(post, entries: entries(), now: wall, lastSuccess: { $0 == "feed" ? wall : nil }))
        #expect(clean.rule.job == "clean" && clean.lastSuccess == nil && clean.start == 2)
    }

    @Test func aJobWaitsForAPoolWithNoSlotForIt() throws {
        let post = try job("post")
        #expect(Scheduler.fullPool(for: post, entries: entries(), reserved: [], pools: config.pools) == nil)
        let browserBusy = try #require(Scheduler.fullPool(for: post, entries: entries(running: ["feed"]), reserved: [], pools: config.pools))
        #expect(browserBusy.pool == "browser" && browserBusy.inUse == 1)
        // disk has two slots, one in use: free; but a slot kept for a more important run is not.
        #expect(Scheduler.fullPool(for: try job("feed"), entries: entries(running: ["clean"]), reserved: [], pools: config.pools) == nil)
        let reserved = try #require(Scheduler.fullPool(for: post, entries: entries(), reserved: ["disk"], pools: config.pools))
        #expect(reserved.pool == "disk" && reserved.inUse == 0)
        #expect(Scheduler.fullPool(for: try job("clean"), entries: entries(running: ["feed", "post"]), reserved: ["browser"], pools: config.pools) == nil,
                "a job that needs no pool never waits for one")
    }

    // MARK: when a dead member starts again

    @Test func aMemberThatDiesQuicklyWaitsLongerEachTime() {
        let second: Int64 = 1_000_000_000
        var deaths = 0
        var delays: [Double] = []
        for _ in 0..<8 {
            let (next, delay) = Orchestrator.restartDelay(lived: second, quickDeaths: deaths, base: 0.5)
            deaths = next
            delays.append(delay)
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 32, 32], "doubling, capped at 64 times the base")
        // One that ran for a while starts the count again.
        #expect(Orchestrator.restartDelay(lived: 60 * second, quickDeaths: 5, base: 0.5) == (0, 0.5))
    }
}
