import Foundation
import Glibc
import SeqSystem
import Testing

/// A recurring job whose command is sim-step in `mode`, logging to the sandbox's steps.log.
func recurringJob(_ pipeline: PipelineSandbox, _ name: String, mode: String, interval: Any, offset: Double, extra: [String: Any] = [:]) -> [String: Any] {
    var job: [String: Any] = [
        "name": name, "interval_seconds": interval, "offset_seconds": offset,
        "run": [simDirectory + "/sim-step", "--log", pipeline.stepLog, "--job", name, "--account", name,
                "--state", pipeline.sandbox.project, mode],
    ]
    job.merge(extra) { $1 }
    return job
}

/// Recurring jobs: the scheduler under `seqpipe run`, with minutes scaled down to tenths of
/// a second through the config. Each job's command is sim-step logging to steps.log.
@Suite(.serialized) struct RecurringTests {
    func job(_ pipeline: PipelineSandbox, _ name: String, mode: String, interval: Any, offset: Double, extra: [String: Any] = [:]) -> [String: Any] {
        recurringJob(pipeline, name, mode: mode, interval: interval, offset: offset, extra: extra)
    }

    @Test func aStaggeredScheduleStartsInOrderAndNoJobOverlapsItself() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let names = ["posting", "plan", "metrics", "reply", "discovery", "analytics"]
        var jobs = names.enumerated().map { index, name in
            job(pipeline, name, mode: "slow:0.05", interval: 5, offset: 0.4 * Double(index))
        }
        // One job outlasts its interval: its due runs are skipped while it runs.
        jobs.append(job(pipeline, "harvester", mode: "slow:1", interval: 0.3, offset: 0, extra: ["priority": "P3"]))
        try pipeline.configure(extra: ["recurring": jobs])
        let (scheduled, timeline, _) = try pipeline.pipe(["schedule", "--minutes", "1"])
        #expect(scheduled == 0 && timeline.contains("0:00.4  plan  (P2, every 5s)"), "\(timeline)")

        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { Set(pipeline.marks.filter(\.start).map(\.job)).isSuperset(of: names) && pipeline.startedRuns("harvester") >= 2 })
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        let firsts = names.compactMap { name in pipeline.marks.first { $0.start && $0.job == name } }
        #expect(firsts.sorted { $0.nanoseconds < $1.nanoseconds }.map(\.job) == names)
        // Spread, not a stampede: the first runs of the six span most of their 2 s of offsets.
        if let first = firsts.map(\.nanoseconds).min(), let last = firsts.map(\.nanoseconds).max() {
            #expect(last - first >= 1_500_000_000)
        }
        #expect(pipeline.overlaps() == [])
        let recurring = try pipeline.status()["recurring"] as? [[String: Any]] ?? []
        let harvester = recurring.first { $0["name"] as? String == "harvester" }
        #expect(harvester?["skip_reason"] as? String == "the previous run was still running", "\(recurring)")
        #expect(recurring.count == 7 && recurring.allSatisfy { ($0["runs"] as? Int ?? 0) >= 1 })
    }

    @Test func aQueuedOverlapRunsRightAfterTheLastRunInsteadOfBeingSkipped() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: ["recurring": [
            job(pipeline, "queued", mode: "slow:0.5", interval: 0.1, offset: 0, extra: ["overlap": "queue"]),
        ]])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.startedRuns("queued") >= 3 })
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(pipeline.overlaps() == [])
        let beat = (try pipeline.status()["recurring"] as? [[String: Any]])?.first
        #expect(beat?["last_skip"] is NSNull, "\(String(describing: beat))")
        // Back to back: each run starts as the one before it ends.
        let marks = pipeline.marks
        for (end, start) in zip(marks.filter { !$0.start }, marks.filter(\.start).dropFirst()) {
            #expect(start.nanoseconds >= end.nanoseconds)
        }
    }

    @Test func aRestartAfterDowntimeRunsEachMissedJobOnce() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: [
            "recurring": [
                job(pipeline, "missed1", mode: "ok", interval: 60, offset: 600),
                job(pipeline, "missed2", mode: "ok", interval: [60, 90], offset: 600),
                job(pipeline, "fresh", mode: "ok", interval: 60, offset: 600),
            ],
            "scheduler": ["missed_jitter_seconds": 0.2],
        ])
        // The store remembers runs an hour ago: 60 slots missed while nothing ran.
        #expect(try pipeline.pipe(["status"]).0 == 0)  // migrates the store
        let database = pipeline.sandbox.path(".seqpipe/pipeline.db")
        let hourAgo = Date().timeIntervalSince1970 - 3600
        let python = try pipeline.sandbox.start("/usr/bin/env", ["python3", "-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            for name in ("missed1", "missed2"):
                db.execute("INSERT INTO heartbeats(name, last_start, last_success, runs) VALUES (?, ?, ?, 1)", (name, float(sys.argv[2]), float(sys.argv[2])))
            db.commit()
            """, database, String(hourAgo)])
        #expect(python.wait() == 0, "\(python.stderr)")
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.startedRuns("missed1") >= 1 && pipeline.startedRuns("missed2") >= 1 })
        // Each ran once, soon, not once per slot; the job never run before waits for its offset.
        let recurring = try pipeline.status()["recurring"] as? [[String: Any]] ?? []
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(pipeline.startedRuns("missed1") == 1 && pipeline.startedRuns("missed2") == 1 && pipeline.startedRuns("fresh") == 0)
        #expect(recurring.filter { $0["name"] as? String != "fresh" }.allSatisfy { $0["runs"] as? Int == 2 }, "\(recurring)")
    }

    @Test func aFailingCriticalJobRetriesWithBackoffAndCountsFailures() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: [
            "recurring": [
                job(pipeline, "critical", mode: "retryable", interval: 60, offset: 0, extra: ["critical": true]),
                job(pipeline, "plain", mode: "retryable", interval: 60, offset: 0),
            ],
            "scheduler": ["backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1],
        ])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) {
            let beats = (try? pipeline.status()["recurring"] as? [[String: Any]]) ?? []
            return beats.count == 2 && beats.allSatisfy { $0["consecutive_failures"] as? Int == 1 }
        })
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        // Critical: 3 attempts; the others: 1.
        #expect(pipeline.startedRuns("critical") == 3 && pipeline.startedRuns("plain") == 1)
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "100"])
        #expect(events.contains("recurring-failure") && events.contains("critical: attempt 3 of 3: exit 1"))
    }
}
