import Foundation
import Glibc
import SeqSystem
import Testing

/// Mutual exclusion that no command can defeat: the lock is kept by seqexec's supervising
/// child, an ancestor and subreaper of the whole tree, not only by descriptors the command
/// inherits and may close.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct LivenessTests {
    /// The issue's repro: a command that closes every inherited descriptor, then its seqexec
    /// is SIGKILLed. The next command still waits for it.
    @Test func aCommandThatClosesItsDescriptorsKeepsTheLockAfterSeqexecIsKilled() throws {
        let sandbox = try Sandbox()
        let marks = sandbox.path("marks")
        let holder = try sandbox.seqexec(["-q", "--", "bash", "-c", """
            for f in $(ls /proc/$$/fd); do [ $f -gt 2 ] && eval "exec $f>&-"; done 2>/dev/null
            echo A-start >> "\(marks)"; sleep 2; echo A-end >> "\(marks)"
            """])
        #expect(waitUntil { sandbox.lines("marks") == ["A-start"] })
        holder.signal(SIGKILL)
        #expect(holder.wait(5) == 137)
        let (status, out, _) = try sandbox.run(["-w", "0.5", "--", "sh", "-c", "echo B >> \"\(marks)\""])
        #expect(status == 75, "B gave up waiting: \(out)")
        let status2 = try sandbox.seqexec(["--status"])
        #expect(status2.wait() == 0)
        #expect(status2.stdout.contains("SEQEXEC GONE: its supervisor pid"), "\(status2.stdout)")
        let after = try sandbox.seqexec(["-q", "--", "sh", "-c", "echo B >> \"\(marks)\""])
        #expect(after.wait(20) == 0)
        #expect(sandbox.lines("marks") == ["A-start", "A-end", "B"])
        // The supervisor saw the run to its end and recorded it.
        #expect(sandbox.history.contains { ($0["command"] as? String)?.hasPrefix("bash") == true && $0["ended"] as? String == "exit" },
                "\(sandbox.history)")
        #expect(sandbox.stateIsClean)
    }

    /// A harness SIGKILLs the holder's seqexec and its supervisor by pid: the command runs on
    /// unsupervised and keeps the lock. --status says so; its recorded deadline still holds,
    /// so the next waiter ends its tree once past it and goes on, and the lost run gets its
    /// history line from the process that clears its claim.
    @Test func anUnsupervisedHolderPastItsDeadlineIsEndedByTheNextWaiter() throws {
        let sandbox = try Sandbox()
        let holder = try sandbox.seqexec(["-q", "-t", "1", "--kill-grace", "0.5", "--", "sh", "-c",
            "echo $$ > \"\(sandbox.path("cmdpid"))\"; trap '' TERM; while :; do sleep 0.05; done"])
        #expect(waitUntil { Int32(sandbox.read("cmdpid").trimmingCharacters(in: .whitespacesAndNewlines)) != nil })
        let command = try #require(Int32(sandbox.read("cmdpid").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(command)
        let (_, json, _) = try sandbox.run(["--status", "--json"])
        let status = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let record = try #require((status["holders"] as? [[String: Any]])?.first)
        let supervisor = try #require(record["supervisor_pid"] as? Int)
        #expect(record["deadline"] is String, "the deadline is in the record: \(record)")
        // Supervisor first, then the front: nothing of seqexec is left, the command runs on.
        kill(Int32(supervisor), SIGKILL)
        holder.signal(SIGKILL)
        #expect(holder.wait(5) == 137)
        #expect(sandbox.isAlive(command))
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("runs unsupervised (seqexec and supervisor killed), holding the lock; its deadline"), "\(text)")
        // The next caller waits, then ends the tree past the deadline (1 s and the holder's
        // 0.5 s grace; SIGTERM is ignored, so SIGKILL after the waiter's own 0.5 s grace).
        let next = try sandbox.seqexec(["--kill-grace", "0.5", "--", "sh", "-c", "echo next > \"\(sandbox.path("next"))\""])
        #expect(next.wait(30) == 0, "\(next.stderr)")
        #expect(sandbox.read("next") == "next\n")
        #expect(!sandbox.isAlive(command))
        #expect(next.stderr.contains("ran unsupervised (its seqexec, pid \(holder.pid), and supervisor were killed) past its deadline"), "\(next.stderr)")
        #expect(next.stderr.contains("its run is recorded as holder_killed"), "\(next.stderr)")
        let lost = sandbox.history.first { $0["ended"] as? String == "holder_killed" }
        #expect(lost?["pid"] as? Int == Int(holder.pid) && lost?["exit_status"] as? Int == 137, "\(sandbox.history)")
        #expect(sandbox.stateIsClean)
    }

    /// The same with Python's closerange (what close_fds does), and a grandchild that closes
    /// its descriptors too and outlives its parent: it is ended as a leftover before the lock
    /// goes, so the next command never runs beside it.
    @Test func closefromInATreeKeepsTheLockUntilTheLastProcessIsGone() throws {
        let sandbox = try Sandbox()
        let script = try sandbox.script("closer.py", """
            import os, sys, time
            os.closerange(3, 65536)
            if os.fork() == 0:
                os.closerange(3, 65536)
                open(sys.argv[1] + ".pid", "w").write(str(os.getpid()))
                time.sleep(30)
                os._exit(0)
            while not os.path.exists(sys.argv[1] + ".pid"):
                time.sleep(0.01)
            open(sys.argv[1], "a").write("parent-end\\n")
            time.sleep(0.5)
            """, interpreter: "/usr/bin/env python3")
        let marks = sandbox.path("marks")
        let holder = try sandbox.seqexec(["-q", script, marks])
        #expect(waitUntil { sandbox.lines("marks") == ["parent-end"] })
        let grandchild = try #require(Int32(sandbox.read("marks.pid")))
        sandbox.extraPids.append(grandchild)
        holder.signal(SIGKILL)
        let next = try sandbox.seqexec(["-q", "--", "sh", "-c", "kill -0 \(grandchild) 2>/dev/null && echo overlap >> \"\(marks)\"; echo next >> \"\(marks)\""])
        #expect(next.wait(20) == 0)
        #expect(sandbox.lines("marks") == ["parent-end", "next"])
        #expect(!sandbox.isAlive(grandchild))
    }

    /// Kill-all storms against commands that ignore SIGTERM, close their descriptors and
    /// leave a grandchild: none of them runs beside the next command (a flock on a marker
    /// that every command and its grandchild hold says so).
    @Test func killAllStormsLeaveNoOverlap() throws {
        let sandbox = try Sandbox()
        let script = try sandbox.script("stubborn.py", """
            import fcntl, os, signal, sys, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            marker = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(marker, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                open(sys.argv[2], "a").write("overlap\\n")
            keep = set([0, 1, 2, marker])
            for fd in range(3, 1024):
                if fd not in keep:
                    try: os.close(fd)
                    except OSError: pass
            if os.fork() == 0:
                time.sleep(float(sys.argv[3]) * 2)
                os._exit(0)
            open(sys.argv[2], "a").write("ran\\n")
            time.sleep(float(sys.argv[3]))
            """, interpreter: "/usr/bin/env python3")
        let marker = sandbox.path("marker")
        let log = sandbox.path("log")
        var storms = 0
        for _ in 0..<20 {
            var clients = try (0..<3).map { _ in try sandbox.seqexec(["-q", script, marker, log, "0.4"]) }
            #expect(waitUntil(10) { sandbox.lines("log").count > storms * 2 })
            // More clients arrive while the storm rages: one may take the lock between its rounds.
            let killAll = try sandbox.seqexec(["--kill-all", "--kill-grace", "0.1"])
            for _ in 0..<3 { clients.append(try sandbox.seqexec(["-q", script, marker, log, "0.4"])) }
            #expect(killAll.wait(30) == 0, "\(killAll.stderr)")
            for client in clients { #expect(client.wait(10) != nil) }
            // At once after the storm: the next command must not meet a leftover.
            let next = try sandbox.seqexec(["-q", script, marker, log, "0.01"])
            #expect(next.wait(20) == 0)
            storms += 1
        }
        let overlaps = sandbox.lines("log").filter { $0 == "overlap" }.count
        print("kill-all storms: \(storms), overlaps: \(overlaps), commands run: \(sandbox.lines("log").filter { $0 == "ran" }.count)")
        #expect(overlaps == 0)
        #expect(waitUntil(10) { sandbox.stateIsClean })
    }

    /// A stopped holder is flagged in --status.
    @Test func statusFlagsAStoppedCommand() throws {
        let sandbox = try Sandbox()
        let holder = try sandbox.seqexec(["-q", "--", "sh", "-c", "echo $$ > \"\(sandbox.path("pid"))\"; exec sleep 30"])
        #expect(waitUntil { !sandbox.read("pid").isEmpty })
        let pid = try #require(Int32(sandbox.read("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(pid)
        #expect(waitUntil { (try? ProcStat.read(pid))?.command == "sleep" })
        kill(pid, SIGSTOP)
        let (_, out, _) = try sandbox.run(["--status"])
        #expect(out.contains("STOPPED: pid \(pid) is stopped"), "\(out)")
        kill(pid, SIGCONT)
        holder.signal(SIGTERM)
        #expect(holder.wait(10) != nil)
    }

    /// The supervisor alone SIGKILLed: the front says so at once, naming the command that
    /// runs on unsupervised, exits 125 without claiming the command ended, and the lock is
    /// still the command's.
    @Test func aKilledSupervisorIsNamedByTheFrontAndTheCommandKeepsTheLock() throws {
        let sandbox = try Sandbox()
        let marks = sandbox.path("marks")
        let go = sandbox.path("go")
        let holder = try sandbox.seqexec(["--", "sh", "-c", "echo A-start >> '\(marks)'; while [ ! -e '\(go)' ]; do sleep 0.02; done; echo A-end >> '\(marks)'"])
        #expect(waitUntil { sandbox.lines("marks") == ["A-start"] })
        // The supervisor names the command in the owner record once it has started it, which
        // may be just after the command's first line: wait for the record to say so.
        var owner = ""
        func field(_ name: String) -> Int32? {
            owner.split(separator: "\n").first { $0.hasPrefix(name + "=") }.flatMap { Int32($0.dropFirst(name.count + 1)) }
        }
        #expect(waitUntil {
            owner = sandbox.stateDirectory("seq-exec-").map { (try? String(contentsOfFile: $0 + "/executor.lock/owner", encoding: .utf8)) ?? "" } ?? ""
            return field("child") != nil
        }, "the owner record names the command: \(owner)")
        let supervisor = try #require(field("supervisor"))
        let command = try #require(field("child"))
        sandbox.extraPids += [command]
        #expect(kill(supervisor, SIGKILL) == 0)
        #expect(holder.wait(10) == 125)
        #expect(holder.stderr.contains("supervisor pid \(supervisor) was killed") && holder.stderr.contains("(pid \(command)) runs on unsupervised, holding the lock"),
                "\(holder.stderr)")
        #expect(sandbox.isAlive(command) && sandbox.lines("marks") == ["A-start"], "the command runs on")
        let (status, _, _) = try sandbox.run(["-w", "0.3", "--", "sh", "-c", "echo B >> '\(marks)'"])
        #expect(status == 75, "the lock is still the command's")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(waitUntil { !sandbox.isAlive(command) })
        let after = try sandbox.seqexec(["-q", "--", "sh", "-c", "echo B >> '\(marks)'"])
        #expect(after.wait(20) == 0)
        #expect(sandbox.lines("marks") == ["A-start", "A-end", "B"])
    }

    /// The issue's repro: 15 waiters behind a holder, then --kill-all. The door closes first:
    /// no queued command starts, every process gets its SIGTERM at once, and the report says
    /// which never started.
    @Test func killAllClosesTheDoorBeforeAnyQueuedCommandCanStart() throws {
        let sandbox = try Sandbox()
        let log = sandbox.path("started")
        // The holder finishes its work the moment the kill-all begins (its mark appears): the
        // lock goes free while the waiters are still there.
        let holder = try sandbox.seqexec(["-q", "sh", "-c", "echo holder >> '\(log)'; until ls '\(sandbox.state)'/seq-exec-*/kill-all.txt >/dev/null 2>&1; do sleep 0.005; done"])
        #expect(waitUntil { sandbox.lines("started") == ["holder"] })
        let waiters = try (0..<15).map { index in try sandbox.seqexec(["-q", "sh", "-c", "echo waiter-\(index) >> '\(log)'"]) }
        #expect(waitUntil { sandbox.queueLines.count == 15 })
        let (status, out, err) = try sandbox.run(["--kill-all"], seconds: 60)
        #expect(status == 0, "\(err)")
        for waiter in waiters { _ = waiter.wait(20) }
        _ = holder.wait(20)
        #expect(sandbox.lines("started") == ["holder"], "a queued command started: \(sandbox.read("started"))")
        #expect(out.components(separatedBy: "(never started)").count - 1 >= 15, "\(out)")
        #expect(!FileManager.default.fileExists(atPath: (sandbox.projectState ?? "") + "/kill-all.door"), "the door opens again")
        // After it, the project runs again.
        #expect(try sandbox.run(["-q", "true"]).0 == 0)
    }

    /// The issue's repro: the command unlocks the owner record it inherited (`flock -u`). The
    /// supervisor's own lock, which no command inherits, keeps the next command out until the
    /// first has ended, and the first is recorded as it ended, not as holder_killed.
    @Test(.enabled(if: commandOnPath("flock"), "needs flock(1) (util-linux)"))
    func aCommandThatUnlocksItsInheritedRecordDoesNotLetTheNextIn() throws {
        let sandbox = try Sandbox()
        let marks = sandbox.path("marks")
        let go = sandbox.path("go")
        let holder = try sandbox.seqexec(["-q", "--", "sh", "-c", """
            for f in /proc/$$/fd/*; do case $(readlink $f) in */owner) flock -u ${f##*/};; esac; done
            echo A-unlocked >> "\(marks)"; while [ ! -e "\(go)" ]; do sleep 0.02; done; echo A-end >> "\(marks)"
            """])
        #expect(waitUntil { sandbox.lines("marks") == ["A-unlocked"] })
        let (status, _, _) = try sandbox.run(["-w", "0.5", "--", "sh", "-c", "echo B >> \"\(marks)\""])
        #expect(status == 75, "B waited and gave up: the lock is still A's")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(holder.wait(20) == 0)
        let after = try sandbox.seqexec(["-q", "--", "sh", "-c", "echo B >> \"\(marks)\""])
        #expect(after.wait(20) == 0)
        #expect(sandbox.lines("marks") == ["A-unlocked", "A-end", "B"], "\(sandbox.read("marks"))")
        #expect(sandbox.history.contains { ($0["command"] as? String)?.hasPrefix("sh") == true && $0["ended"] as? String == "exit" },
                "A is recorded as it ended: \(sandbox.history)")
        #expect(!sandbox.history.contains { $0["ended"] as? String == "holder_killed" }, "\(sandbox.history)")
    }

    /// The issue's repro: a holder inside a pid namespace (`unshare -pf --mount-proc`). Its
    /// record's pids are that namespace's; from outside it is judged by its flocks, never
    /// reported gone, waited for, and ended by --kill-all (found by what holds its lock). A
    /// waiter inside another namespace keeps its place ahead of one outside.
    @Test func aHolderInsideAPidNamespaceIsJudgedByItsLocksNotItsPids() throws {
        let sandbox = try Sandbox()
        let unshare = ["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let namespace = geteuid() == 0 ? ["--pid", "--fork", "--mount-proc", "--kill-child"]
            : ["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child"]
        guard let unshare, (try? sandbox.start(unshare, namespace + ["/bin/true"]).wait(10)) == 0 else {
            print("skipped: aHolderInsideAPidNamespaceIsJudgedByItsLocksNotItsPids needs unshare(1) (util-linux) and pid namespaces")
            return
        }
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        let holder = try sandbox.start(unshare, namespace + [seqexecPath, "-q", "sh", "-c", "echo A >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.lines("order.log") == ["A"] })
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("(pids of another pid namespace, supervised)") && !text.contains("GONE"), "\(text)")
        let inside = try sandbox.start(unshare, namespace + [seqexecPath, "-q", "sh", "-c", "echo B >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let outside = try sandbox.seqexec(["-q", "sh", "-c", "echo C >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 2 })
        let (gaveUp, _, _) = try sandbox.run(["-q", "-w", "0.3", "true"])
        #expect(gaveUp == 75, "the holder in the namespace holds the lock")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(holder.wait(20) == 0 && inside.wait(20) == 0 && outside.wait(20) == 0)
        #expect(sandbox.lines("order.log") == ["A", "B", "C"], "\(sandbox.read("order.log"))")

        // --kill-all from outside ends a holder inside, found by the locks it holds.
        try? FileManager.default.removeItem(atPath: go)
        let ended = try sandbox.start(unshare, namespace + [seqexecPath, "-q", "sh", "-c", "echo D >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.lines("order.log").last == "D" })
        let (killed, out, err) = try sandbox.run(["--kill-all"], seconds: 60)
        #expect(killed == 0 && out.contains("seqexec: ended "), "\(out)\(err)")
        #expect(ended.wait(20) != nil, "the run in the namespace ended")
        let (_, after, _) = try sandbox.run(["--status"])
        #expect(sandbox.stateIsClean, "\(after)")
    }
}
