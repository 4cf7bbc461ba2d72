import Foundation
import Glibc
import SeqSystem
import Testing

/// The config a run uses lives in the store, in numbered versions; pipeline.json is how it
/// gets there. A run and every one of its members use one version, whatever happens to the
/// file meanwhile.
@Suite(.timeLimit(.minutes(3)))
struct ConfigVersionTests {
    /// The store's config versions, newest first: (version, source).
    func versions(_ pipeline: PipelineSandbox) throws -> [(Int, String)] {
        let (status, out, err) = try pipeline.pipe(["config", "versions"])
        try #require(status == 0, "config versions: \(err)")
        return out.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3, let version = Int(fields[0]) else { return nil }
            return (version, fields[2...].joined(separator: " "))
        }
    }

    @Test func theConfigIsKeptInVersionsThatLoadSetAndEditsMake() throws {
        // init loads the default file (1); the sandbox's own file is picked up by the next
        // command that writes (device add: 2).
        let pipeline = try PipelineSandbox(devices: 1)
        let file = pipeline.sandbox.path(".seqpipe/pipeline.json")
        var list = try versions(pipeline)
        #expect(list.map(\.0) == [2, 1] && list.allSatisfy { $0.1 == file }, "\(list)")

        let (set, out, setErr) = try pipeline.pipe(["config", "set", "workers.idle_poll_seconds", "0.07"])
        #expect(set == 0 && out == "config version 3: workers.idle_poll_seconds = 0.07\n", "\(out)\(setErr)")
        // A value the config refuses makes no version, and says which key and what it takes.
        let (bad, _, badErr) = try pipeline.pipe(["config", "set", "retries.max_attempts", "lots"])
        #expect(bad == 1 && badErr.contains("retries.max_attempts: expected a whole number"), "\(badErr)")
        let (badKey, _, badKeyErr) = try pipeline.pipe(["config", "set", "steps.4.name", "x"])
        #expect(badKey == 1 && badKeyErr.contains("'4' is not an index of that list"), "\(badKeyErr)")
        // A file left as it was does not undo the set: commands that write keep version 3.
        let (added, _, addErr) = try pipeline.pipe(["add-job", "--id", "j1", "--account", "a", "--field", "mode=ok"])
        #expect(added == 0, "\(addErr)")
        list = try versions(pipeline)
        #expect(list.map(\.0) == [3, 2, 1] && list[0].1 == "config set workers.idle_poll_seconds", "\(list)")
        let (_, shown, _) = try pipeline.pipe(["config", "show"])
        #expect(shown.contains("\"idle_poll_seconds\":0.07"), "\(shown)")
        let (_, described, _) = try pipeline.pipe(["show-config"])
        #expect(described.hasPrefix("config: version 3 in the store, from config set workers.idle_poll_seconds\n"), "\(described)")
        // An edited file is picked up by the next command that writes, as a new version.
        try pipeline.configure(step: ["timeout_seconds": 4])
        let (_, _, addErr2) = try pipeline.pipe(["add-job", "--id", "j2", "--account", "b", "--field", "mode=ok"])
        #expect(addErr2.isEmpty)
        list = try versions(pipeline)
        #expect(list.map(\.0) == [4, 3, 2, 1] && list[0].1 == file, "\(list)")
        let (_, four, _) = try pipeline.pipe(["config", "show", "4"])
        #expect(four.contains("\"timeout_seconds\": 4") || four.contains("\"timeout_seconds\":4"), "\(four)")
        let (missing, _, missingErr) = try pipeline.pipe(["config", "show", "9"])
        #expect(missing == 1 && missingErr.contains("has no config version 9; see 'seqpipe config versions'"), "\(missingErr)")
        // config load of the same text makes nothing new.
        let (load, loaded, _) = try pipeline.pipe(["config", "load"])
        #expect(load == 0 && loaded == "config version 4 already says what \(file) says\n", "\(loaded)")
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "50"])
        #expect(events.contains("config version 3 loaded from config set workers.idle_poll_seconds"), "\(events)")
    }

    /// The worker that replaces a killed one runs under the version the run started with,
    /// though pipeline.json was edited and loaded as a newer version meanwhile; the next run
    /// uses the newer one.
    @Test func aRestartedWorkerRunsUnderTheRunsVersion() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let out = pipeline.sandbox.path("out.log")
        func configure(_ marker: String) throws {
            // The first run of job "hang" sleeps (and is where the worker is killed); every
            // other run writes which config it ran under.
            let mark = pipeline.sandbox.path("hung") + ".{job_id}"
            let script = "if [ ! -e \(mark) ]; then touch \(mark); if [ {job_id} = hang ]; then exec sleep 60; fi; fi; echo \(marker) {job_id} >> \(out)"
            try pipeline.configure(step: ["run": ["/bin/sh", "-c", script], "timeout_seconds": 90])
        }
        try configure("v1")
        try pipeline.addJobs([("hang", "ok", "acct-hang")])
        let run = try pipeline.start(["run", "--workers", "1"])
        defer { if run.isRunning { run.signal(SIGKILL); _ = run.wait(10) } }
        #expect(waitUntil(30) { FileManager.default.fileExists(atPath: pipeline.sandbox.path("hung") + ".hang") })
        let status = try pipeline.status()
        let runVersion = try #require(status["config_version"] as? Int, "\(status)")
        let worker = try #require(try pipeline.workerPid(0))
        // The file changes, and a command that writes loads it as a newer version.
        try configure("v2")
        try pipeline.addJobs([("a", "ok", "acct-a"), ("b", "ok", "acct-b")])
        #expect(try versions(pipeline).first?.0 == runVersion + 1)
        kill(worker, SIGKILL)
        #expect(waitUntil(60) { (try? pipeline.jobs().values.allSatisfy { $0.status == "success" }) ?? false }, "\(pipeline.sandbox.read("out.log"))")
        let lines = Set(pipeline.sandbox.read("out.log").split(separator: "\n").map(String.init))
        #expect(lines == ["v1 hang", "v1 a", "v1 b"], "the restarted worker ran under the run's version: \(lines)")
        let replacement = try #require(try pipeline.workerPid(0))
        #expect(replacement != worker)
        let words = ((try? String(contentsOfFile: "/proc/\(replacement)/cmdline", encoding: .utf8)) ?? "").split(separator: "\0").map(String.init)
        let told = words.firstIndex(of: "--config-version").map { words[$0 + 1] }
        #expect(told == String(runVersion), "the replacement was told its version: \(words)")
        // status and show-config show the version the run uses, not the newest.
        #expect(try pipeline.status()["config_version"] as? Int == runVersion)
        let (_, described, _) = try pipeline.pipe(["show-config"])
        #expect(described.hasPrefix("config: version \(runVersion) in the store"), "\(described)")
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        // The next run uses the newer version.
        try pipeline.addJobs([("c", "ok", "acct-c")])
        let (again, _, againErr) = try pipeline.pipe(["run", "--once", "--workers", "1"])
        #expect(again == 0, "\(againErr)")
        #expect(pipeline.sandbox.read("out.log").contains("v2 c"), "\(pipeline.sandbox.read("out.log"))")
    }
}
