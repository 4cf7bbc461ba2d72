import Foundation
import Glibc
import SeqSystem
import Testing

/// What the farm's operator reads and does from the terminal: words that say what actually
/// changed, one attempt counter across retries, priorities as words, a time to empty only
/// when something empties the queue, and devices paused, resumed and released by hand.
@Suite struct OperatorTests {
    /// The attempt number of "attempt N of M" and the one the step itself was given, in each
    /// event that has both.
    static func attemptPairs(_ events: [String]) -> [(said: Int, step: Int)] {
        events.compactMap { line in
            guard let said = line.firstMatch(of: /attempt (\d+) of \d+/), let step = line.firstMatch(of: /\(attempt (\d+)\)/),
                  let a = Int(said.1), let b = Int(step.1) else { return nil }
            return (a, b)
        }
    }

    @Test func oneAttemptCounterAcrossRetriesInEventsShowAndTheJobsList() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        var (status, out, err) = try pipeline.pipe(["add-job", "--id", "j1", "--account", "a1", "--field", "mode=retryable", "--max-attempts", "2"])
        try #require(status == 0, "add-job: \(err)")
        (status, _, err) = try pipeline.pipe(["run", "--once"])
        try #require(status == 0, "run: \(err)")
        #expect(try pipeline.jobs()["j1"]?.status == "failed")
        (status, out, err) = try pipeline.pipe(["retry", "j1"])
        #expect(status == 0 && out == "job j1 was failed; now pending, with a fresh budget of attempts\n", "\(out)\(err)")
        (status, _, err) = try pipeline.pipe(["run", "--once"])
        try #require(status == 0, "run: \(err)")

        (status, out, err) = try pipeline.pipe(["show", "j1"])
        try #require(status == 0, "show: \(err)")
        // Four runs: two, a retry by hand (a fresh budget of two), two more.
        #expect(out.contains("\nattempt: 4 of 4\n"), "\(out)")
        let pairs = Self.attemptPairs(out.split(separator: "\n").map(String.init))
        #expect(pairs.count == 4 && pairs.allSatisfy { $0.said == $0.step }, "each event's attempt is the step's: \(pairs) in \(out)")
        #expect(out.contains("put back to pending by "), "\(out)")
        let shown = out
        (_, out, _) = try pipeline.pipe(["jobs"])
        #expect(out.contains("ATTEMPT") && out.contains(" 4/4 "), "\(out)")
        let detail = try JSONSerialization.jsonObject(with: Data(try pipeline.pipe(["show", "j1", "--json"]).1.utf8)) as? [String: Any]
        #expect(detail?["attempt"] as? Int == 4 && detail?["attempt_limit"] as? Int == 4, "\(String(describing: detail))")
        // Each run's output is kept with the job: what the step printed, by attempt.
        #expect(shown.contains("  attempt 4, step post, exit 1, ") && shown.contains("\n    something went wrong (attempt 4)\n"), "\(shown)")
        let outputs = detail?["outputs"] as? [[String: Any]] ?? []
        #expect(outputs.map { $0["attempt"] as? Int ?? 0 } == [1, 2, 3, 4] && outputs.allSatisfy { ($0["text"] as? String)?.hasPrefix("something went wrong") == true },
                "\(outputs)")
    }

    @Test func byHandChangesSayWhatActuallyChanged() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.addJobs([("done", "ok", "a1"), ("bad", "suspended", "a2")])
        var (status, out, err) = try pipeline.pipe(["run", "--once"])
        try #require(status == 0, "run: \(err)")
        try pipeline.addJobs([("waits", "ok", "a3")])

        (status, out, err) = try pipeline.pipe(["retry", "waits"])
        #expect(status == 0 && out == "job waits was already pending; nothing changed\n", "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["cancel", "done"])
        #expect(status == 1 && err.contains("job done has finished (success); there is nothing to cancel"), "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["account", "resume", "a1"])
        #expect(status == 0 && out == "account a1 was not paused or cooling down; nothing changed\n", "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["account", "resume", "a2"])
        #expect(status == 0 && out.hasPrefix("account a2 was paused (suspended"), "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["retry", "nope"])
        #expect(status == 1 && err.contains("no job 'nope'"), "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["retry"])
        #expect(status == 2 && err.contains("give job ids or filters"), "\(out)\(err)")

        // Bulk, over a filter: a count and one line.
        try pipeline.addJobs([("zz1", "suspended", "a4"), ("zz2", "suspended", "a6"), ("c1", "suspended", "a5")])
        (status, _, err) = try pipeline.pipe(["run", "--once"])
        try #require(status == 0, "run: \(err)")
        (status, out, err) = try pipeline.pipe(["retry", "--status", "failed", "--search", "zz"])
        #expect(status == 0 && out == "retried 2 of the 2 jobs matching status failed, search zz\n", "\(out)\(err)")
        let jobs = try pipeline.jobs()
        #expect(jobs["zz1"]?.status == "pending" && jobs["zz2"]?.status == "pending" && jobs["c1"]?.status == "failed", "\(jobs)")
        (status, out, err) = try pipeline.pipe(["cancel", "--search", "zz"])
        #expect(status == 0 && out == "cancelled 2 of the 2 jobs matching search zz\n", "\(out)\(err)")
    }

    @Test func prioritiesReadAsWordsInClaimOrder() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        for (id, priority) in [("low", "low"), ("p0", "P0"), ("n", "normal"), ("p1", "P1"), ("top", "5")] {
            let (status, _, err) = try pipeline.pipe(["add-job", "--id", id, "--account", id, "--priority", priority, "--field", "mode=ok"])
            try #require(status == 0, "add-job: \(err)")
        }
        let (_, out, _) = try pipeline.pipe(["jobs"])
        let rows = out.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.map { $0[0] } == ["top", "p0", "p1", "n", "low"], "\(out)")
        #expect(rows.map { $0[3] } == ["P0+3", "P0", "P1", "P2", "P3"], "\(out)")
        let csv = try pipeline.pipe(["export-csv"]).1
        #expect(csv.contains(",P0+3,ok\r\n") && csv.contains(",P3,ok\r\n"), "\(csv)")
        // What export-csv writes, import-csv reads back: the same words in the same order.
        let again = try PipelineSandbox(devices: 1)
        let file = try again.sandbox.write("jobs.csv", csv)
        let (status, _, err) = try again.pipe(["import-csv", file])
        try #require(status == 0, "import-csv: \(err)")
        #expect(try again.pipe(["jobs"]).1 == out)
    }

    @Test func timeToEmptyOnlyWhileAnOrchestratorRunsAndOverJobsThatCanRunNow() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        try pipeline.addJobs([("bad", "suspended", "a2")])
        let (code, _, err) = try pipeline.pipe(["run", "--once"])
        try #require(code == 0, "run: \(err)")
        // a2 is paused now: its job waits for a resume, a1's can run; c waits until 2099.
        try pipeline.addJobs([("a", "ok", "a1"), ("b", "ok", "a2")])
        let later = try pipeline.sandbox.write("later.csv", "job_id,account,status,retry_at,mode\nc,a3,retrying,2099-01-01T00:00:00Z,ok\n")
        #expect(try pipeline.pipe(["import-csv", later]).0 == 0)
        let status = try pipeline.status()
        #expect(status["queue"] as? Int == 3 && status["runnable_now"] as? Int == 1, "\(status)")
        #expect(status["time_to_empty_seconds"] is NSNull && status["orchestrator_runs"] as? Bool == false, "\(status)")
        let (_, text, _) = try pipeline.pipe(["status"])
        #expect(text.contains("no orchestrator runs, so nothing empties it") && !text.contains("empty in about"), "\(text)")
    }

    @Test func aDeviceIsPausedResumedAndReleasedByHand() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        var (status, out, err) = try pipeline.pipe(["device", "pause", "d0"])
        #expect(status == 0 && out.hasPrefix("device d0 paused: its worker finishes the job it runs"), "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["device", "pause", "d0"])
        #expect(status == 0 && out == "device d0 was already paused; nothing changed\n", "\(out)\(err)")
        try pipeline.addJobs([("a", "ok", "a1")])
        // Paused: a run claims nothing. Started, it waits; the job stays pending.
        let run = try pipeline.start(["run"])
        defer { run.signal(SIGTERM); _ = run.wait(20) }
        #expect(waitUntil(20) { (try? pipeline.status())?["workers"].map { "\($0)".contains("paused") } ?? false }, "the worker says paused: \(run.stderr)")
        #expect(try pipeline.jobs()["a"]?.status == "pending")
        let running = try pipeline.status()
        #expect(running["orchestrator_runs"] as? Bool == true && running["runnable_now"] as? Int == 1, "\(running)")
        (status, out, err) = try pipeline.pipe(["device", "resume", "d0"])
        #expect(status == 0 && out.hasPrefix("device d0 was paused (by "), "\(out)\(err)")
        #expect(waitUntil(20) { (try? pipeline.jobs())?["a"]?.status == "success" }, "resumed, the job runs: \(run.stderr)")
        (status, out, err) = try pipeline.pipe(["device", "release", "d0"])
        #expect(status == 0 && out == "device d0 was not held; nothing changed\n", "\(out)\(err)")
        (status, out, err) = try pipeline.pipe(["device", "release", "nope"])
        #expect(status == 1 && err.contains("no device 'nope'"), "\(out)\(err)")
        let (_, events, _) = try pipeline.pipe(["events"])
        #expect(events.contains("device-paused") && events.contains("device-resumed"), "\(events)")
    }
}
