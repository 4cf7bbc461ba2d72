import Foundation
import Glibc
import Testing

@Suite(.serialized, .timeLimit(.minutes(3)))
struct StateAndControlTests {
    @Test func unsafeStateIsRefusedWithOneLine() throws {
        let sandbox = try Sandbox()
        // Learn the state directory's name, then replace it with a symlink.
        #expect(try sandbox.run(["true"]).0 == 0)
        let dir = try #require(sandbox.projectState)
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: sandbox.root + "/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir, withDestinationPath: sandbox.root + "/elsewhere")
        let (status, stdout, stderr) = try sandbox.run(["echo", "ran"])
        #expect(status == 125)
        #expect(stdout == "")
        #expect(stderr.contains(dir) && stderr.contains("symlink"))
        #expect(stderr.split(separator: "\n").count == 1)

        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        chmod(dir, 0o777)
        let (open, _, openError) = try sandbox.run(["echo", "ran"])
        #expect(open == 125)
        #expect(openError.contains("chmod 700"))
    }

    @Test func garbageStateIsReportedOnceAndSurvived() throws {
        let sandbox = try Sandbox()
        #expect(try sandbox.run(["true"]).0 == 0)
        let dir = try #require(sandbox.projectState)
        try "garbage line\n99999:notatime:x\n\u{0}\u{1}\u{2}\n".write(toFile: dir + "/queue.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/executor.lock", withIntermediateDirectories: false)
        try "pid=1\nstart=".write(toFile: dir + "/executor.lock/owner", atomically: true, encoding: .utf8)
        let (status, stdout, stderr) = try sandbox.run(["echo", "survived"], seconds: 20)
        #expect(status == 0)
        #expect(stdout == "survived\n")
        #expect(stderr.contains("removed stale lock"))
        #expect(stderr.components(separatedBy: "malformed line").count - 1 == 3)
        #expect(sandbox.stateIsClean)
        // Reported once: a second run finds nothing left to report.
        let (again, _, quiet) = try sandbox.run(["true"])
        #expect(again == 0 && quiet == "")
    }

    @Test func killAllEndsHolderTreeAndWaitersButSparesASameNamedBystander() throws {
        let sandbox = try Sandbox()
        let bystander = try sandbox.start("/bin/sleep", ["300"])
        let script = try sandbox.script("tree.sh", """
        sleep 300 &
        echo $! > "\(sandbox.project)/grandchild"
        echo ready > "\(sandbox.project)/ready"
        wait
        """)
        let holder = try sandbox.seqexec(["--kill-grace", "1", script])
        #expect(waitUntil { sandbox.read("ready") == "ready\n" })
        let waiter = try sandbox.seqexec(["sleep", "300"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let grandchild = try #require(Int32(sandbox.read("grandchild").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(grandchild)

        let (status, stdout, stderr) = try sandbox.run(["--kill-all", "--kill-grace", "2"])
        #expect(status == 0, "\(stderr)")
        #expect(stdout.contains("ended holder pid \(holder.pid)"))
        #expect(stdout.contains("ended waiter pid \(waiter.pid)"))
        #expect(holder.wait(10) != nil)
        #expect(waiter.wait(10) != nil)
        #expect(waitUntil(10) { !sandbox.isAlive(grandchild) })
        #expect(bystander.isRunning, "a process outside the recorded state survives")
        #expect(sandbox.stateIsClean)
        bystander.signal(SIGKILL)
    }

    @Test func killAllWithNothingRunning() throws {
        let sandbox = try Sandbox()
        let (status, stdout, _) = try sandbox.run(["--kill-all"])
        #expect(status == 0)
        #expect(stdout == "seqexec: nothing to end\n")
    }

    /// Every waiter has a typed reason: a slot (first in line, naming the holders), the queue
    /// (behind whom), or memory (its --min-available against MemAvailable).
    @Test func statusGivesEachWaiterItsReason() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let first = try sandbox.seqexec(["-q", job, "first"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let second = try sandbox.seqexec(["-q", job, "second"])
        #expect(waitUntil { sandbox.queueLines.count == 2 })
        func waiters() throws -> [[String: Any]] {
            let (_, stdout, _) = try sandbox.run(["--status", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
            return object["queue"] as? [[String: Any]] ?? []
        }
        let queue = try waiters()
        let slots = queue.first?["reason"] as? [String: Any]
        #expect(slots?["kind"] as? String == "slots")
        #expect((slots?["holders"] as? [[String: Any]])?.first?["pid"] as? Int == Int(holder.pid), "\(queue)")
        let behind = queue.last?["reason"] as? [String: Any]
        #expect(behind?["kind"] as? String == "queue" && (behind?["behind"] as? [String: Any])?["pid"] as? Int == Int(first.pid), "\(queue)")
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("for a slot, every one held: pid \(holder.pid)") && text.contains("behind pid \(first.pid)"), "\(text)")
        sandbox.release(hold)
        for child in [holder, first, second] { #expect(child.wait() == 0) }

        // Its turn, but the machine lacks the memory it asked for: it says so, first in line.
        let hungry = try sandbox.seqexec(["-q", "--min-available", "1073741824", "true"])
        #expect(waitUntil { (try? waiters().first?["reason"] as? [String: Any])?["kind"] as? String == "memory" })
        let memory = try waiters().first?["reason"] as? [String: Any]
        #expect(memory?["needed_mb"] as? Int == 1_073_741_824 && (memory?["available_mb"] as? Int ?? -1) >= 0, "\(String(describing: memory))")
        hungry.signal(SIGTERM)
        #expect(hungry.wait() == 143)
        #expect(sandbox.stateIsClean)
    }

    @Test func statusJSONShowsHolderAndQueueInOrder() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let first = try sandbox.seqexec(["-q", job, "first"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let second = try sandbox.seqexec(["-q", "--priority", "low", job, "second"])
        #expect(waitUntil { sandbox.queueLines.count == 2 })

        let (status, stdout, _) = try sandbox.run(["--status", "--json"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        #expect(object["project"] as? String == URL(fileURLWithPath: sandbox.project).resolvingSymlinksInPath().path)
        #expect((object["hash"] as? String)?.count == 40)
        let holders = try #require(object["holders"] as? [[String: Any]])
        #expect(holders.count == 1)
        #expect(holders.first?["pid"] as? Int == Int(holder.pid))
        #expect(holders.first?["live"] as? Bool == true)
        #expect((holders.first?["command"] as? String)?.hasSuffix("holder \(hold)") == true)
        let queue = try #require(object["queue"] as? [[String: Any]])
        #expect(queue.map { $0["pid"] as? Int } == [Int(first.pid), Int(second.pid)])
        #expect(queue.map { $0["position"] as? Int } == [1, 2])
        #expect(queue.last?["priority"] as? String == "low")
        #expect(queue.allSatisfy { $0["stale"] as? Bool == false })

        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("holder:   pid \(holder.pid)"))
        #expect(text.contains("queue:    2 waiting"))
        sandbox.release(hold)
        for child in [holder, first, second] { #expect(child.wait() == 0) }
    }

    @Test func statusFlagsStaleWaiters() throws {
        let sandbox = try Sandbox()
        #expect(try sandbox.run(["true"]).0 == 0)
        let dir = try #require(sandbox.projectState)
        // A waiter line whose process is long gone (start time 1 cannot match a live pid).
        try "\(getpid()):1.0:ghost:start=1:prio=normal\n".write(toFile: dir + "/queue.txt", atomically: true, encoding: .utf8)
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("'ghost'") && text.contains("STALE"))
        let (_, json, _) = try sandbox.run(["--status", "--json"])
        #expect(json.contains("\"stale\":true"))
    }
}

/// The repository root, found from this source file.
let packageRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
