import Foundation
import Glibc
import SeqSystem
import Testing

/// seqpipe beside the seqexec under test.
let seqpipePath = toolsDirectory + "/seqpipe"

/// The simulated device and step scripts, in the repository.
let simDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/sim").path

/// One step of the step log sim-step writes: start or end of a run of a job.
struct StepMark {
    var start: Bool
    var job: String
    var account: String
    var nanoseconds: Int64
    var pid: Int32
}

/// A pipeline in a sandbox: its store under project/.seqpipe, a config whose one step is
/// sim-step logging to steps.log, and 3 devices.
final class PipelineSandbox {
    let sandbox: Sandbox
    var stepLog: String { sandbox.path("steps.log") }

    init(devices: Int = 3, step: [String: Any] = [:], extra: [String: Any] = [:]) throws {
        sandbox = try Sandbox()
        let (status, _, err) = try pipe(["init"])
        try #require(status == 0, "init: \(err)")
        try configure(step: step, extra: extra)
        for index in 0..<devices {
            let (status, _, err) = try pipe(["device", "add", "d\(index)", "--stop", "echo stopped >> \(sandbox.path("stops.log"))"])
            try #require(status == 0, "device add: \(err)")
        }
    }

    /// Writes pipeline.json: fast delays and retries so a test takes seconds, not hours.
    func configure(step: [String: Any] = [:], extra: [String: Any] = [:]) throws {
        var post: [String: Any] = [
            "name": "post",
            "run": [simDirectory + "/sim-step", "--log", stepLog, "--job", "{job_id}", "--account", "{account}",
                    "--attempt", "{attempt}", "--state", sandbox.project, "{mode}"],
            "timeout_seconds": 3, "attempts": 1,
        ]
        post.merge(step) { $1 }
        var config: [String: Any] = [
            "steps": [post],
            "delays": ["pre_base_seconds": 0, "post_base_seconds": 0, "cap_seconds": 0, "pre_fallback_seconds": 0, "post_fallback_seconds": 0],
            "retries": ["backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1, "step_backoff_base_seconds": 0.01,
                        "infrastructure_retry_seconds": 0.05, "requeue_spread_seconds": 0.05, "max_infrastructure_attempts": 4],
            "cooldown": ["base_seconds": 0.2, "cap_seconds": 0.5],
            "workers": ["idle_poll_seconds": 0.05, "stop_grace_seconds": 2, "kill_grace_seconds": 1, "restart_delay_seconds": 0.05],
            "health": ["timeout_seconds": 1, "retry_seconds": 0.05, "restart_wait_seconds": 0.3],
        ]
        config.merge(extra) { $1 }
        let data = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        try sandbox.write(".seqpipe/pipeline.json", String(decoding: data, as: UTF8.self))
    }

    /// Runs `seqpipe ARGS` to completion: (status, stdout, stderr).
    func pipe(_ arguments: [String], seconds: Double = 60) throws -> (Int32?, String, String) {
        let child = try sandbox.start(seqpipePath, arguments)
        let status = child.wait(seconds)
        return (status, child.stdout, child.stderr)
    }

    /// Starts `seqpipe ARGS` and leaves it running.
    func start(_ arguments: [String]) throws -> Child { try sandbox.start(seqpipePath, arguments) }

    /// Adds one job per mode, each on its own account unless given.
    func addJobs(_ modes: [(id: String, mode: String, account: String)]) throws {
        var csv = "job_id,account\n"
        for job in modes { csv += "\(job.id),\(job.account)\n" }
        for job in modes {
            let (status, _, err) = try pipe(["add-job", "--id", job.id, "--account", job.account, "--field", "mode=\(job.mode)"])
            try #require(status == 0, "add-job: \(err)")
        }
    }

    /// `status --json`, parsed.
    func status() throws -> [String: Any] {
        let (code, out, err) = try pipe(["status", "--json"])
        try #require(code == 0, "status: \(err)")
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
    }

    /// Each job's status and error type, from export-csv.
    func jobs() throws -> [String: (status: String, errorType: String, attempts: Int)] {
        let (code, out, err) = try pipe(["export-csv"])
        try #require(code == 0, "export-csv: \(err)")
        var result: [String: (String, String, Int)] = [:]
        for line in out.split(separator: "\r\n").dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            result[fields[0]] = (fields[4], fields[12], Int(fields[9]) ?? -1)
        }
        return result
    }

    var marks: [StepMark] {
        sandbox.read("steps.log").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 5, let ns = Int64(fields[3]), let pid = Int32(fields[4]) else { return nil }
            return StepMark(start: fields[0] == "start", job: String(fields[1]), account: String(fields[2]), nanoseconds: ns, pid: pid)
        }
    }

    /// Runs of one job or one account that overlapped in time, from the step log. A run
    /// whose end was never logged (its process was killed) lasts until its process is gone,
    /// which the tests wait for; such a run is treated as lasting until the next start of
    /// the same job, which is what the pipeline promises.
    func overlaps() -> [String] {
        var problems: [String] = []
        let sorted = marks.enumerated().sorted { ($0.element.nanoseconds, $0.element.start ? 1 : 0, $0.offset) < ($1.element.nanoseconds, $1.element.start ? 1 : 0, $1.offset) }
        var runningJobs: [String: Int32] = [:]
        var runningAccounts: [String: Int32] = [:]
        for (_, mark) in sorted {
            if mark.start {
                if let other = runningJobs[mark.job] { problems.append("job \(mark.job) started in pid \(mark.pid) while pid \(other) ran it") }
                if let other = runningAccounts[mark.account] { problems.append("account \(mark.account) started in pid \(mark.pid) while pid \(other) ran one of its jobs") }
                runningJobs[mark.job] = mark.pid
                runningAccounts[mark.account] = mark.pid
            } else {
                if runningJobs[mark.job] == mark.pid { runningJobs[mark.job] = nil }
                if runningAccounts[mark.account] == mark.pid { runningAccounts[mark.account] = nil }
            }
        }
        return problems
    }

    /// Marks a run whose process was killed as ended now, for `overlaps`.
    func endKilledRuns() {
        var open: [Int32: StepMark] = [:]
        for mark in marks { if mark.start { open[mark.pid] = mark } else { open[mark.pid] = nil } }
        for (pid, mark) in open where !sandbox.isAlive(pid) {
            let line = "end \(mark.job) \(mark.account) \(Clock.wallNanoseconds()) \(pid)\n"
            if let handle = FileHandle(forWritingAtPath: stepLog) {
                handle.seekToEndOfFile()
                handle.write(Data(line.utf8))
                handle.closeFile()
            }
        }
    }

    func startedRuns(_ job: String? = nil) -> Int { marks.filter { $0.start && (job == nil || $0.job == job) }.count }

    /// The pid of worker `index` from the store, while it runs.
    func workerPid(_ index: Int) throws -> Int32? {
        let workers = try status()["workers"] as? [[String: Any]] ?? []
        guard let worker = workers.first(where: { ($0["index"] as? Int) == index }), worker["alive"] as? Bool == true else { return nil }
        return (worker["pid"] as? Int).map(Int32.init)
    }
}

extension Clock {
    static func wallNanoseconds() -> Int64 {
        let time = wallTime()
        return time.seconds * 1_000_000_000 + Int64(time.nanoseconds)
    }
}

@Suite(.serialized) struct PipelineTests {
    @Test func everyJobEndsInTheRightStateWithThreeWorkers() throws {
        let pipeline = try PipelineSandbox()
        try pipeline.addJobs([
            ("ok1", "ok", "a1"), ("ok2", "ok", "a2"), ("ok3", "ok", "a1"), ("ok4", "ok", "a2"), ("ok5", "ok", "a3"),
            ("flaky", "flaky:1", "a4"), ("bad", "retryable", "a5"), ("susp", "suspended", "a6"), ("after-susp", "ok", "a6"),
            ("offline", "offline", "a7"), ("crash", "crash", "a8"), ("bigmem", "memory", "a9"),
        ])
        try pipeline.configure(step: ["memory_limit_mb": 100])
        let (status, _, err) = try pipeline.pipe(["run", "--workers", "3", "--once"], seconds: 120)
        #expect(status == 0, "run: \(err)")
        let jobs = try pipeline.jobs()
        for id in ["ok1", "ok2", "ok3", "ok4", "ok5", "flaky"] { #expect(jobs[id]?.status == "success", "\(id): \(String(describing: jobs[id]))") }
        #expect(jobs["bad"]?.status == "failed" && jobs["bad"]?.errorType == "retryable" && jobs["bad"]?.attempts == 3)
        #expect(jobs["susp"]?.status == "failed" && jobs["susp"]?.errorType == "suspended")
        // The rest of a suspended account waits: not failed one at a time, paused.
        #expect(jobs["after-susp"]?.status == "pending")
        #expect(jobs["offline"]?.status == "failed" && jobs["offline"]?.errorType == "infrastructure" && jobs["offline"]?.attempts == 0)
        #expect(jobs["crash"]?.status == "failed")
        #expect(jobs["bigmem"]?.status == "failed" && jobs["bigmem"]?.errorType == "poison")
        #expect(pipeline.startedRuns("offline") == 4)
        #expect(pipeline.startedRuns("bad") == 3)
        #expect(pipeline.startedRuns("after-susp") == 0)
        #expect(pipeline.overlaps() == [])

        let waiting = try pipeline.status()["waiting"] as? [[String: Any]] ?? []
        #expect((waiting.first { $0["job"] as? String == "after-susp" }?["reason"] as? String)?.contains("paused: suspended") == true)
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "500"])
        #expect(events.contains("account-cooldown"))
        #expect(events.contains("account-paused"))
        // Every worker ran its device's stop command on its way out.
        #expect(pipeline.sandbox.lines("stops.log").count == 3)

        // Resumed, the account's waiting job runs.
        #expect(try pipeline.pipe(["account", "resume", "a6"]).0 == 0)
        #expect(try pipeline.pipe(["run", "--workers", "2", "--once"], seconds: 60).0 == 0)
        #expect(try pipeline.jobs()["after-susp"]?.status == "success")
    }

    @Test func anUnhealthyDeviceIsRestartedAndItsJobsWait() throws {
        let pipeline = try PipelineSandbox(devices: 0)
        let sandbox = pipeline.sandbox
        // A simulated device server, down until the device's restart command brings it up.
        let portFile = sandbox.path("port")
        let server = try sandbox.start(simDirectory + "/sim-device", ["--port-file", portFile, "--down", "--latency-ms", "20"])
        #expect(waitUntil(20) { FileManager.default.fileExists(atPath: portFile) || !server.isRunning })
        let url = "http://127.0.0.1:" + sandbox.read("port").trimmingCharacters(in: .whitespacesAndNewlines)
        let restart = "echo restart {device} >> \(sandbox.path("restarts.log")); python3 -c \"import urllib.request; urllib.request.urlopen('\(url)/set?down=0')\""
        #expect(try pipeline.pipe(["device", "add", "d0", "--url", url + "/status", "--restart", restart]).0 == 0)
        try pipeline.addJobs((0..<3).map { ("j\($0)", "ok", "acct\($0)") })
        let (status, _, err) = try pipeline.pipe(["run", "--workers", "1", "--once"], seconds: 60)
        #expect(status == 0, "run: \(err)")
        #expect(try pipeline.jobs().values.allSatisfy { $0.status == "success" })
        #expect(sandbox.lines("restarts.log") == ["restart d0"])
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "200"])
        #expect(events.contains("device-restart"))
        // It answers now, and its response time was measured.
        let devices = try pipeline.status()["devices"] as? [[String: Any]] ?? []
        #expect(devices.count == 1 && devices[0]["healthy"] as? Bool == true && (devices[0]["response_ms"] as? Int ?? 0) >= 20)

        // A device whose restart fails is held, and its jobs stay queued meanwhile.
        #expect(try pipeline.pipe(["device", "remove", "d0"]).0 == 0)
        #expect(try pipeline.pipe(["device", "add", "d1", "--url", "http://127.0.0.1:9/status", "--restart", "exit 1"]).0 == 0)
        try pipeline.addJobs([("late", "ok", "acct-late")])
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(30) { (try? pipeline.pipe(["events", "--limit", "50"]).1.contains("device-unhealthy")) ?? false })
        #expect(try pipeline.jobs()["late"]?.status == "pending")
        let waiting = try pipeline.status()["waiting"] as? [[String: Any]] ?? []
        #expect((waiting.first?["reason"] as? String)?.contains("no device can take it now (d1 held until ") == true, "\(waiting)")
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
    }

    @Test func aKilledWorkerLosesNoJobAndIsReplaced() throws {
        let pipeline = try PipelineSandbox()
        try pipeline.addJobs((0..<9).map { ("j\($0)", "slow:0.3", "acct\($0 % 4)") } + [("hang", "hang", "acct-hang")])
        try pipeline.configure(step: ["timeout_seconds": 30])
        let run = try pipeline.start(["run", "--workers", "3"])
        // The moment: the hanging job's step has started.
        #expect(waitUntil(30) { pipeline.marks.contains { $0.start && $0.job == "hang" } })
        let stepPid = try #require(pipeline.marks.first { $0.start && $0.job == "hang" }?.pid)
        pipeline.sandbox.extraPids.append(stepPid)
        let worker = try #require(try (0..<3).first { index in
            let workers = try pipeline.status()["workers"] as? [[String: Any]] ?? []
            return workers.contains { ($0["index"] as? Int) == index && ($0["job"] as? String) == "hang" }
        })
        // status names the step the worker's job is in.
        let busy = (try pipeline.status()["workers"] as? [[String: Any]] ?? []).first { ($0["job"] as? String) == "hang" }
        #expect(busy?["step"] as? String == "post", "\(String(describing: busy))")
        let workerPid = try #require(try pipeline.workerPid(worker))
        kill(workerPid, SIGKILL)
        // The guard's orphan: the step it ran is ended, the job is back with the crash counted.
        #expect(waitUntil(20) { !pipeline.sandbox.isAlive(stepPid) })
        #expect(waitUntil(20) { (try? pipeline.workerPid(worker)).flatMap { $0 } != nil && (try? pipeline.workerPid(worker)) != workerPid })
        #expect(waitUntil(30) { (try? pipeline.jobs().filter { $0.key != "hang" }.allSatisfy { $0.value.status == "success" }) ?? false })
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "200"])
        #expect(events.contains("worker-died") && events.contains("worker-restart"))
        #expect(events.contains("job hang") && events.contains("crash 1 of 3"))
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        pipeline.endKilledRuns()
        #expect(pipeline.overlaps() == [])
        let hang = try #require(try pipeline.jobs()["hang"])
        #expect(hang.status == "pending" || hang.status == "retrying")
    }

    @Test func aJobThatKillsItsWorkerThreeTimesIsQuarantined() throws {
        let pipeline = try PipelineSandbox()
        try pipeline.addJobs([("poison", "kill-worker", "a1"), ("fine", "ok", "a2")])
        let (status, _, err) = try pipeline.pipe(["run", "--workers", "2", "--once"], seconds: 60)
        #expect(status == 0, "run: \(err)")
        let jobs = try pipeline.jobs()
        #expect(jobs["poison"]?.status == "failed" && jobs["poison"]?.errorType == "poison")
        #expect(jobs["fine"]?.status == "success")
        #expect(pipeline.startedRuns("poison") == 3)
    }

    @Test func randomKillsOfWorkersAndTheOrchestratorLoseNothingAndNeverOverlap() throws {
        let pipeline = try PipelineSandbox()
        try pipeline.configure(extra: ["retries": ["backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1, "requeue_spread_seconds": 0.05,
                                                   "poison_after": 100, "max_attempts": 100]])
        let total = 30
        try pipeline.addJobs((0..<total).map { ("j\($0)", "slow:0.\(1 + $0 % 3)", "acct\($0 % 5)") })
        var generator = SystemRandomNumberGenerator()
        for round in 0..<4 {
            let run = try pipeline.start(["run", "--workers", "3"])
            let done = pipeline.startedRuns()
            // A random moment: after 1–4 more step starts.
            let target = done + Int.random(in: 1...4, using: &generator)
            guard waitUntil(30, { pipeline.startedRuns() >= target || !run.isRunning }) else { Issue.record("no progress in round \(round)"); break }
            if round % 2 == 0, let pid = try? pipeline.workerPid(Int.random(in: 0..<3, using: &generator)) {
                kill(pid, SIGKILL)
                // Then stop the orchestrator with a SIGKILL too: its workers see their parent die.
                #expect(waitUntil(10) { (try? pipeline.pipe(["events", "--limit", "20"]).1.contains("worker-died")) ?? false })
            }
            let workers = ((try? pipeline.status()["workers"] as? [[String: Any]]) ?? []).compactMap { ($0["pid"] as? Int).map(Int32.init) }
            pipeline.sandbox.extraPids += workers
            run.signal(SIGKILL)
            _ = run.wait(10)
            #expect(waitUntil(20) { workers.allSatisfy { !pipeline.sandbox.isAlive($0) } }, "workers outlived their orchestrator")
            pipeline.endKilledRuns()
        }
        let (status, _, err) = try pipeline.pipe(["run", "--workers", "3", "--once"], seconds: 120)
        #expect(status == 0, "run: \(err)")
        let jobs = try pipeline.jobs()
        #expect(jobs.count == total)
        #expect(jobs.values.allSatisfy { $0.status == "success" }, "\(jobs.filter { $0.value.status != "success" })")
        #expect(pipeline.overlaps() == [])
    }

    @Test func theNextRunRequeuesWhatAKilledRunLeftClaimed() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.addJobs([("stuck", "hang-once", "a1"), ("next", "ok", "a1")])
        try pipeline.configure(step: ["timeout_seconds": 60])
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(30) { pipeline.startedRuns("stuck") == 1 })
        // The step is one process (hang-once execs its sleep): nobody is left to end it but this test.
        let step = try #require(pipeline.marks.first?.pid)
        pipeline.sandbox.extraPids.append(step)
        let worker = try #require(try pipeline.workerPid(0))
        pipeline.sandbox.extraPids.append(worker)
        // Orchestrator and worker both die at once: nobody is left to give the claim back.
        run.signal(SIGKILL)
        kill(worker, SIGKILL)
        #expect(run.wait(10) == 137)
        #expect(waitUntil(10) { !pipeline.sandbox.isAlive(worker) })
        kill(step, SIGKILL)
        #expect(try pipeline.jobs()["stuck"]?.status == "running")
        let (status, _, err) = try pipeline.pipe(["run", "--workers", "1", "--once"], seconds: 60)
        #expect(status == 0, "\(err)")
        #expect(err.contains("requeued 1 orphaned claim of an earlier run: stuck"), "\(err)")
        let jobs = try pipeline.jobs()
        #expect(jobs["stuck"]?.status == "success" && jobs["next"]?.status == "success")
        #expect(pipeline.startedRuns("stuck") == 2)
    }

    @Test func sigtermAndStopAllStopCleanlyAndGiveClaimsBack() throws {
        let pipeline = try PipelineSandbox()
        try pipeline.addJobs((0..<6).map { ("j\($0)", "slow:30", "acct\($0)") })
        try pipeline.configure(step: ["timeout_seconds": 60], extra: ["workers": ["stop_grace_seconds": 0.5, "kill_grace_seconds": 1, "idle_poll_seconds": 0.05]])
        var orchestratorOutput = ""
        for how in ["SIGTERM", "stop-all"] {
            let run = try pipeline.start(["run", "--workers", "3"])
            defer { orchestratorOutput += "\(how):\n\(run.stderr)\n" }
            #expect(waitUntil(30) { pipeline.marks.filter(\.start).count >= (how == "SIGTERM" ? 3 : 6) })
            let steps = pipeline.marks.filter(\.start).map(\.pid)
            pipeline.sandbox.extraPids += steps
            // A second orchestrator on the same store is refused, naming the holder.
            let (second, _, secondErr) = try pipeline.pipe(["run", "--workers", "1"])
            #expect(second == 75)
            #expect(secondErr.contains("another orchestrator (pid \(run.pid)"), "\(secondErr)")
            if how == "SIGTERM" {
                run.signal(SIGTERM)
            } else {
                let (status, _, err) = try pipeline.pipe(["stop-all"])
                #expect(status == 0, "stop-all: \(err)")
            }
            #expect(run.wait(30) == 0, "\(how): \(run.stderr)")
            #expect(steps.allSatisfy { !pipeline.sandbox.isAlive($0) })
            let jobs = try pipeline.jobs()
            #expect(jobs.values.allSatisfy { $0.status == "pending" && $0.attempts == 0 }, "\(how): \(jobs)")
            #expect(try pipeline.status()["orchestrator"] is NSNull)
        }
        #expect(pipeline.sandbox.lines("stops.log").count == 6, "\(orchestratorOutput)")
    }

    @Test func aStepsCheckPreventsADoublePostAfterACrashBetweenActingAndRecording() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let posts = pipeline.sandbox.path("posts.log")
        // The step posts, then its worker dies before the store hears of it.
        try pipeline.configure(step: [
            "run": ["/bin/sh", "-c", "echo {job_id} >> \(posts); kill -KILL $PPID"],
            "check": ["/bin/sh", "-c", "grep -qx {job_id} \(posts)"],
        ])
        try pipeline.addJobs([("p1", "-", "a1"), ("p2", "-", "a2")])
        let (status, _, err) = try pipeline.pipe(["run", "--workers", "1", "--once"], seconds: 60)
        #expect(status == 0, "\(err)")
        #expect(pipeline.sandbox.lines("posts.log").sorted() == ["p1", "p2"])
        let jobs = try pipeline.jobs()
        #expect(jobs["p1"]?.status == "success" && jobs["p2"]?.status == "success")
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "100"])
        #expect(events.components(separatedBy: "worker-died").count == 3)
    }

    @Test func statusCallsASilentOrchestratorHung() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: ["orchestrator": ["heartbeat_seconds": 1000, "hung_after_seconds": 0.3]])
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(20) { run.stderr.contains("running 1 worker") })
        let fresh = try pipeline.status()["orchestrator"] as? [String: Any]
        #expect(fresh?["pid"] as? Int == Int(run.pid))
        #expect(waitUntil(20) { ((try? pipeline.status()["orchestrator"] as? [String: Any])?["hung"] as? Bool) == true })
        let (_, text, _) = try pipeline.pipe(["status"])
        #expect(text.contains("orchestrator: pid \(run.pid)") && text.contains("HUNG: no heartbeat for"), "\(text)")
        run.signal(SIGINT)
        #expect(run.wait(30) == 0, "\(run.stderr)")
    }

    @Test func statusExplainsEveryWaitingJob() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        #expect(try pipeline.pipe(["account", "add", "limited", "--daily-limit", "1"]).0 == 0)
        try pipeline.addJobs([("first", "ok", "limited"), ("second", "ok", "limited"), ("other", "ok", "free")])
        #expect(try pipeline.pipe(["run", "--workers", "1", "--once"]).0 == 0)
        let status = try pipeline.status()
        let counts = status["counts"] as? [String: Int] ?? [:]
        #expect(counts["success"] == 2 && counts["pending"] == 1)
        let waiting = status["waiting"] as? [[String: Any]] ?? []
        #expect(waiting.count == 1 && (waiting[0]["reason"] as? String)?.contains("daily limit (1)") == true)
        let (code, text, _) = try pipeline.pipe(["status"])
        #expect(code == 0 && text.contains("orchestrator: none running") && text.contains("  limited  1/1 "), "\(text)")
        let (_, config, _) = try pipeline.pipe(["show-config"])
        #expect(config.contains("0       d0      4723         8200-8209"))
    }

    /// Per job, as the original pipeline did: the reset before each job (reset_when: job), the
    /// post-step delay after the last step too, and an account's rest between two of its jobs,
    /// which the claim honours and `status` explains.
    @Test func resetBeforeEachJobTheLastDelayAndAnAccountsRest() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let resets = pipeline.sandbox.path("resets.log")
        var delays: [String: Any] = ["pre_base_seconds": 0, "post_base_seconds": 0.6, "cap_seconds": 0,
                                     "pre_fallback_seconds": 0, "post_fallback_seconds": 0.6]
        try pipeline.configure(extra: ["reset": ["sh", "-c", "echo {job_id} $(date +%s%N) >> \(resets)"], "reset_when": "job", "delays": delays])
        try pipeline.addJobs([("x1", "ok", "X"), ("y1", "ok", "Y")])
        let (first, _, firstErr) = try pipeline.pipe(["run", "--once"])
        #expect(first == 0, "\(firstErr)")
        func mark(_ job: String, start: Bool) -> Int64 { pipeline.marks.first { $0.job == job && $0.start == start }?.nanoseconds ?? 0 }
        // One worker: y1 starts only after x1's post-step delay, though x1 had one step.
        #expect(mark("y1", start: true) - mark("x1", start: false) >= 600_000_000, "\(pipeline.marks)")
        let resetLines = pipeline.sandbox.lines("resets.log").map { $0.split(separator: " ") }
        #expect(resetLines.map { String($0[0]) } == ["x1", "y1"], "one reset before each job: \(resetLines)")
        for line in resetLines { #expect(Int64(line[1]) ?? .max < mark(String(line[0]), start: true), "the reset runs before its job") }

        delays["post_base_seconds"] = 0
        delays["post_fallback_seconds"] = 0
        try pipeline.configure(extra: ["account_rest_seconds": 1.5, "delays": delays])
        try pipeline.addJobs([("a1", "ok", "A"), ("a2", "ok", "A")])
        let run = try pipeline.start(["run", "--once"])
        // Between a1 and a2, the account rests, and status says why a2 waits.
        #expect(waitUntil(20) { pipeline.marks.contains { $0.job == "a1" && !$0.start } })
        #expect(waitUntil(10) { ((try? pipeline.status()).map { "\($0)" } ?? "").contains("resting after its last job until") })
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(mark("a2", start: true) - mark("a1", start: false) >= 1_500_000_000, "\(pipeline.marks)")
    }

    /// `seed` (and `run --seed-only`) fills the store from a folder and a CSV, writes the
    /// progress CSV, and runs nothing; seeding again adds nothing twice.
    @Test func seedFillsTheStoreAndRunsNothing() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(step: ["run": [simDirectory + "/sim-step", "--log", pipeline.stepLog, "--job", "{job_id}", "ok"]])
        let media = pipeline.sandbox.path("media")
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        for name in ["one.mp4", "two.mp4"] { _ = try pipeline.sandbox.write("media/\(name)", "video") }
        let csv = try pipeline.sandbox.write("more.csv", "job_id,account\nc1,acct9\n")
        let progress = pipeline.sandbox.path("progress.csv")
        let (status, out, err) = try pipeline.pipe(["seed", "--folder", media, "--accounts", "acct1", "acct2", "--csv", csv, "--export", progress])
        #expect(status == 0 && out.contains("3 jobs added, 0 already there") && out.contains("nothing was run"), "\(out)\(err)")
        #expect(pipeline.sandbox.read("progress.csv").split(separator: "\r\n").count == 4, "a header and three jobs")
        #expect(try pipeline.jobs().values.allSatisfy { $0.status == "pending" })
        #expect(pipeline.marks.isEmpty, "no step ran")
        let (again, againOut, _) = try pipeline.pipe(["run", "--seed-only", "--folder", media, "--accounts", "acct1", "--csv", csv])
        #expect(again == 0 && againOut.contains("0 jobs added, 3 already there"), "\(againOut)")
        #expect(try pipeline.jobs().count == 3)
        let (bad, _, badErr) = try pipeline.pipe(["seed", "--folder", media])
        #expect(bad == 2 && badErr.contains("--folder needs --accounts"), "\(badErr)")
    }

    /// The device must still answer after each step: a phone that froze during a post puts
    /// the job back as an infrastructure failure, after the step it finished.
    @Test func aDeviceThatStopsAnsweringAfterAStepChargesInfrastructure() throws {
        let pipeline = try PipelineSandbox(devices: 0)
        let down = pipeline.sandbox.path("down")
        let (added, _, addErr) = try pipeline.pipe(["device", "add", "dh", "--health", "test ! -e \(down)"])
        try #require(added == 0, "\(addErr)")
        try pipeline.configure(step: ["run": ["sh", "-c", "touch \(down)"]])
        try pipeline.addJobs([("j1", "ok", "A")])
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(20) { (try? pipeline.jobs()["j1"]?.errorType) == "infrastructure" })
        let job = try pipeline.jobs()["j1"]
        #expect(job?.status == "retrying" || job?.status == "pending", "\(String(describing: job))")
        let (_, events, _) = try pipeline.pipe(["events", "--json"])
        #expect(events.contains("step post: the device did not answer after it: health command"), "\(events)")
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
    }

    @Test func badInputGetsOneLineNamingTheFix() throws {
        let pipeline = try PipelineSandbox(devices: 0)
        let missing = pipeline.sandbox.path("missing.json")
        let cases: [([String], Int32, String)] = [
            (["frob"], 2, "seqpipe: unknown command 'frob'; see 'seqpipe --help'\n"),
            (["--config", missing, "status"], 125, "seqpipe: no config at \(missing); create it (seqpipe init writes one with every default) or drop --config\n"),
            (["run", "--once"], 125, "seqpipe: \(pipeline.sandbox.path(".seqpipe/pipeline.db")) has no device; add one with 'seqpipe device add NAME --url URL'\n"),
            (["retry", "nope"], 1, "seqpipe: no job 'nope'; see 'seqpipe jobs'\n"),
            (["device", "add", "d9", "--url", "ftp://x"], 2, "seqpipe: device add: --url 'ftp://x' must look like http://HOST:PORT/PATH; see 'seqpipe --help'\n"),
        ]
        for (arguments, expected, message) in cases {
            let (status, _, err) = try pipeline.pipe(arguments)
            #expect(status == expected && err == message, "\(arguments): \(String(describing: status)) \(err)")
        }
        try pipeline.sandbox.write(".seqpipe/pipeline.json", #"{"steps": [{"run": ["x"], "attempts": 0}]}"#)
        let (status, _, err) = try pipeline.pipe(["show-config"])
        #expect(status == 125 && err.hasPrefix("seqpipe: \(pipeline.sandbox.path(".seqpipe/pipeline.json")): steps[0].attempts: expected"), "\(err)")
    }

    @Test func jobsAreCheckedWhenAddedAndTheCSVKeepsEveryField() throws {
        let pipeline = try PipelineSandbox(devices: 0)
        // A field the step needs ({mode}) is refused when the job is added, not found at run time.
        let (refused, _, why) = try pipeline.pipe(["add-job", "--id", "j1", "--account", "a"])
        #expect(refused == 1 && why.contains("job j1: step post: placeholder {mode} has no value") && why.contains("--field"), "\(why)")
        // One priority vocabulary: P0–P3, high/normal/low, or a number.
        for word in ["high", "P1", "normal", "low", "7"] {
            #expect(try pipeline.pipe(["add-job", "--id", "p-\(word)", "--account", "acct-\(word)", "--field", "mode=ok", "--priority", word]).0 == 0)
        }
        let (badPriority, _, badWhy) = try pipeline.pipe(["add-job", "--account", "a", "--field", "mode=ok", "--priority", "urgent"])
        #expect(badPriority == 2 && badWhy.contains("P0 (first) to P3, high, normal, low"), "\(badWhy)")
        // export-csv keeps the priority and every field; import-csv gives them back.
        let exported = pipeline.sandbox.path("all.csv")
        #expect(try pipeline.pipe(["export-csv", exported]).0 == 0)
        let text = pipeline.sandbox.read("all.csv")
        #expect(text.hasPrefix("job_id,account,video_path,caption,status,worker_id,claimed_at,completed_at,error,attempts,max_attempts,retry_at,error_type,priority,mode\r\n"), "\(text)")
        #expect(text.contains("p-high,acct-high,,,pending,,,,,0,3,,,P0,ok") && text.contains("p-7,acct-7,,,pending,,,,,0,3,,,P0+5,ok"), "\(text)")
        let copy = pipeline.sandbox.path("copy/pipeline.db")
        #expect(try pipeline.pipe(["--db", copy, "init"]).0 == 0)
        let same = pipeline.sandbox.path(".seqpipe/pipeline.json")
        #expect(try pipeline.pipe(["--db", copy, "--config", same, "import-csv", exported]).0 == 0)
        #expect(try pipeline.pipe(["--db", copy, "export-csv"]).1 == text)
        // A duplicate id, in the store or in the file, is FILE:LINE: reason, exit 1.
        let (duplicate, _, duplicateWhy) = try pipeline.pipe(["--db", copy, "--config", same, "import-csv", exported])
        #expect(duplicate == 1 && duplicateWhy.hasPrefix("seqpipe: \(exported):2: job 'p-7' is already in the store; give it another id, or drop the row\n")
                && duplicateWhy.hasSuffix("seqpipe: \(exported): 5 bad rows; nothing imported\n"), "\(duplicateWhy)")
        let twice = try pipeline.sandbox.write("twice.csv", "job_id,account,mode\nq1,a,ok\nq1,b,ok\n")
        let (again, _, againWhy) = try pipeline.pipe(["import-csv", twice])
        #expect(again == 1 && againWhy.contains("\(twice):3: job 'q1' is on line 2 too"), "\(againWhy)")
        let lacking = try pipeline.sandbox.write("lacking.csv", "job_id,account\nr1,a\n")
        let (lack, _, lackWhy) = try pipeline.pipe(["import-csv", lacking])
        #expect(lack == 1 && lackWhy.contains("\(lacking):2: job r1: step post: placeholder {mode}"), "\(lackWhy)")
        // show-config lists no worker for a device that does not exist.
        let (_, config, _) = try pipeline.pipe(["show-config"])
        #expect(config.contains("workers: none") && !config.contains("worker_0.log"), "\(config)")
    }

    @Test func csvRoundTripsThroughTheCommands() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(step: ["run": [simDirectory + "/sim-step", "--job", "{job_id}", "ok"]])
        let media = pipeline.sandbox.path("media")
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        for name in ["a.mp4", "b.mp4", "c.mov", "notes.md"] { try pipeline.sandbox.write("media/\(name)", "x") }
        try pipeline.sandbox.write("media/a.txt", "first, with \"quotes\"\nand a second line")
        let (added, out, err) = try pipeline.pipe(["add-folder", media, "--accounts", "x", "y"])
        #expect(added == 0, "\(err)")
        #expect(out == "added 3 jobs over 2 accounts\n")
        let exportPath = pipeline.sandbox.path("progress.csv")
        #expect(try pipeline.pipe(["export-csv", exportPath]).0 == 0)
        let exported = pipeline.sandbox.read("progress.csv")
        #expect(exported.contains("\"first, with \"\"quotes\"\"\nand a second line\""))
        let copy = pipeline.sandbox.path("copy/pipeline.db")
        let (missing, _, missingErr) = try pipeline.pipe(["--db", copy, "import-csv", exportPath])
        #expect(missing == 125 && missingErr == "seqpipe: no store at \(copy); create it with 'seqpipe init' (or pass --db PATH)\n")
        #expect(try pipeline.pipe(["--db", copy, "init"]).0 == 0)
        let (imported, _, importErr) = try pipeline.pipe(["--db", copy, "import-csv", exportPath])
        #expect(imported == 0, "\(importErr)")
        let (_, again, _) = try pipeline.pipe(["--db", copy, "export-csv"])
        #expect(again == exported)
        let (bad, _, badErr) = try pipeline.pipe(["import-csv", pipeline.sandbox.write("bad.csv", "job_id,account\nz,\n")])
        #expect(bad == 1 && badErr == "seqpipe: \(pipeline.sandbox.path("bad.csv")):2: account is empty for job z\nseqpipe: \(pipeline.sandbox.path("bad.csv")): 1 bad row; nothing imported\n", "\(badErr)")
    }
}
