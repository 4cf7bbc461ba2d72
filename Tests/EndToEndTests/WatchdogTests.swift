import Foundation
import Glibc
import SeqSystem
import Testing

/// The scheduler's watchdog and health check, memory pressure, shared pools, dependencies,
/// and graded device recovery: real `seqpipe run` processes on a real store, with minutes
/// scaled down to tenths of a second through the config.
@Suite(.serialized) struct WatchdogTests {
    /// The recurring jobs' heartbeats from `status --json`, by name.
    func heartbeats(_ pipeline: PipelineSandbox) -> [String: [String: Any]] {
        let list = (try? pipeline.status()["recurring"] as? [[String: Any]]) ?? []
        return Dictionary(list.compactMap { beat in (beat["name"] as? String).map { ($0, beat) } }, uniquingKeysWith: { $1 })
    }

    func eventList(_ pipeline: PipelineSandbox) throws -> [[String: Any]] {
        let (code, out, err) = try pipeline.pipe(["events", "--since", "1d", "--json"])
        try #require(code == 0, "events: \(err)")
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
    }

    func eventKinds(_ pipeline: PipelineSandbox) -> [String] {
        ((try? eventList(pipeline)) ?? []).compactMap { $0["kind"] as? String }
    }

    func stop(_ run: Child) {
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
    }

    @Test func aHungRunIsEndedAndRunAgainWhileASlowRunThatReportsProgressIsLeftAlone() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: [
            "recurring": [
                // Its first run hangs (one process, sleeping, silent); the next one succeeds.
                recurringJob(pipeline, "hanger", mode: "hang-once", interval: 600, offset: 0, extra: ["hung_after_seconds": 0.6]),
                // Hangs every time: run again once, then left for its next due run.
                recurringJob(pipeline, "always", mode: "hang", interval: 600, offset: 0, extra: ["hung_after_seconds": 0.6]),
                // Runs 1.6 s, longer than its hung threshold, but reports progress all along.
                recurringJob(pipeline, "slow", mode: "progress:8:0.2", interval: 600, offset: 0, extra: ["hung_after_seconds": 1]),
            ],
            "watchdog": ["interval_seconds": 0.1],
            "orchestrator": ["heartbeat_seconds": 0.1],
        ])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.startedRuns("hanger") >= 1 })
        let hungPid = try #require(pipeline.marks.first { $0.start && $0.job == "hanger" }?.pid)
        pipeline.sandbox.extraPids.append(hungPid)
        var sawProgress = false
        #expect(waitUntil(30) {
            let beats = heartbeats(pipeline)
            if (beats["slow"]?["progress"] as? String)?.hasPrefix("step ") == true && beats["slow"]?["state"] as? String == "running" { sawProgress = true }
            return beats["hanger"]?["last_success"] is String && beats["slow"]?["last_success"] is String
                && beats["always"]?["consecutive_failures"] as? Int == 2 && beats["always"]?["state"] as? String == "idle"
        })
        let beats = heartbeats(pipeline)
        // Its alert clears on the watchdog's next pass after the success.
        #expect(waitUntil(30) {
            let alerts = (try? pipeline.status()["alerts"] as? [[String: Any]]) ?? []
            return !alerts.contains { $0["key"] as? String == "hung:hanger" }
        })
        stop(run)
        // The hung run's process is gone; it was recorded as hung and the job ran again.
        #expect(!pipeline.sandbox.isAlive(hungPid))
        #expect(beats["hanger"]?["runs"] as? Int == 2 && (beats["hanger"]?["last_error"] as? String)?.hasPrefix("hung: no sign of life") == true,
                "\(String(describing: beats["hanger"]))")
        // The slow one was not taken for dead: one run, its progress seen while it ran.
        #expect(beats["slow"]?["runs"] as? Int == 1 && beats["slow"]?["last_failure"] is NSNull, "\(String(describing: beats["slow"]))")
        #expect(sawProgress)
        let events = try eventList(pipeline)
        let hung = events.filter { $0["kind"] as? String == "watchdog-hung" && ($0["message"] as? String)?.hasPrefix("always:") == false }
        #expect(hung.count == 1 && (hung.first?["message"] as? String)?.hasPrefix("hanger: run pid") == true, "\(hung)")
        #expect(events.contains { $0["kind"] as? String == "watchdog-recovery" })
        #expect(pipeline.startedRuns("always") == 2)
        #expect(events.contains { ($0["message"] as? String)?.hasPrefix("always: its hung run is ended") == true
            && ($0["message"] as? String)?.hasSuffix("it hung again right after a recovery run, so it waits for its next due run") == true })
        #expect(events.contains { $0["kind"] as? String == "watchdog-cleared" && ($0["message"] as? String)?.hasPrefix("hanger:") == true })
    }

    /// Alerts go out: each raise and clear to the JSON-lines file and to the notify command.
    /// A notifier that fails is reported, retried with backoff, given up after its attempts,
    /// and the pipeline goes on: here it refuses every raise and takes every clear.
    @Test func alertsGoOutAndAFailingNotifierNeverStopsThePipeline() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let notes = pipeline.sandbox.path("notes.log")
        try pipeline.configure(extra: [
            "recurring": [recurringJob(pipeline, "hanger", mode: "hang-once", interval: 600, offset: 0, extra: ["hung_after_seconds": 0.6])],
            "watchdog": ["interval_seconds": 0.1],
            "orchestrator": ["heartbeat_seconds": 0.1],
            "alerts": ["notify": ["sh", "-c", "test {state} = cleared && echo {state} {key} >> \(notes)"], "file": "alerts.jsonl",
                       "attempts": 2, "backoff_base_seconds": 0.1],
        ])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.sandbox.read("notes.log").contains("cleared hung:hanger") }, "\(eventKinds(pipeline))")
        #expect(waitUntil(10) { eventKinds(pipeline).contains("notify-gave-up") })
        stop(run)
        #expect(pipeline.sandbox.lines("notes.log") == ["cleared hung:hanger"])
        let kinds = eventKinds(pipeline)
        #expect(kinds.filter { $0 == "notify-failed" }.count == 1 && kinds.filter { $0 == "notify-gave-up" }.count == 1, "\(kinds)")
        let lines = pipeline.sandbox.lines(".seqpipe/alerts.jsonl")
        #expect(lines.contains { $0.contains("\"key\":\"hung:hanger\"") && $0.contains("\"state\":\"raised\"") }, "\(lines)")
        #expect(lines.contains { $0.contains("\"key\":\"hung:hanger\"") && $0.contains("\"state\":\"cleared\"") }, "\(lines)")
        #expect(heartbeats(pipeline)["hanger"]?["last_success"] is String, "the pipeline went on")
    }

    @Test func aJobThatStopsSucceedingGetsEmergencyRuns() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: [
            "recurring": [
                // Succeeds once, then fails: after its stuck threshold the watchdog runs it,
                // long before its 10-minute interval would.
                recurringJob(pipeline, "posting", mode: "fail-after:1", interval: 600, offset: 0, extra: ["stuck_after_seconds": 0.8]),
                recurringJob(pipeline, "healthy", mode: "ok", interval: 0.3, offset: 0, extra: ["stuck_after_seconds": 0.8]),
            ],
            "watchdog": ["interval_seconds": 0.1],
        ])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.startedRuns("posting") >= 3 })
        let status = try pipeline.status()
        stop(run)
        let stuck = (try eventList(pipeline)).filter { $0["kind"] as? String == "watchdog-stuck" }
        #expect(stuck.count >= 2 && stuck.allSatisfy { ($0["message"] as? String)?.hasPrefix("posting: stuck: no success for") == true }, "\(stuck)")
        let alerts = status["alerts"] as? [[String: Any]] ?? []
        #expect(alerts.map { $0["key"] as? String } == ["stuck:posting"], "\(alerts)")
        let watchdog = (status["checks"] as? [[String: Any]])?.first { $0["name"] as? String == "watchdog" }
        #expect(watchdog?["ok"] as? Bool == false && watchdog?["message"] as? String == "posting stuck", "\(String(describing: watchdog))")
    }

    @Test func criticalMemorySkipsNonCriticalRunsAndWarnsForCriticalOnes() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: [
            "recurring": [
                recurringJob(pipeline, "vital", mode: "ok", interval: 600, offset: 0, extra: ["critical": true]),
                recurringJob(pipeline, "optional", mode: "ok", interval: 600, offset: 0),
                // Critical, but its prerequisite is not: skipped with it, not left waiting.
                recurringJob(pipeline, "report", mode: "ok", interval: 600, offset: 0,
                             extra: ["critical": true, "after": [["job": "gather", "max_age_seconds": 60]]]),
                recurringJob(pipeline, "gather", mode: "ok", interval: 600, offset: 300),
            ],
            // A threshold above any machine's memory: MemAvailable is always "critical".
            "scheduler": ["memory_critical_mb": 2_000_000_000],
        ])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) {
            let beats = heartbeats(pipeline)
            return beats["vital"]?["last_success"] is String && beats["optional"]?["last_skip"] is String && beats["report"]?["last_skip"] is String
        })
        let beats = heartbeats(pipeline)
        stop(run)
        #expect(pipeline.startedRuns("optional") == 0 && pipeline.startedRuns("vital") == 1 && pipeline.startedRuns("gather") == 0)
        #expect(beats["report"]?["skip_reason"] as? String == "its prerequisite gather did not run", "\(String(describing: beats["report"]))")
        #expect((beats["optional"]?["skip_reason"] as? String)?.hasPrefix("memory critical: MemAvailable") == true, "\(String(describing: beats["optional"]))")
        #expect(eventKinds(pipeline).contains("memory-warning"))
    }

    /// Under critical memory the scheduler raises an alert and runs the emergency clean-up
    /// once for the episode, before it skips non-critical runs: not again at every skip.
    @Test func theEmergencyCommandRunsOncePerPressureEpisode() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let log = pipeline.sandbox.path("emergency.log")
        try pipeline.configure(extra: [
            "recurring": [recurringJob(pipeline, "optional", mode: "ok", interval: 0.2, offset: 0)],
            "scheduler": ["memory_critical_mb": 2_000_000_000, "emergency": ["sh", "-c", "echo cleaned >> \(log)"]],
        ])
        let run = try pipeline.start(["run"])
        // Several due runs, each skipped: the clean-up ran before the first skip, and only then.
        #expect(waitUntil(30) { eventKinds(pipeline).filter { $0 == "recurring-skip" }.count >= 3 }, "\(eventKinds(pipeline))")
        let alerts = (try pipeline.status()["alerts"] as? [[String: Any]]) ?? []
        stop(run)
        #expect(pipeline.sandbox.lines("emergency.log") == ["cleaned"])
        #expect(eventKinds(pipeline).filter { $0 == "memory-emergency" }.count == 1)
        #expect(alerts.contains { $0["key"] as? String == "memory:critical" }, "\(alerts)")
        #expect(pipeline.startedRuns("optional") == 0)
    }

    @Test func aStalePrerequisiteRunsFirstAndAFailedOneSkipsTheDependent() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: ["recurring": [
            // Neither prerequisite runs on its own during the test (offset 5 minutes).
            recurringJob(pipeline, "harvester", mode: "slow:0.3", interval: 600, offset: 300),
            recurringJob(pipeline, "reply", mode: "ok", interval: 0.5, offset: 0,
                         extra: ["after": [["job": "harvester", "max_age_seconds": 60]]]),
            recurringJob(pipeline, "broken", mode: "retryable", interval: 600, offset: 300),
            recurringJob(pipeline, "report", mode: "ok", interval: 600, offset: 0,
                         extra: ["after": [["job": "broken", "max_age_seconds": 60]]]),
        ]])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.startedRuns("reply") >= 3 && heartbeats(pipeline)["report"]?["last_skip"] is String })
        let beats = heartbeats(pipeline)
        stop(run)
        let marks = pipeline.marks
        // The harvester ran once, first, and the reply waited for it to end; later replies
        // found it fresh and did not run it again.
        #expect(pipeline.startedRuns("harvester") == 1)
        let harvested = try #require(marks.first { !$0.start && $0.job == "harvester" })
        let firstReply = try #require(marks.first { $0.start && $0.job == "reply" })
        #expect(harvested.nanoseconds <= firstReply.nanoseconds)
        #expect(pipeline.startedRuns("report") == 0 && pipeline.startedRuns("broken") == 1)
        #expect(beats["report"]?["skip_reason"] as? String == "its prerequisite broken did not succeed", "\(String(describing: beats["report"]))")
        #expect(eventKinds(pipeline).filter { $0 == "dependency-run" }.count == 2)
    }

    @Test func aPoolCapsConcurrentRunsAndHandsSlotsOutByPriority() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        // One browser: its five users run one at a time, the most important first.
        let priorities = ["p3a": "P3", "p0": "P0", "p2": "P2", "p1": "P1", "p3b": "P3"]
        var jobs = priorities.sorted { $0.key < $1.key }.map { name, priority in
            recurringJob(pipeline, name, mode: "slow:0.2", interval: 600, offset: 0, extra: ["needs": ["browser"], "priority": priority])
        }
        // Two CPU slots: four users, never more than two at once.
        jobs += (0..<4).map { recurringJob(pipeline, "cpu\($0)", mode: "slow:0.3", interval: 600, offset: 0, extra: ["needs": ["cpu"]]) }
        try pipeline.configure(extra: ["pools": ["browser": 1, "cpu": 2], "recurring": jobs])
        let run = try pipeline.start(["run"])
        var sawWaiting = false
        #expect(waitUntil(30) {
            let beats = heartbeats(pipeline)
            if beats.values.contains(where: { ($0["waiting"] as? String)?.hasPrefix("waiting for pool cpu (2 of 2 in use)") == true }) { sawWaiting = true }
            return pipeline.marks.filter { !$0.start }.count == 9
        })
        stop(run)
        #expect(sawWaiting)
        func most(_ group: (String) -> Bool) -> Int {
            var running = 0
            var most = 0
            for mark in pipeline.marks.filter({ group($0.job) }).sorted(by: { ($0.nanoseconds, $0.start ? 1 : 0) < ($1.nanoseconds, $1.start ? 1 : 0) }) {
                running += mark.start ? 1 : -1
                most = max(most, running)
            }
            return most
        }
        #expect(most { priorities[$0] != nil } == 1 && most { $0.hasPrefix("cpu") } == 2)
        let order = pipeline.marks.filter { $0.start && priorities[$0.job] != nil }.sorted { $0.nanoseconds < $1.nanoseconds }.map { priorities[$0.job] ?? "?" }
        #expect(order == ["P0", "P1", "P2", "P3", "P3"], "\(order)")
    }

    @Test func aFailedHealthCheckRunsTheProducerAndShowsInStatus() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let database = pipeline.sandbox.path(".seqpipe/pipeline.db")
        try pipeline.configure(extra: [
            "recurring": [[
                "name": "plan", "interval_seconds": 600, "offset_seconds": 600,
                "run": [seqpipePath, "--db", database, "add-job", "--account", "made", "--field", "mode=ok"],
            ]],
            "watchdog": ["health_offset_seconds": 0.2, "health_interval_seconds": 0.4, "content_max_age_seconds": 600,
                         "claim_max_seconds": 0.3, "producer": "plan"],
        ])
        // The one device is busy with a job that hangs (until its 3 s step timeout): the queue
        // is empty, and that job is claimed too long.
        try pipeline.addJobs([("stuck", "hang", "a")])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) {
            let status = try? pipeline.status()
            let alerts = (status?["alerts"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }
            return alerts.contains("health:claims") && (heartbeats(pipeline)["plan"]?["last_success"] is String)
        })
        let (_, text, _) = try pipeline.pipe(["status"])
        stop(run)
        let kinds = eventKinds(pipeline)
        #expect(kinds.contains("health-check-failed") && kinds.contains("health-recovery"))
        #expect(try pipeline.jobs().keys.count >= 2)
        #expect(text.contains("health check: FAILED") && text.contains("HEALTH  since") && text.contains("claimed or running for over 0.3s: stuck"), "\(text)")
    }

    @Test func deviceTroubleRestartsTheServerThenTheDeviceThenHandsTheJobOver() throws {
        let pipeline = try PipelineSandbox(devices: 0)
        try pipeline.configure(step: [
            "run": [simDirectory + "/sim-step", "--log", pipeline.stepLog, "--job", "{job_id}", "--account", "{account}",
                    "--device", "{device}", "{mode}"],
            "attempts": 3,
        ])
        let recovery = pipeline.sandbox.path("recovery.log")
        for name in ["d0", "d1"] {
            let (status, _, err) = try pipeline.pipe(["device", "add", name, "--server-restart", "echo server {device} >> \(recovery)",
                                                      "--restart", "echo device {device} >> \(recovery)"])
            try #require(status == 0, "device add: \(err)")
        }
        // Every job fails with device trouble on d0 and works on d1.
        try pipeline.addJobs((0..<4).map { ("j\($0)", "offline-on:d0", "a\($0)") })
        let run = try pipeline.start(["run", "--once"])
        #expect(run.wait(60) == 0, "\(run.stderr)")
        let jobs = try pipeline.jobs()
        #expect(jobs.count == 4 && jobs.values.allSatisfy { $0.status == "success" }, "\(jobs)")
        let events = try eventList(pipeline)
        #expect(events.filter { $0["kind"] as? String == "job-success" }.allSatisfy { $0["device"] as? String == "d1" })
        // Each job d0 took: its server restarted, then the device, then the job went to d1.
        let handoffs = events.filter { $0["kind"] as? String == "job-handoff" }
        #expect(!handoffs.isEmpty && handoffs.allSatisfy { $0["device"] as? String == "d0" }, "\(handoffs)")
        let lines = pipeline.sandbox.read("recovery.log").split(separator: "\n").map(String.init)
        #expect(lines == Array(repeating: ["server d0", "device d0"], count: handoffs.count).flatMap { $0 }, "\(lines)")
    }
}
