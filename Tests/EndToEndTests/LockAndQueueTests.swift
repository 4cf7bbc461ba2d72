import Foundation
import Glibc
import SeqSystem
import Testing

/// A guarded job: fails loudly if another job of the project is inside at the same time,
/// records its label in `order`, and optionally blocks on a FIFO until the test releases it.
func jobScript(_ sandbox: Sandbox) throws -> String {
    try sandbox.script("job.sh", """
    P="\(sandbox.project)"
    mkdir "$P/inside" 2>/dev/null || echo "OVERLAP $1" >> "$P/overlap"
    echo "$1" >> "$P/order"
    echo $$ > "$P/pid-$1"
    if [ -n "$2" ]; then read line < "$2"; fi
    if [ -n "$3" ]; then sleep "$3"; fi
    rmdir "$P/inside"
    echo "$1" >> "$P/done"
    """)
}

/// A holder blocked on a FIFO until the test releases it, already running (with `options`,
/// such as `--lock NAME`, before its command).
func blockedHolder(_ sandbox: Sandbox, _ options: [String] = []) throws -> (job: String, hold: String, holder: Child) {
    let job = try jobScript(sandbox)
    let hold = sandbox.fifo("hold")
    let holder = try sandbox.seqexec(["-q"] + options + [job, "holder", hold])
    #expect(waitUntil { sandbox.lines("order") == ["holder"] })
    return (job, hold, holder)
}

@Suite(.serialized, .timeLimit(.minutes(3)))
struct LockAndQueueTests {
    @Test func thirtyTwoConcurrentClientsNeverOverlap() throws {
        let sandbox = try Sandbox()
        let job = try jobScript(sandbox)
        let clients = try (1...32).map { try sandbox.seqexec(["-q", job, "c\($0)", "", "0.01"]) }
        for client in clients { #expect(client.wait(120) == 0, "\(client.stderr)") }
        #expect(sandbox.read("overlap") == "")
        #expect(Set(sandbox.lines("order")).count == 32)
        #expect(sandbox.stateIsClean)
    }

    @Test func waitersStartInArrivalOrder() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        var waiters: [Child] = []
        for index in 1...20 {
            waiters.append(try sandbox.seqexec(["-q", job, "w\(index)"]))
            // Handshake: the next client starts only once this one's line is in the queue.
            #expect(waitUntil { sandbox.queueLines.count == index })
        }
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        for waiter in waiters { #expect(waiter.wait() == 0) }
        #expect(sandbox.lines("order") == ["holder"] + (1...20).map { "w\($0)" })
        #expect(sandbox.read("overlap") == "")
        #expect(sandbox.stateIsClean)
    }

    @Test func priorityComesBeforeArrival() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        var waiters: [Child] = []
        for (index, (label, priority)) in [("low", "low"), ("n1", "normal"), ("high", "high"), ("n2", "normal")].enumerated() {
            waiters.append(try sandbox.seqexec(["-q", "--priority", priority, job, label]))
            #expect(waitUntil { sandbox.queueLines.count == index + 1 })
        }
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        for waiter in waiters { #expect(waiter.wait() == 0, "\(waiter.stderr)") }
        #expect(sandbox.lines("order") == ["holder", "high", "n1", "n2", "low"])
    }

    @Test func slotsLetNRunAtOnceButNoMore() throws {
        let sandbox = try Sandbox()
        let script = try sandbox.script("slot.sh", """
        P="\(sandbox.project)"
        echo "$1" >> "$P/started"
        read line < "$P/hold-$1"
        """)
        let fifos = (1...3).map { sandbox.fifo("hold-s\($0)") }
        let clients = try (1...3).map { index -> Child in
            let client = try sandbox.seqexec(["-q", "--slots", "2", script, "s\(index)"])
            #expect(waitUntil { sandbox.lines("started").count + sandbox.queueLines.count == index })
            return client
        }
        #expect(waitUntil { sandbox.lines("started") == ["s1", "s2"] })
        #expect(sandbox.queueLines.count == 1)
        sandbox.release(fifos[0])
        #expect(clients[0].wait() == 0)
        #expect(waitUntil { sandbox.lines("started") == ["s1", "s2", "s3"] })
        sandbox.release(fifos[1])
        sandbox.release(fifos[2])
        for client in clients.dropFirst() { #expect(client.wait() == 0, "\(client.stderr)") }
        #expect(sandbox.stateIsClean)
    }

    @Test func holderSIGKILLedAloneKeepsTheLockUntilItsTreeEnds() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec(["-q", job, "waiter"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        holder.signal(SIGKILL)
        #expect(holder.wait() == 137)
        let commandPid = try #require(Int32(sandbox.read("pid-holder").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(commandPid)
        #expect(sandbox.isAlive(commandPid))
        // The orphaned command still holds the lock: a newcomer gives up, the waiter waits.
        let (probe, _, _) = try sandbox.run(["-q", "-w", "0.3", "true"])
        #expect(probe == 75)
        #expect(sandbox.lines("order") == ["holder"])
        let released = Date()
        sandbox.release(hold)
        #expect(waiter.wait() == 0)
        let takeover = Date().timeIntervalSince(released)
        #expect(takeover < 10, "takeover took \(takeover)s")
        #expect(sandbox.lines("order") == ["holder", "waiter"])
        #expect(sandbox.read("overlap") == "")
        #expect(sandbox.stateIsClean)
    }

    @Test func holderSIGKILLedWithItsTreeIsTakenOverWithoutCleanup() throws {
        let sandbox = try Sandbox()
        let (job, _, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec(["-q", job, "waiter"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let commandPid = try #require(Int32(sandbox.read("pid-holder").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(commandPid)
        try? FileManager.default.removeItem(atPath: sandbox.path("inside"))  // the killed job cannot clean it
        holder.signal(SIGKILL)
        kill(commandPid, SIGKILL)
        let killed = Date()
        #expect(waiter.wait() == 0)
        #expect(Date().timeIntervalSince(killed) < 10)
        #expect(sandbox.lines("order") == ["holder", "waiter"])
        // seqexec's supervisor outlived it: it saw the command killed, recorded the run and
        // let the lock go itself, so there was no stale lock to remove.
        #expect(!waiter.stderr.contains("removed stale lock"), "\(waiter.stderr)")
        #expect(sandbox.history.first?["ended"] as? String == "killed", "\(sandbox.history)")
        #expect(sandbox.stateIsClean)
    }

    @Test func waitersSIGKILLedArePrunedAndTheRestKeepTheirOrder() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        var waiters: [Child] = []
        for index in 1...5 {
            waiters.append(try sandbox.seqexec(["-q", job, "w\(index)"]))
            #expect(waitUntil { sandbox.queueLines.count == index })
        }
        waiters[0].signal(SIGKILL)
        waiters[3].signal(SIGKILL)
        #expect(waiters[0].wait() == 137 && waiters[3].wait() == 137)
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        for index in [1, 2, 4] { #expect(waiters[index].wait() == 0) }
        #expect(sandbox.lines("order") == ["holder", "w2", "w3", "w5"])
        #expect(sandbox.stateIsClean)
    }

    @Test func waitTimeoutGivesUpWithSeventyFiveAndRemovesItsLine() throws {
        let sandbox = try Sandbox()
        let (_, hold, holder) = try blockedHolder(sandbox)
        let (status, _, stderr) = try sandbox.run(["-w", "0.2", "echo", "never"])
        #expect(status == 75)
        #expect(stderr.contains("gave up after") && stderr.contains("'echo never' was not run"))
        #expect(sandbox.queueLines.isEmpty)
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        #expect(sandbox.stateIsClean)
    }

    @Test func randomKillsUnderLoadLeaveNothingBehind() throws {
        let sandbox = try Sandbox()
        let job = try sandbox.script("bg.sh", """
        P="\(sandbox.project)"
        mkdir "$P/inside" 2>/dev/null || echo "OVERLAP $1" >> "$P/overlap"
        sleep 0.3 &
        echo $! >> "$P/pids"
        echo $$ >> "$P/pids"
        echo "$1" >> "$P/order"
        rmdir "$P/inside"
        sleep 0.05
        """)
        var generator = SystemRandomNumberGenerator()
        let clients = try (1...16).map { try sandbox.seqexec(["-q", "--kill-grace", "0.5", job, "c\($0)"]) }
        var killed = Set<Int32>()
        // Each time a job starts, send a random signal to a random live client.
        var seen = 0
        while seen < 10, waitUntil(30, { sandbox.lines("order").count > seen || clients.allSatisfy { !$0.isRunning } }) {
            seen = sandbox.lines("order").count
            let live = clients.filter(\.isRunning)
            guard let victim = live.randomElement(using: &generator) else { break }
            victim.signal([SIGTERM, SIGINT, SIGKILL, SIGHUP].randomElement(using: &generator)!)
            killed.insert(victim.pid)
        }
        for client in clients { #expect(client.wait(60) != nil) }
        #expect(!killed.isEmpty)
        let pids = sandbox.lines("pids").compactMap { Int32($0) }
        sandbox.extraPids += pids
        // Jobs orphaned by a SIGKILLed seqexec end on their own; none may be left after that.
        #expect(waitUntil(20) { pids.allSatisfy { !sandbox.isAlive($0) } })
        // A client SIGKILLed last has nobody left to prune its line or claim: nothing live may
        // remain, and the next run clears what is stale.
        // The supervisor of a SIGKILLed client sees its job to the end and then lets go.
        var status = ""
        var holders: [[String: Any]] = []
        var waiters: [[String: Any]] = []
        #expect(waitUntil(20) {
            status = (try? sandbox.run(["--status", "--json"]).1) ?? ""
            let object = (try? JSONSerialization.jsonObject(with: Data(status.utf8))) as? [String: Any] ?? [:]
            holders = (object["holders"] as? [[String: Any]]) ?? []
            waiters = (object["queue"] as? [[String: Any]]) ?? []
            return holders.allSatisfy { $0["live"] as? Bool == false }
        })
        #expect(holders.allSatisfy { $0["live"] as? Bool == false }, "\(status)")
        #expect(waiters.allSatisfy { $0["stale"] as? Bool == true }, "\(status)")
        #expect(try sandbox.run(["-q", "true"]).0 == 0)
        #expect(sandbox.stateIsClean, "\(status)")
        #expect(sandbox.read("overlap") == "")
        // No file of a killed waiter or writer is left: waiter locks, temporary queue files.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: sandbox.projectState ?? "")) ?? []
        #expect(left.filter { $0.hasPrefix("waiter-") || $0.hasSuffix(".tmp") } == [], "\(left)")
    }

    /// The strictest claim wins: a holder that asked to be alone stays alone, even against a
    /// caller that would share (`--slots 2`); two that both share run together.
    @Test(.timeLimit(.minutes(1))) func aHolderThatAskedToBeAloneIsAloneWhateverSlotsTheNextAsks() throws {
        let sandbox = try Sandbox()
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        let alone = try sandbox.seqexec(["sh", "-c", "echo A-start >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done; echo A-end >> '\(log)'"])
        #expect(waitUntil { sandbox.read("order.log").contains("A-start") })
        let sharing = try sandbox.seqexec(["--slots", "2", "sh", "-c", "echo B-start >> '\(log)'; echo B-end >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 1 }, "the sharing caller waits")
        #expect(!sandbox.read("order.log").contains("B-start"))
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(alone.wait() == 0 && sharing.wait() == 0)
        #expect(sandbox.lines("order.log") == ["A-start", "A-end", "B-start", "B-end"], "\(sandbox.read("order.log"))")

        // Both sharing: the second starts beside the first.
        try? FileManager.default.removeItem(atPath: go)
        let first = try sandbox.seqexec(["--slots", "2", "sh", "-c", "echo C-start >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.read("order.log").contains("C-start") })
        let second = try sandbox.seqexec(["--slots", "2", "sh", "-c", "echo D-ran >> '\(log)'"])
        #expect(second.wait() == 0 && sandbox.read("order.log").contains("D-ran"), "ran beside C")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(first.wait() == 0)
    }

    /// A waiter stopped at the head of the line (Ctrl-Z: its front and supervisor stopped)
    /// keeps its place but does not stall the line: the next runs when the lock is free,
    /// --status flags it STOPPED, and once continued it runs in its turn.
    @Test(.timeLimit(.minutes(1))) func aStoppedWaiterDoesNotStallTheLine() throws {
        let sandbox = try Sandbox()
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        let first = try sandbox.seqexec(["-q", "sh", "-c", "echo A >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.lines("order.log") == ["A"] })
        let stopped = try sandbox.seqexec(["-q", "sh", "-c", "echo B >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let third = try sandbox.seqexec(["-q", "sh", "-c", "echo C >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 2 })
        // As a terminal's Ctrl-Z would: the waiter's front and its supervisor, stopped.
        let group = [stopped.pid] + Processes.descendants(of: [stopped.pid]).map(\.pid)
        for pid in group { kill(pid, SIGSTOP) }
        defer { for pid in group { kill(pid, SIGCONT) } }
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("STOPPED"), "\(text)")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(first.wait() == 0)
        #expect(third.wait(20) == 0, "the third ran while the second was stopped")
        #expect(sandbox.lines("order.log") == ["A", "C"], "\(sandbox.read("order.log"))")
        for pid in group { kill(pid, SIGCONT) }
        #expect(stopped.wait(20) == 0)
        #expect(sandbox.lines("order.log") == ["A", "C", "B"], "\(sandbox.read("order.log"))")
    }

    /// A waiter whose stderr takes nothing (a full pipe nobody reads, as `2>&1 | less` left
    /// unread, or Ctrl-S) at the head of the line: it never sits in write(2), it does not take
    /// its turn blocked, the line moves past it, --status flags it BLOCKED, and once the pipe
    /// is read it runs in its turn.
    @Test(.timeLimit(.minutes(1))) func aWaiterWhoseStderrIsBlockedDoesNotStallTheLine() throws {
        let sandbox = try Sandbox()
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        // A FIFO this test holds open for reading and writing, filled until it takes no more.
        let fifo = sandbox.path("stderr.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let pipe = open(fifo, O_RDWR | O_NONBLOCK)
        #expect(pipe >= 0)
        defer { close(pipe) }
        let page = [UInt8](repeating: 0x2E, count: 4096)
        var filled = 0
        while true {
            let n = page.withUnsafeBytes { Glibc.write(pipe, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            filled += n
        }
        #expect(filled >= 4096 && errno == EAGAIN, "the pipe is full")
        let first = try sandbox.seqexec(["-q", "sh", "-c", "echo A >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.lines("order.log") == ["A"] })
        let blocked = try sandbox.start("/bin/sh", ["-c", "exec 2>\"$0\"; exec \"$@\"", fifo, seqexecPath, "sh", "-c", "echo B >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let third = try sandbox.seqexec(["sh", "-c", "echo C >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 2 })
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(first.wait() == 0)
        #expect(third.wait(20) == 0, "the third ran while the second's stderr was blocked: \(third.stderr)")
        #expect(sandbox.lines("order.log") == ["A", "C"], "\(sandbox.read("order.log"))")
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("BLOCKED: its stderr takes nothing") && text.contains("for its stderr to take writes again"), "\(text)")
        #expect(blocked.isRunning, "it keeps its place while its stderr is full")
        // Read the pipe: the waiter's output moves, and it runs in its turn.
        var buffer = [UInt8](repeating: 0, count: 65536)
        var drained = ""
        #expect(waitUntil {
            let n = read(pipe, &buffer, buffer.count)
            if n > 0 { drained += String(decoding: buffer[..<n], as: UTF8.self).replacingOccurrences(of: ".", with: "") }
            return !blocked.isRunning
        })
        #expect(blocked.wait(20) == 0)
        #expect(sandbox.lines("order.log") == ["A", "C", "B"], "\(sandbox.read("order.log"))")
        #expect(sandbox.stateIsClean)
    }

    /// The same on a real terminal stopped with Ctrl-S (a pty with IXON): the waiter lets the
    /// line by; Ctrl-Q lets it run.
    @Test(.enabled(if: python3 != nil, "needs python3 for a pty"), .timeLimit(.minutes(1)))
    func aWaiterOnATerminalStoppedWithCtrlSDoesNotStallTheLine() throws {
        let sandbox = try Sandbox()
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        let first = try sandbox.seqexec(["-q", "sh", "-c", "echo A >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { sandbox.lines("order.log") == ["A"] })
        // The driver gives seqexec a pty, types Ctrl-S once seqexec has queued, waits for the
        // file `resume`, types Ctrl-Q, and reads the terminal until seqexec exits.
        let driver = sandbox.path("ctrls_driver.py")
        try """
        import os, pty, select, sys, time
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.argv[1], [sys.argv[1], "sh", "-c", "echo B >> " + sys.argv[2]])
        os.write(fd, b"\\x13")
        print("stopped", flush=True)
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.02)
        os.write(fd, b"\\x11")
        while True:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    if not os.read(fd, 4096):
                        break
                except OSError:
                    break
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
        """.write(toFile: driver, atomically: true, encoding: .utf8)
        let resume = sandbox.path("resume")
        let blocked = try sandbox.start(python3!, [driver, seqexecPath, log, resume])
        #expect(waitUntil { blocked.stdout.contains("stopped") && sandbox.queueLines.count == 1 })
        let third = try sandbox.seqexec(["sh", "-c", "echo C >> '\(log)'"])
        #expect(waitUntil { sandbox.queueLines.count == 2 })
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(first.wait() == 0)
        #expect(third.wait(20) == 0, "the third ran while the second's terminal was stopped: \(third.stderr)")
        #expect(sandbox.lines("order.log") == ["A", "C"], "\(sandbox.read("order.log"))")
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("BLOCKED"), "\(text)")
        _ = FileManager.default.createFile(atPath: resume, contents: nil)
        #expect(blocked.wait(20) == 0)
        #expect(blocked.stdout.hasSuffix("\n0\n"), "\(blocked.stdout)")
        #expect(sandbox.lines("order.log") == ["A", "C", "B"], "\(sandbox.read("order.log"))")
    }
}
