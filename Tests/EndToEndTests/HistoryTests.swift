import Foundation
import Glibc
import Testing

@Suite(.serialized, .timeLimit(.minutes(3)))
struct HistoryTests {
    @Test func everyEndingIsRecorded() throws {
        let sandbox = try Sandbox()
        let runs: [([String], Int32, String)] = [
            (["true"], 0, "exit"),
            (["sh", "-c", "exit 3"], 3, "exit"),
            (["-t", "0.3", "sleep", "30"], 124, "timeout"),
            (["sh", "-c", "kill -TERM $$"], 143, "signal"),
            (["sh", "-c", "kill -KILL $$"], 137, "killed"),
            (["no-such-command-seqguard"], 127, "not_started"),
        ]
        for (arguments, status, _) in runs {
            let (got, _, stderr) = try sandbox.run(arguments)
            #expect(got == status, "\(arguments): \(stderr)")
        }
        let records = sandbox.history
        #expect(records.map { $0["ended"] as? String ?? "?" } == runs.map(\.2))
        #expect(records.map { $0["exit_status"] as? Int ?? -1 } == runs.map { Int($0.1) })
        let first = records.first ?? [:]
        #expect(first["command"] as? String == "true")
        #expect(first["wait_ms"] is Int && first["run_ms"] is Int && first["pid"] is Int && first["child_pid"] is Int)
        #expect((first["queued_at"] as? String)?.hasSuffix("Z") == true)
        #expect(first["memory_limit_mb"] as? Int == 2048 && first["metric"] as? String == "rss")
        #expect(records[2]["run_ms"] as? Int ?? 0 >= 300, "the timeout ran its 0.3 s")
        #expect(records[3]["signal"] as? String == "SIGTERM")
        #expect(records[5]["run_ms"] is NSNull)

        // The table for a person, the array for a script.
        let (status, table, _) = try sandbox.run(["--history", "-n", "3"])
        #expect(status == 0)
        let rows = table.split(separator: "\n")
        #expect(rows.count == 4, "\(table)")
        #expect(rows.first?.hasPrefix("QUEUED") == true)
        #expect(rows[1].contains("signal (SIGTERM)") && rows[1].hasSuffix("sh -c 'kill -TERM $$'"), "\(table)")
        #expect(rows[3].contains("not_started") && rows[3].contains("127"))
        let (_, json, _) = try sandbox.run(["--history", "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        #expect(parsed?.count == runs.count)
        #expect(parsed?.last?["ended"] as? String == "not_started")
    }

    @Test func aWaiterInterruptedOrGivingUpIsRecordedToo() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec([job, "waiter"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        waiter.signal(SIGTERM)
        #expect(waiter.wait() == 143)
        let (gaveUp, _, _) = try sandbox.run(["-w", "0.2", job, "late"])
        #expect(gaveUp == 75)
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        let endings = sandbox.history.map { $0["ended"] as? String ?? "?" }
        #expect(endings == ["interrupted", "gave_up", "exit"], "in the order they finished: \(endings)")
        let interrupted = sandbox.history.first ?? [:]
        #expect(interrupted["exit_status"] as? Int == 143 && interrupted["run_ms"] is NSNull)
        #expect((sandbox.history[1]["wait_ms"] as? Int ?? 0) >= 200)
    }

    @Test func historyRotatesAndSkipsACorruptLine() throws {
        let sandbox = try Sandbox()
        for index in 1...12 {
            let (status, _, _) = try sandbox.run(["echo", "run-\(index)"], environment: ["SEQEXEC_HISTORY_MAX_KB": "1"])
            #expect(status == 0)
        }
        let state = try #require(sandbox.projectState)
        let current = try FileManager.default.attributesOfItem(atPath: state + "/history.jsonl")[.size] as? Int ?? 0
        #expect(FileManager.default.fileExists(atPath: state + "/history.jsonl.1"), "rotated")
        #expect(current < 1024 + 512, "the live file stays near the limit: \(current)")
        // A torn line (a crash mid-write, a hand edit) is skipped with a note, never fatal.
        let handle = try #require(FileHandle(forWritingAtPath: state + "/history.jsonl"))
        handle.seekToEndOfFile()
        handle.write(Data("{\"command\":\"torn\",\"pi\n".utf8))
        handle.closeFile()
        let (status, table, stderr) = try sandbox.run(["--history", "-n", "2"])
        #expect(status == 0)
        #expect(stderr.contains("skipped 1 unreadable line of") && stderr.contains("history.jsonl"), "\(stderr)")
        let rows = table.split(separator: "\n")
        #expect(rows.count == 3 && rows[1].hasSuffix("echo run-11") && rows[2].hasSuffix("echo run-12"), "\(table)")
        let (_, json, _) = try sandbox.run(["--history", "--json", "-n", "100"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
        #expect(parsed.count > 3 && parsed.count < 12, "one old generation is kept: \(parsed.count)")
        #expect(parsed.last?["command"] as? String == "echo run-12")
    }

    @Test func badHistoryUsageIsNamed() throws {
        let sandbox = try Sandbox()
        for (arguments, fragment) in [
            (["-n", "3", "true"], "-n/--lines goes with --history"),
            (["--history", "-n", "0"], "invalid -n '0'"),
            (["--history", "true"], "take no command"),
            (["--memory-metric", "vss", "true"], "expected rss or pss"),
            (["--memory-action", "all", "true"], "expected tree or largest"),
            (["-i", "0", "true"], "at least 0.01"),
        ] {
            let (status, _, stderr) = try sandbox.run(arguments)
            #expect(status == 125, "\(arguments)")
            #expect(stderr.contains(fragment) && stderr.split(separator: "\n").count == 1, "\(arguments): \(stderr)")
        }
    }

    /// `--machine` is one lane for every project of the user: a second project waits for it,
    /// while the same project's own lock stays free.
    @Test func theMachineLaneSpansProjects() throws {
        let sandbox = try Sandbox()
        let job = try jobScript(sandbox)
        let hold = sandbox.fifo("hold")
        let holder = try sandbox.seqexec(["-q", "--machine", job, "heavy", hold])
        #expect(waitUntil { sandbox.lines("order") == ["heavy"] })
        let other = sandbox.root + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let (blocked, _, stderr) = try sandbox.run(["--machine", "-p", other, "-w", "0.3", "true"])
        #expect(blocked == 75, "\(stderr)")
        #expect(stderr.contains("waiting for '\(job) heavy \(hold)'"), "\(stderr)")
        let (free, _, _) = try sandbox.run(["-p", other, "true"])
        #expect(free == 0, "the project lock is separate")
        let (status, text, _) = try sandbox.run(["--machine", "--status"])
        #expect(status == 0 && text.contains("(machine-wide)") && text.contains("seq-exec-machine"), "\(text)")
        sandbox.release(hold)
        #expect(holder.wait() == 0)
    }
}
