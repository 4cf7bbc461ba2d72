import Foundation
import Glibc
import SeqSystem
import Testing

/// A pipeline whose one step is scripts/sim/chaos-step: a post that holds a flock on its job
/// and on its device and logs start, posted and end to posts.log (a second post that finds a
/// flock taken logs an overlap), with a `check` that asks that log whether the job was posted.
final class FencedPipeline {
    let pipeline: PipelineSandbox
    var sandbox: Sandbox { pipeline.sandbox }
    var postLog: String { sandbox.path("posts.log") }

    /// - Parameters: `seconds` each post lasts; `stubborn` posts ignore SIGTERM.
    init(devices: Int, jobs: Int, seconds: Double, stubborn: Bool, killGrace: Double = 1) throws {
        pipeline = try PipelineSandbox(devices: devices)
        let step = simDirectory + "/chaos-step"
        try FileManager.default.createDirectory(atPath: pipeline.sandbox.path("flocks"), withIntermediateDirectories: true)
        let flocks = pipeline.sandbox.path("flocks")
        try pipeline.configure(step: [
            "run": [step, "post", "{job_id}", "{device}", pipeline.sandbox.path("posts.log"), flocks, String(seconds)] + (stubborn ? ["stubborn"] : []),
            "check": [step, "check", "{job_id}", "-", pipeline.sandbox.path("posts.log")],
            "timeout_seconds": 60,
        ], extra: [
            "workers": ["idle_poll_seconds": 0.05, "stop_grace_seconds": 1, "kill_grace_seconds": killGrace, "restart_delay_seconds": 0.05],
            "retries": ["backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1, "step_backoff_base_seconds": 0.01,
                        "infrastructure_retry_seconds": 0.05, "requeue_spread_seconds": 0, "max_attempts": 5, "poison_after": 10],
        ])
        try pipeline.addJobs((0..<jobs).map { ("j\($0)", "-", "a\($0)") })
    }

    var lines: [[String]] {
        sandbox.read("posts.log").split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    }

    /// Pids of posts that started, in order.
    func started(_ job: String) -> [Int32] { lines.filter { $0[0] == "start" && $0[1] == job }.compactMap { Int32($0[4]) } }

    func posted(_ job: String) -> Int { lines.filter { $0[0] == "posted" && $0[1] == job }.count }

    var overlaps: [String] { lines.filter { $0[0].hasPrefix("overlap") }.map { $0.joined(separator: " ") } }

    /// The parent of `pid` (a step's worker), from /proc.
    func parent(of pid: Int32) -> Int32? { (try? ProcStat.read(pid))?.parent }

    /// Waits until the first post of `job` has started and returns its pid.
    func waitForPost(_ job: String, seconds: Double = 30) throws -> Int32 {
        try #require(waitUntil(seconds) { !started(job).isEmpty }, "no post of \(job) started: \(sandbox.read("posts.log"))")
        let pid = started(job)[0]
        sandbox.extraPids.append(pid)
        return pid
    }
}

@Suite(.serialized) struct FencingTests {
    /// Path 1: a worker killed while its step posts. The job goes back to the queue only once
    /// the orphaned post is ended (it ignores SIGTERM: SIGKILL after the grace), so the
    /// check that runs before the next post finds it not posted and exactly one post lands.
    @Test func aKilledWorkersPostIsEndedBeforeItsJobIsTakenAgain() throws {
        let fenced = try FencedPipeline(devices: 2, jobs: 1, seconds: 6, stubborn: true, killGrace: 3)
        let run = try fenced.pipeline.start(["run", "--once"])
        let post = try fenced.waitForPost("j0")
        let worker = try #require(fenced.parent(of: post))
        kill(worker, SIGKILL)
        // While the orphan has its grace, status says what the job waits for.
        var fence = ""
        #expect(waitUntil(10) {
            let alerts = (try? fenced.pipeline.status()["alerts"] as? [[String: Any]]) ?? nil
            fence = alerts?.first { $0["kind"] as? String == "fence" }?["message"] as? String ?? ""
            return !fence.isEmpty
        })
        #expect(fence.hasPrefix("waiting for the orphaned post of j0 on d") && fence.contains("(pid \(post)"), "\(fence)")
        #expect(run.wait(60) == 0, "run: \(run.stderr)")
        let alertsAfter = try fenced.pipeline.status()["alerts"] as? [[String: Any]] ?? []
        #expect(!alertsAfter.contains { $0["kind"] as? String == "fence" }, "the fence alert clears once the lock is free")
        #expect(!fenced.sandbox.isAlive(post))
        let posts = fenced.started("j0")
        #expect(posts.count == 2, "the orphan and one more post: \(posts)")
        #expect(fenced.posted("j0") == 1, "\(fenced.sandbox.read("posts.log"))")
        #expect(fenced.overlaps == [])
        #expect(try fenced.pipeline.jobs()["j0"]?.status == "success")
        let (_, events, _) = try fenced.pipeline.pipe(["events", "--limit", "100"])
        #expect(events.contains("fence") && events.contains("waiting for the orphaned post of j0 on d"), "\(events)")
        #expect(events.contains("with SIGKILL"), "the post ignored SIGTERM: \(events)")
        #expect(run.stderr.contains("waiting for the orphaned post of j0"), "\(run.stderr)")
    }

    /// Path 2: the orchestrator is killed, then its worker before it could end its step. The
    /// step (reparented away, SIGTERM ignored) still holds the store's lock, so the next run
    /// ends it, says so in one line, and only then takes the job back.
    @Test func aNewRunEndsTheLeftoversOfADeadRunBeforeTakingItsClaims() throws {
        let fenced = try FencedPipeline(devices: 1, jobs: 1, seconds: 6, stubborn: true, killGrace: 2)
        let first = try fenced.pipeline.start(["run", "--once"])
        let post = try fenced.waitForPost("j0")
        let worker = try #require(fenced.parent(of: post))
        kill(first.pid, SIGKILL)
        kill(worker, SIGKILL)
        #expect(first.wait(10) == 137)
        #expect(fenced.sandbox.isAlive(post), "the orphaned post runs on")
        let second = try fenced.pipeline.start(["run", "--once"])
        #expect(second.wait(90) == 0, "second run: \(second.stderr)")
        #expect(second.stderr.contains("ended pid \(post) (chaos-step) left by the dead run"), "\(second.stderr)")
        #expect(!fenced.sandbox.isAlive(post))
        #expect(fenced.posted("j0") == 1, "\(fenced.sandbox.read("posts.log"))")
        #expect(fenced.overlaps == [])
        #expect(try fenced.pipeline.jobs()["j0"]?.status == "success")
    }

    /// Path 3: no worker without its orchestrator. Killed with -9, the orchestrator takes its
    /// workers with it within a second or so, the one posting (SIGTERM ignored) and the idle one.
    @Test func workersStopWhenTheirOrchestratorIsGone() throws {
        let fenced = try FencedPipeline(devices: 2, jobs: 1, seconds: 30, stubborn: true, killGrace: 5)
        let run = try fenced.pipeline.start(["run"])
        let post = try fenced.waitForPost("j0")
        var workers: [Int32] = []
        try #require(waitUntil(10) {
            workers = Processes.all().filter { $0.parent == run.pid && $0.state != "Z" }.map(\.pid)
            return workers.count == 2
        }, "two workers")
        fenced.sandbox.extraPids += workers
        kill(run.pid, SIGKILL)
        #expect(run.wait(10) == 137)
        // Within the cancel grace (0.5 s) and the SIGKILL after it; a generous limit for a busy machine.
        #expect(waitUntil(5) { workers.allSatisfy { !fenced.sandbox.isAlive($0) } }, "workers left: \(workers.filter { fenced.sandbox.isAlive($0) })")
        #expect(waitUntil(5) { !fenced.sandbox.isAlive(post) }, "the post of the gone orchestrator's worker runs on")
        #expect(fenced.posted("j0") == 0)
        let log = fenced.sandbox.read(".seqpipe/logs/worker_1.log") + fenced.sandbox.read(".seqpipe/logs/worker_0.log")
        #expect(log.contains("the orchestrator is gone: stopping now"), "\(log)")
    }

    /// The scheduler and a recurring run (its step hanging) go with the orchestrator too.
    @Test func theSchedulerAndItsRunsStopWhenTheOrchestratorIsGone() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.configure(extra: ["recurring": [recurringJob(pipeline, "harvest", mode: "hang", interval: 60, offset: 0)]])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.marks.contains { $0.start && $0.job == "harvest" } })
        let step = try #require(pipeline.marks.first { $0.start && $0.job == "harvest" }?.pid)
        pipeline.sandbox.extraPids.append(step)
        let members = Processes.all().filter { $0.parent == run.pid && $0.state != "Z" }.map(\.pid)
        pipeline.sandbox.extraPids += members
        #expect(members.count == 2, "a worker and the scheduler")
        kill(run.pid, SIGKILL)
        #expect(run.wait(10) == 137)
        #expect(waitUntil(5) { !pipeline.sandbox.isAlive(step) && members.allSatisfy { !pipeline.sandbox.isAlive($0) } },
                "left: \((members + [step]).filter { pipeline.sandbox.isAlive($0) })")
        #expect(pipeline.sandbox.read(".seqpipe/logs/scheduler.log").contains("the orchestrator is gone"))
    }

    /// Path 4: one orchestrator per store, whoever starts it and by whatever path: another
    /// SEQEXEC_STATE_DIR and a symlink to the store do not make a second one.
    @Test func aSecondOrchestratorOnTheSameStoreIsRefusedWhateverItsPath() throws {
        let fenced = try FencedPipeline(devices: 1, jobs: 1, seconds: 30, stubborn: false)
        let run = try fenced.pipeline.start(["run"])
        _ = try fenced.waitForPost("j0")
        let elsewhere = fenced.sandbox.path("elsewhere")
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: elsewhere + "/store.db", withDestinationPath: fenced.sandbox.path(".seqpipe/pipeline.db"))
        let second = try fenced.sandbox.start(
            seqpipePath, ["--db", elsewhere + "/store.db", "--config", fenced.sandbox.path(".seqpipe/pipeline.json"), "run", "--once"],
            environment: ["SEQEXEC_STATE_DIR": fenced.sandbox.root + "/other-state"])
        #expect(second.wait(30) == 75, "second: \(second.stderr)")
        #expect(second.stderr.contains("another orchestrator (pid \(run.pid)"), "\(second.stderr)")
        let (code, out, _) = try fenced.pipeline.pipe(["stop-all"], seconds: 60)
        #expect(code == 0 && out.contains("stopped"), "\(out)")
        #expect(run.wait(10) == 0)
        #expect(fenced.overlaps == [])
        #expect(try fenced.pipeline.jobs()["j0"]?.status == "pending", "the stopped post went back to the queue")
    }

    /// A stop is polite to the workers: SIGTERM reaches the workers, not their steps, and a
    /// step that ends within the stop grace finishes its job.
    @Test func aStopLetsTheRunningStepFinishWithinItsGrace() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.addJobs([("j0", "slow:1.5", "a0")])
        try pipeline.configure(extra: ["workers": ["stop_grace_seconds": 20, "kill_grace_seconds": 1, "idle_poll_seconds": 0.05]])
        let run = try pipeline.start(["run"])
        #expect(waitUntil(30) { pipeline.marks.contains(where: \.start) })
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(pipeline.marks.filter { !$0.start }.count == 1, "the step ran to its end")
        #expect(try pipeline.jobs()["j0"]?.status == "success")
    }

    /// The chaos test, short: random kill -9 of workers, steps, device servers, their guards
    /// and orchestrators, then the invariants checked from the steps' own log and the
    /// kernel's socket table (scripts/chaos-pipeline).
    @Test(.timeLimit(.minutes(5))) func randomKillNineOfEveryKindLosesNothingAndPostsNothingTwice() throws {
        let sandbox = try Sandbox()
        let script = URL(fileURLWithPath: simDirectory).deletingLastPathComponent().appendingPathComponent("chaos-pipeline").path
        let chaos = try sandbox.start("/usr/bin/env", [
            "python3", script, "--jobs", "40", "--devices", "2", "--kill-min", "0.2", "--kill-max", "0.8", "--kill-grace", "1",
            "--limit", "200", "--seqpipe", seqpipePath,
        ])
        let status = chaos.wait(240)
        print(chaos.stdout)
        #expect(status == 0, "\(chaos.stdout)\(chaos.stderr)")
        #expect(chaos.stdout.contains("0 posted twice, 0 job overlaps, 0 device overlaps, integrity ok, 0 processes left"))
        // Nor any other process of the run (found by its work directory), nor a listener.
        #expect(chaos.stdout.contains("servers seen, 0 others of the run), 0 server ports listened on"))
    }
}
