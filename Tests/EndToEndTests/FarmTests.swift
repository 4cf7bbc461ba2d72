import Foundation
import Glibc
import SeqSystem
import Testing

/// The PostgreSQL server `make test` starts (scripts/with-postgres), if any.
let farmDatabase: String? = ProcessInfo.processInfo.environment["SEQPIPE_TEST_PG"].flatMap { $0.isEmpty ? nil : $0 }

/// A schema of a test's own in the suite's PostgreSQL database (its tables meet no other
/// test's), dropped when the test is done.
final class ThrowawaySchema {
    let name: String
    /// The database's URL with this schema first on the search path.
    let url: String
    let sandbox: Sandbox

    init(_ sandbox: Sandbox, prefix: String) throws {
        self.sandbox = sandbox
        let base = try #require(farmDatabase)
        name = prefix + String(UInt64.random(in: 0..<UInt64.max), radix: 16)
        let create = try sandbox.start("/usr/bin/env", ["psql", "-q", base, "-c", "CREATE SCHEMA \(name)"])
        try #require(create.wait(30) == 0, "\(create.stderr)")
        url = base + (base.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(name)"
    }

    deinit {
        if let base = farmDatabase, let drop = try? sandbox.start("/usr/bin/env", ["psql", "-q", base, "-c", "DROP SCHEMA \(name) CASCADE"]) {
            _ = drop.wait(30)
        }
    }
}

/// Two hosts of a farm on one machine: two orchestrators with their own --host, devices,
/// working directories and lock state, sharing one PostgreSQL store (a schema of the test's
/// own, dropped at the end).
@Suite(.serialized, .enabled(if: farmDatabase != nil && commandOnPath("psql"),
                             "SEQPIPE_TEST_PG is not set (or psql is missing): the farm tests need a PostgreSQL server; 'make test' starts one when it is installed"))
struct FarmTests {
    final class Farm {
        let pipeline: PipelineSandbox
        let schema: ThrowawaySchema
        var url: String { schema.url }

        init() throws {
            pipeline = try PipelineSandbox(devices: 0)
            schema = try ThrowawaySchema(pipeline.sandbox, prefix: "farm_")
            for host in ["a", "b"] { try FileManager.default.createDirectory(atPath: pipeline.sandbox.path(host + "/state"), withIntermediateDirectories: true) }
        }

        /// `seqpipe ARGS` as host `host` (its own directory and lock state), to completion.
        func pipe(_ arguments: [String], host: String = "a", seconds: Double = 60) throws -> (Int32?, String, String) {
            let child = try start(arguments, host: host)
            let status = child.wait(seconds)
            return (status, child.stdout, child.stderr)
        }

        func start(_ arguments: [String], host: String) throws -> Child {
            try pipeline.sandbox.start(seqpipePath, ["--config", pipeline.sandbox.path(".seqpipe/pipeline.json")] + arguments, environment: [
                "SEQPIPE_DB": url, "SEQEXEC_STATE_DIR": pipeline.sandbox.path(host + "/state"),
            ], directory: pipeline.sandbox.path(host))
        }

        /// Each job's status, from export-csv.
        func jobs() throws -> [String: String] {
            let (code, out, err) = try pipe(["export-csv"])
            try #require(code == 0, "export-csv: \(err)")
            var result: [String: String] = [:]
            for line in out.split(separator: "\r\n").dropFirst() {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                result[fields[0]] = fields[4]
            }
            return result
        }

        func status() throws -> [String: Any] {
            let (code, out, err) = try pipe(["status", "--json"])
            try #require(code == 0, "status: \(err)")
            return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        }
    }

    /// Every process under `root`, found over /proc before any is signalled, stopped, then
    /// killed: nothing it starts meanwhile escapes.
    static func killTree(_ root: Int32) -> Set<Int32> {
        var all = Set([root] + Processes.descendants(of: [root]).map(\.pid))
        for pid in all { kill(pid, SIGSTOP) }
        all.formUnion(Processes.descendants(of: all).map(\.pid))
        for pid in all { kill(pid, SIGKILL) }
        return all
    }

    @Test(.timeLimit(.minutes(3))) func aHostKilledWholeLosesNoJobAndNoJobRunsTwice() throws {
        let farm = try Farm()
        let pipeline = farm.pipeline
        let steps = pipeline.stepLog
        // A step that works for 30 ms, then posts (a line in posts.log), and a check that
        // finds a post already made: a run cut short after its post does not post again.
        let posts = pipeline.sandbox.path("posts.log")
        let work = "\(simDirectory)/sim-step --log \(steps) --job {job_id} --account {account} slow:0.03 && echo {job_id} >> \(posts)"
        try pipeline.configure(step: ["run": ["/bin/sh", "-c", work], "check": ["/bin/sh", "-c", "grep -qx {job_id} \(posts)"], "attempts": 2],
                               extra: ["orchestrator": ["heartbeat_seconds": 0.2, "host_lease_seconds": 1.5]])
        #expect(try farm.pipe(["init"]).0 == 0)
        for (host, device) in [("a", "a0"), ("a", "a1"), ("b", "b0"), ("b", "b1")] {
            let (status, _, err) = try farm.pipe(["device", "add", device, "--host", host])
            try #require(status == 0, "device add: \(err)")
        }
        var csv = "job_id,account\n"
        for index in 0..<300 { csv += "j\(String(format: "%03d", index)),acct\(index % 40)\n" }
        _ = try pipeline.sandbox.write("jobs.csv", csv)
        #expect(try farm.pipe(["import-csv", pipeline.sandbox.path("jobs.csv")]).0 == 0)

        let hostA = try farm.start(["run", "--host", "a", "--once"], host: "a")
        let hostB = try farm.start(["run", "--host", "b", "--once"], host: "b")
        // Mid-run: both hosts have posted, host a has work in hand.
        #expect(waitUntil(60) { pipeline.marks.filter { !$0.start }.count >= 60 })
        let killed = Self.killTree(hostA.pid)
        #expect(hostA.wait(10) == 137)
        // The runs the kill cut short end at the kill, for the overlap check; they never posted.
        var open: [Int32: Bool] = [:]
        for mark in pipeline.marks { open[mark.pid] = mark.start }
        let cutShort = Set(open.filter { $0.value }.keys).intersection(killed)
        #expect(waitUntil(10) { cutShort.allSatisfy { !pipeline.sandbox.isAlive($0) } })
        pipeline.endKilledRuns()
        #expect(hostB.wait(120) == 0, "\(hostB.stderr)")
        var posted: [String: Int] = [:]
        for line in pipeline.sandbox.lines("posts.log") { posted[line, default: 0] += 1 }
        let twice = posted.filter { $0.value > 1 }.keys.sorted()

        // Every job ended once, none was posted twice, no two runs of a job overlapped.
        let jobs = try farm.jobs()
        #expect(jobs.count == 300)
        #expect(jobs.values.allSatisfy { $0 == "success" }, "\(jobs.filter { $0.value != "success" })")
        #expect(posted.count == 300 && twice.isEmpty, "\(posted.count) posted; twice: \(twice)")
        #expect(pipeline.overlaps().isEmpty, "\(pipeline.overlaps())")
        let (_, events, _) = try farm.pipe(["events", "--limit", "2000"])
        #expect(events.contains("host-lost") && events.contains("taken over by host b"), "\(events.suffix(2000))")
        let hosts = try farm.status()["hosts"] as? [[String: Any]] ?? []
        #expect(hosts.first { $0["name"] as? String == "a" }?["state"] as? String == "lost", "\(hosts)")
        #expect(hosts.first { $0["name"] as? String == "b" }?["state"] as? String == "stopped", "\(hosts)")
        // Nothing of host a is left.
        let survivors = Processes.descendants(of: [hostA.pid])
        #expect(survivors.isEmpty)
        let requeued = events.components(separatedBy: "\n").first { $0.contains("host-lost") } ?? ""
        print("farm: 300 jobs on 2 hosts; killed host a's \(killed.count) processes mid-run (\(cutShort.count) runs cut short); \(posted.count) jobs posted, \(twice.count) posted twice, \(pipeline.overlaps().count) overlaps; \(requeued)")
    }

    @Test(.timeLimit(.minutes(2))) func aHostThatComesBackFindsItsClaimsTakenAndRegistersAgain() throws {
        let farm = try Farm()
        let pipeline = farm.pipeline
        let steps = pipeline.stepLog
        let posts = pipeline.sandbox.path("posts.log")
        // Posts after 3 s of work; host a's orchestrator freezes while its two posts run.
        let work = "\(simDirectory)/sim-step --log \(steps) --job {job_id} --account {account} slow:3 && echo {job_id} >> \(posts)"
        try pipeline.configure(step: ["run": ["/bin/sh", "-c", work], "check": ["/bin/sh", "-c", "grep -qx {job_id} \(posts)"], "timeout_seconds": 30],
                               extra: ["orchestrator": ["heartbeat_seconds": 0.2, "host_lease_seconds": 1]])
        #expect(try farm.pipe(["init"]).0 == 0)
        for (host, device) in [("a", "a0"), ("a", "a1"), ("b", "b0"), ("b", "b1")] {
            #expect(try farm.pipe(["device", "add", device, "--host", host]).0 == 0)
        }
        try pipeline.addJobsTo(farm, ["p1", "p2"])
        let hostA = try farm.start(["run", "--host", "a"], host: "a")
        #expect(waitUntil(30) { pipeline.marks.filter(\.start).count == 2 }, "\(hostA.stderr)")
        let first = Set(pipeline.marks.filter(\.start).map(\.pid))
        let hostB = try farm.start(["run", "--host", "b"], host: "b")
        kill(hostA.pid, SIGSTOP)
        // Host a's lease runs out: host b takes both jobs, and host a's workers, whose claims
        // were taken back, end their steps before these post.
        #expect(waitUntil(30) { first.allSatisfy { !pipeline.sandbox.isAlive($0) } })
        kill(hostA.pid, SIGCONT)
        #expect(waitUntil(60) { pipeline.sandbox.lines("posts.log").count >= 2 }, "\(hostB.stderr)")
        let (_, events, _) = try farm.pipe(["events", "--limit", "500"])
        #expect(events.contains("host-lost") && events.contains("back after it was taken over"), "\(events)")
        #expect(pipeline.sandbox.lines("posts.log").sorted() == ["p1", "p2"])
        let jobs = try farm.jobs()
        #expect(jobs["p1"] == "success" && jobs["p2"] == "success", "\(jobs)")
        for host in [hostA, hostB] {
            host.signal(SIGTERM)
            #expect(host.wait(30) == 0, "\(host.stderr)")
        }
        #expect(pipeline.sandbox.lines("posts.log").sorted() == ["p1", "p2"])
    }

    @Test func hostsRunningInitAtOnceMigrateOnce() throws {
        let farm = try Farm()
        let inits = try (0..<4).map { index in try farm.start(["init"], host: index % 2 == 0 ? "a" : "b") }
        for child in inits { #expect(child.wait(60) == 0, "\(child.stderr)") }
        let check = try farm.pipeline.sandbox.start("/usr/bin/env", [
            "psql", "-qAt", farm.url, "-c", "SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM schema_version",
        ])
        #expect(check.wait(30) == 0, "\(check.stderr)")
        let (rows, distinct, latest) = { () -> (String, String, String) in
            let fields = check.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").map(String.init)
            return fields.count == 3 ? (fields[0], fields[1], fields[2]) : ("?", "?", "?")
        }()
        #expect(rows == distinct && rows == latest && Int(latest) ?? 0 >= 2, "\(check.stdout)")
        #expect(try farm.pipe(["status"]).0 == 0)
    }

    /// A farm has one config, in its store: a host with no pipeline.json of its own reads the
    /// version another host loaded or set.
    @Test(.timeLimit(.minutes(2))) func aHostWithoutAConfigFileReadsTheFarmsFromTheStore() throws {
        let farm = try Farm()
        #expect(try farm.pipe(["init"]).0 == 0)
        let (set, out, setErr) = try farm.pipe(["config", "set", "workers.idle_poll_seconds", "0.09"])
        #expect(set == 0, "\(setErr)")
        let version = try #require(out.split(separator: ":").first.flatMap { Int($0.split(separator: " ").last ?? "") }, "\(out)")
        func onB(_ arguments: [String]) throws -> (Int32?, String, String) {
            let child = try farm.pipeline.sandbox.start(seqpipePath, arguments, environment: [
                "SEQPIPE_DB": farm.url, "SEQEXEC_STATE_DIR": farm.pipeline.sandbox.path("b/state"),
            ], directory: farm.pipeline.sandbox.path("b"))
            let status = child.wait(30)
            return (status, child.stdout, child.stderr)
        }
        #expect(!FileManager.default.fileExists(atPath: farm.pipeline.sandbox.path("b/.seqpipe/pipeline.json")))
        let (shown, described, err) = try onB(["show-config"])
        #expect(shown == 0 && described.hasPrefix("config: version \(version) in the store, from "), "\(described)\(err)")
        let (_, text, _) = try onB(["config", "show"])
        #expect(text.contains("\"idle_poll_seconds\":0.09"), "\(text)")
    }

    @Test(.timeLimit(.minutes(2))) func theSchedulerRunsOnOneHostAndMovesWhenItDies() throws {
        let farm = try Farm()
        let pipeline = farm.pipeline
        let runs = pipeline.sandbox.path("recurring.log")
        try pipeline.configure(extra: [
            "orchestrator": ["heartbeat_seconds": 0.2, "host_lease_seconds": 1],
            "recurring": [["name": "tick", "interval_seconds": 0.3, "run": ["/bin/sh", "-c", "echo $SEQPIPE_HOST >> \(runs)"]]],
        ])
        #expect(try farm.pipe(["init"]).0 == 0)
        for (host, device) in [("a", "a0"), ("b", "b0")] { #expect(try farm.pipe(["device", "add", device, "--host", host]).0 == 0) }
        let hostA = try farm.start(["run", "--host", "a"], host: "a")
        #expect(waitUntil(30) { pipeline.sandbox.lines("recurring.log").count >= 2 }, "\(hostA.stderr)")
        let hostB = try farm.start(["run", "--host", "b"], host: "b")
        #expect(waitUntil(30) { (try? farm.status()["hosts"] as? [[String: Any]])?.count == 2 })
        // Both hosts run; the ticks keep coming from host a alone.
        let before = pipeline.sandbox.lines("recurring.log").count
        #expect(waitUntil(30) { pipeline.sandbox.lines("recurring.log").count >= before + 4 })
        #expect(Set(pipeline.sandbox.lines("recurring.log")) == ["a"])
        // Host a dies whole: host b takes the scheduler over.
        _ = Self.killTree(hostA.pid)
        #expect(hostA.wait(10) == 137)
        #expect(waitUntil(30) { pipeline.sandbox.lines("recurring.log").contains("b") }, "\(hostB.stderr)")
        let hosts = try farm.status()["hosts"] as? [[String: Any]] ?? []
        #expect(hosts.first { $0["name"] as? String == "b" }?["leads"] as? [String] == ["scheduler"], "\(hosts)")
        hostB.signal(SIGTERM)
        #expect(hostB.wait(30) == 0, "\(hostB.stderr)")
    }
}

/// A store URL that leads nowhere: one line naming it, its password hidden, and the fix.
@Test func aPostgreSQLStoreThatCannotBeReachedIsOneLine() throws {
    let sandbox = try Sandbox()
    let child = try sandbox.start(seqpipePath, ["--db", "postgresql://farm:s3cret@127.0.0.1:9/seqpipe?connect_timeout=2", "status"])
    #expect(child.wait(30) == 125)
    let lines = child.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(child.stderr)")
    #expect(!child.stderr.contains("s3cret"))
    #expect(child.stderr.contains("postgresql://farm:***@127.0.0.1:9/seqpipe") || child.stderr.contains("libpq is not installed"), "\(child.stderr)")
}

extension PipelineSandbox {
    /// One job per id, each on its own account, added to the farm's store.
    func addJobsTo(_ farm: FarmTests.Farm, _ ids: [String]) throws {
        for id in ids {
            let (status, _, err) = try farm.pipe(["add-job", "--id", id, "--account", "acct-" + id])
            try #require(status == 0, "add-job: \(err)")
        }
    }
}
