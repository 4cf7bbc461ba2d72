import Foundation
import Glibc
import SeqSystem
import Testing

/// Runs handed to the guard with --submit outlive their caller: the caller's time limit
/// (an agent tool's 60 s) cannot take their place, and --wait gives the run's own status.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SubmitTests {
    /// `seqexec --submit ARGS` to completion: the id it printed.
    func submit(_ sandbox: Sandbox, _ arguments: [String]) throws -> String {
        let child = try sandbox.seqexec(["--submit"] + arguments)
        let status = child.wait()
        try #require(status == 0, "submit: \(child.stderr)")
        return child.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func runs(_ sandbox: Sandbox) throws -> [[String: Any]] {
        let (_, text, _) = try sandbox.run(["--runs", "--json"])
        return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]) ?? []
    }

    func state(_ sandbox: Sandbox, _ id: String) throws -> [String: Any]? {
        try runs(sandbox).first { $0["id"] as? String == id }
    }

    @Test func aSubmittedRunKeepsItsPlaceWhileItsWaitersAreKilled() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let id = try submit(sandbox, ["-q", "sh", "-c", "\(job) submitted && echo 'the output' && exit 7"])
        #expect(try state(sandbox, id)?["state"] as? String == "queued")
        #expect(try state(sandbox, id)?["position"] as? Int == 1)
        // Three callers whose tool timed out, one after another: each killed while it follows.
        for _ in 1...3 {
            let waiter = try sandbox.seqexec(["--wait", id])
            // Following: it has the run's log open.
            #expect(waitUntil {
                ((try? FileSystem.contents(ofDirectory: "/proc/\(waiter.pid)/fd")) ?? []).contains { fd in
                    (try? FileSystem.readLink("/proc/\(waiter.pid)/fd/\(fd)"))?.hasSuffix("/\(id).log") == true
                }
            })
            waiter.signal(SIGKILL)
            #expect(waiter.wait() == 137)
            #expect(try state(sandbox, id)?["position"] as? Int == 1, "still first in line")
        }
        let last = try sandbox.seqexec(["--wait", id])
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        #expect(last.wait() == 7, "\(last.stderr)")
        #expect(last.stdout == "the output\n")
        #expect(sandbox.lines("order") == ["holder", "submitted"], "ran exactly once, after the holder")
        let ended = try state(sandbox, id)
        #expect(ended?["state"] as? String == "ended" && ended?["exit_status"] as? Int == 7)
        // Waiting again later gives the same output and status.
        let again = try sandbox.seqexec(["--wait", id])
        #expect(again.wait() == 7 && again.stdout == "the output\n")
        #expect(sandbox.stateIsClean)
    }

    /// Four agents whose tool gives up after 3 s submit a 5 s job each, then call --wait
    /// until it no longer times out: every job runs once, in submit order.
    @Test func agentsWithAShortToolTimeoutGetEveryRunDoneInSubmitOrder() throws {
        let sandbox = try Sandbox()
        let job = try jobScript(sandbox)
        let agent = try sandbox.script("agent.sh", """
        id=$(seqexec --submit -q -- "$1" "$2" "" 5) || exit 90
        echo "$id" > "$2.id"
        tries=0
        while :; do
            tries=$((tries + 1))
            timeout -s KILL 3 seqexec --wait "$id" > "$2.out"
            status=$?
            [ "$status" -ne 137 ] && break
        done
        echo "$status $tries" > "$2.status"
        """)
        var agents: [Child] = []
        for index in 1...4 {
            agents.append(try sandbox.start(agent, [job, "agent\(index)"], environment: sandbox.toolsOnPath))
            // Submit order is the order their ids exist: the next agent starts after that.
            #expect(waitUntil { FileManager.default.fileExists(atPath: sandbox.path("agent\(index).id")) })
        }
        for agent in agents { #expect(agent.wait(60) == 0, "\(agent.stderr)") }
        #expect(sandbox.lines("order") == ["agent1", "agent2", "agent3", "agent4"])
        #expect(sandbox.lines("done") == ["agent1", "agent2", "agent3", "agent4"])
        #expect(sandbox.read("overlap") == "")
        var retried = 0
        for index in 1...4 {
            let fields = sandbox.read("agent\(index).status").split(whereSeparator: \.isWhitespace)
            #expect(fields.first == "0", "agent \(index): \(fields)")
            retried += (fields.last.flatMap { Int($0) } ?? 1) - 1
        }
        print("agents: 4 runs of 5 s behind a 3 s tool limit: 4 done in submit order, \(retried) waits timed out and were retried")
        #expect(retried >= 4, "each agent outlived at least one tool timeout")
    }

    @Test func cancelEndsAQueuedRunAndARunningOne() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let queued = try submit(sandbox, ["-q", job, "queued"])
        let (status, text, err) = try sandbox.run(["--cancel", queued])
        #expect(status == 0 && text.contains("cancelled run \(queued) (it was queued)"), "\(text) \(err)")
        #expect(sandbox.queueLines.isEmpty)
        let wait = try sandbox.seqexec(["--wait", queued])
        #expect(wait.wait() == 143)
        sandbox.release(hold)
        #expect(holder.wait() == 0)

        let running = try submit(sandbox, ["-q", "--kill-grace", "1", "sh", "-c", "trap '' TERM; echo started > \(sandbox.path("started")); while :; do sleep 0.05; done"])
        #expect(waitUntil { sandbox.read("started") == "started\n" })
        let (ended, endedText, _) = try sandbox.run(["--cancel", running])
        #expect(ended == 0 && endedText.contains("(it was running)"), "\(endedText)")
        let after = try state(sandbox, running)
        #expect(after?["state"] as? String == "ended" && after?["exit_status"] as? Int == 137, "SIGTERM ignored: SIGKILL after the grace")
        #expect(sandbox.lines("order") == ["holder"], "the queued run never ran")
        #expect(sandbox.stateIsClean)
    }

    @Test func waitGivesUpWithSeventyFiveAndSaysWhereTheRunIs() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let id = try submit(sandbox, ["-q", job, "later"])
        let (status, _, err) = try sandbox.run(["--wait", id, "-w", "0.3"])
        #expect(status == 75)
        #expect(err == "seqexec: run \(id) is still queued, position 1 of 1; wait again with 'seqexec --wait \(id)'\n", "\(err)")
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        let (done, _, _) = try sandbox.run(["--wait", id])
        #expect(done == 0)
    }

    /// An ending that is not the command's own gets its line: a waiter ended by --kill-all
    /// says who sent the signal and that its command was not run, even under -q.
    @Test func aWaiterEndedByKillAllSaysWhoAndThatNothingRan() throws {
        let sandbox = try Sandbox()
        let (job, _, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec(["-q", job, "waiter"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let (status, _, _) = try sandbox.run(["-q", "--kill-all"])
        #expect(status == 0)
        #expect(waiter.wait() == 143)
        #expect(waiter.stderr.contains("interrupted by SIGTERM from pid ") && waiter.stderr.contains("--kill-all')")
                && waiter.stderr.hasSuffix("while waiting; '\(job) waiter' was not run\n"), "\(waiter.stderr)")
        #expect(sandbox.lines("order") == ["holder"])
        // The holder's caller is told who ended its command.
        #expect(holder.wait() == 143)
        #expect(holder.stderr.contains("' was ended (SIGTERM) by '") && holder.stderr.contains("--kill-all', pid "), "\(holder.stderr)")
    }

    @Test func aCommandThatCannotRunIsRefusedBeforeItQueues() throws {
        let sandbox = try Sandbox()
        let (missing, _, missingErr) = try sandbox.run(["--submit", "no-such-command-here"])
        #expect(missing == 127 && missingErr.contains("'no-such-command-here' not found on PATH"), "\(missingErr)")
        let plain = try sandbox.write("plain.txt", "not a program\n")
        let (denied, _, deniedErr) = try sandbox.run(["--submit", plain])
        #expect(denied == 126 && deniedErr.contains("cannot be executed"), "\(deniedErr)")
        #expect(try runs(sandbox).isEmpty)
        let (unknown, _, unknownErr) = try sandbox.run(["--wait", "1-abcdef"])
        #expect(unknown == 125 && unknownErr.contains("no submitted run '1-abcdef'"))
        let (both, _, bothErr) = try sandbox.run(["--status", "--kill-all"])
        #expect(both == 125 && bothErr == "seqexec: --status and --kill-all go alone; give one\n", "\(bothErr)")
    }

    /// `--runs` lists by submission, not by the id's random suffix: six runs queued in one
    /// second list in the order they were submitted.
    @Test(.timeLimit(.minutes(1))) func runsAreListedInTheOrderTheyWereSubmitted() throws {
        let sandbox = try Sandbox()
        let go = sandbox.path("go")
        let holder = try sandbox.seqexec(["-q", "sh", "-c", "while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.projectState.map { FileManager.default.fileExists(atPath: $0 + "/executor.lock/owner") } ?? false })
        var ids: [String] = []
        for _ in 0..<6 { ids.append(try submit(sandbox, ["-q", "true"])) }
        #expect(try runs(sandbox).compactMap { $0["id"] as? String } == ids)
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(holder.wait() == 0)
        for id in ids { #expect(try sandbox.run(["--wait", id]).0 == 0) }
        #expect(try runs(sandbox).compactMap { $0["id"] as? String } == ids, "still in submission order once ended")
    }

    /// An agent's tool, a hook or a make recipe that runs under seqexec submits work: the
    /// run outlives the guarded command that submitted it (no leftover of it, no token of
    /// it), queues behind it, and runs to its end with its result recorded.
    @Test(.timeLimit(.minutes(1))) func aRunSubmittedFromInsideAGuardedCommandOutlivesIt() throws {
        let sandbox = try Sandbox()
        let done = sandbox.path("done")
        let idFile = sandbox.path("id")
        let submitter = try sandbox.script("submitter", """
            "$1" --submit -q -- sh -c 'sleep 0.3; echo done > "$0"' "$2" > "$3"
            """)
        let outer = try sandbox.seqexec(["-q", submitter, seqexecPath, done, idFile])
        #expect(outer.wait(20) == 0, "\(outer.stderr)")
        let id = sandbox.read("id").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!id.isEmpty)
        let (status, _, err) = try sandbox.run(["--wait", id], seconds: 30)
        #expect(status == 0, "\(err)")
        #expect(sandbox.read("done") == "done\n")
        let run = try state(sandbox, id)
        #expect(run?["state"] as? String == "ended" && run?["exit_status"] as? Int == 0, "\(run ?? [:])")
        #expect(!outer.stderr.contains("leftover"), "\(outer.stderr)")
    }
}
