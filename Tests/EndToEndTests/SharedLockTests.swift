import Foundation
import Glibc
import SeqSystem
import Testing

/// `--lock NAME --store postgresql://…`: one line for a named resource across hosts, kept
/// in the suite's throwaway PostgreSQL server. Each "host" is a process tree of its own, with
/// its own --host name and its own local state directory; they share only the database.
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: farmDatabase != nil && commandOnPath("psql"),
                                                      "SEQPIPE_TEST_PG is not set (or psql is missing): the shared-lock tests need a PostgreSQL server; 'make test' starts one when it is installed"))
struct SharedLockTests {
    /// A schema of the test's own in the suite's database, dropped at the end, and hosts.
    final class Farm {
        let sandbox: Sandbox
        let schema: ThrowawaySchema
        var url: String { schema.url }

        init() throws {
            sandbox = try Sandbox()
            schema = try ThrowawaySchema(sandbox, prefix: "locks_")
        }

        /// `seqexec ARGS` on host `host`: its own name and local state, the shared store.
        func seqexec(_ arguments: [String], host: String, url: String? = nil) throws -> Child {
            let state = sandbox.root + "/state-" + host
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            return try sandbox.start(seqexecPath, arguments, environment: [
                "SEQEXEC_STATE_DIR": state, "SEQEXEC_HOST": host, "SEQEXEC_STORE": url ?? self.url,
            ])
        }

        /// `--status --json` of `lock`, as host `host` sees it.
        func status(_ lock: String, host: String = "observer") throws -> [String: Any] {
            let child = try seqexec(["--lock", lock, "--status", "--json"], host: host)
            try #require(child.wait(30) == 0, "\(child.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(child.stdout.utf8)) as? [String: Any])
        }

        func count(_ key: String, of lock: String) -> Int {
            ((try? status(lock))?[key] as? [Any])?.count ?? -1
        }

        /// A holder on host a, inside its command until `release` exists, and a waiter on
        /// host b behind it, both with `lease`; returns once the waiter is in the line.
        func holderAndWaiter(_ lock: String, lease: String, holderURL: String? = nil) throws -> (holder: Child, waiter: Child, log: String) {
            let job = try self.job()
            let log = sandbox.path("log")
            let holder = try seqexec(["--lock", lock, "--lease", lease, job, log, "a", sandbox.path("never")], host: "a", url: holderURL)
            #expect(waitUntil { sandbox.read("log").contains("start a") }, "\(holder.stderr)")
            let waiter = try seqexec(["--lock", lock, "--lease", lease, job, log, "b", ""], host: "b")
            #expect(waitUntil { count("queue", of: lock) == 1 }, "\(waiter.stderr)")
            return (holder, waiter, log)
        }

        /// A command that logs its start (label, fencing token) and end to `log`, one
        /// O_APPEND line each, holding the lock until `release` exists (or for `seconds`).
        func job() throws -> String {
            try sandbox.script("job.sh", """
            log=$1 label=$2 hold=$3
            trap 'echo "end $label" >> "$log"; exit 143' TERM
            echo "start $label $SEQEXEC_FENCE $(date +%s.%N)" >> "$log"
            echo $$ > "$log.$label.pid"
            if [ -n "$hold" ]; then while [ ! -e "$hold" ]; do sleep 0.02; done; else sleep 0.05; fi
            echo "end $label $(date +%s.%N)" >> "$log"
            """)
        }
    }

    /// 3 hosts × 10 runs of one lock: never two at once, each once, in the database's arrival
    /// order (the run ids it gave), with fencing tokens that grow with every hand-over.
    @Test func threeHostsTakeTurnsInTheDatabasesArrivalOrder() throws {
        let farm = try Farm()
        let job = try farm.job()
        let log = farm.sandbox.path("log")
        var runs: [(label: String, child: Child)] = []
        for index in 0..<10 {
            for host in ["a", "b", "c"] {
                let label = "\(host)\(index)"
                runs.append((label, try farm.seqexec(["-v", "--lock", "turns", "--lease", "3", job, log, label, ""], host: host)))
            }
        }
        for (label, child) in runs { #expect(child.wait(120) == 0, "\(label): \(child.stderr)") }
        // The database's arrival order: each run's id, from its verbose line.
        var idOf: [String: Int] = [:]
        for (label, child) in runs {
            let line = child.stderr.split(separator: "\n").first { $0.contains("as run ") }
            idOf[label] = line.flatMap { Int($0.split(separator: " ").last ?? "") }
        }
        let lines = farm.sandbox.lines("log")
        var started: [String] = []
        var fences: [Int] = []
        var overlaps = 0
        var running: String?
        for line in lines {
            let fields = line.split(separator: " ").map(String.init)
            if fields[0] == "start" {
                if running != nil { overlaps += 1 }
                running = fields[1]
                started.append(fields[1])
                fences.append(Int(fields[2]) ?? -1)
            } else {
                if running != fields[1] { overlaps += 1 }
                running = nil
            }
        }
        print("shared lock, 3 hosts x 10 runs: \(started.count) started, \(Set(started).count) distinct, \(overlaps) overlaps")
        #expect(started.count == 30 && Set(started).count == 30 && overlaps == 0, "\(lines)")
        #expect(started == started.sorted { (idOf[$0] ?? 0) < (idOf[$1] ?? 0) }, "start order \(started) is not the arrival order \(idOf)")
        #expect(fences == fences.sorted() && Set(fences).count == 30, "\(fences)")
        #expect(farm.count("holders", of: "turns") == 0 && farm.count("queue", of: "turns") == 0)
    }

    /// kill -9 of the holder's whole host (its seqexec, supervisor and command): the lock is
    /// the next host's within the lease and a second.
    @Test func aHostKilledWholeHandsTheLockOnWithinTheLease() throws {
        let farm = try Farm()
        let (holder, waiter, _) = try farm.holderAndWaiter("handoff", lease: "2")
        let killed = FarmTests.killTree(holder.pid)
        let killedAt = Date().timeIntervalSince1970
        #expect(waiter.wait(30) == 0, "\(waiter.stderr)")
        let start = farm.sandbox.lines("log").first { $0.hasPrefix("start b") }?.split(separator: " ").last.flatMap { Double($0) } ?? 0
        print("shared lock, kill -9 of a host: the next host started \(String(format: "%.2f", start - killedAt)) s after (lease 2 s)")
        #expect(start > killedAt && start - killedAt <= 3, "handed on after \(start - killedAt) s")
        #expect(killed.allSatisfy { !farm.sandbox.isAlive($0) })
    }

    /// kill -9 of the holder's supervisor: nothing renews the lease any more, so the front
    /// (the caller's process) ends the command's tree, before the next host may start; with the
    /// front killed first, the lease keeper does.
    @Test(arguments: [false, true]) func aKilledSupervisorsCommandEndsBeforeTheLeasePasses(frontKilledFirst: Bool) throws {
        let farm = try Farm()
        let (holder, waiter, _) = try farm.holderAndWaiter("orphan", lease: "3")
        let supervisor = try #require(Processes.descendants(of: [holder.pid]).first { $0.parent == holder.pid })
        farm.sandbox.extraPids += Processes.descendants(of: [holder.pid]).map(\.pid)
        if frontKilledFirst {
            holder.signal(SIGKILL)
            #expect(holder.wait(30) == 137)
        }
        kill(supervisor.pid, SIGKILL)
        if !frontKilledFirst {
            #expect(holder.wait(30) == 125 && holder.stderr.contains("no one renews the shared lock's lease"), "\(holder.stderr)")
        }
        #expect(waiter.wait(30) == 0, "\(waiter.stderr)")
        let lines = farm.sandbox.lines("log")
        #expect(lines.count == 4 && lines[1] == "end a" && lines[2].hasPrefix("start b"), "\(lines)")
        let commandPid = Int32(farm.sandbox.read("log.a.pid").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(commandPid > 0 && !farm.sandbox.isAlive(commandPid))
    }

    /// Chaos: 3 hosts × 8 runs of one lock while random SIGKILLs hit a run's front, its
    /// supervisor, both (the front first), its command or its whole host tree. Checked from the kernel, not from the
    /// guard: each command holds a flock(1) on a file of the test's while it runs (held by its
    /// tree until the last process is gone), taken with -n, so a second command at once is
    /// logged as an overlap. Invariants: no overlap, no run started twice, every run no kill
    /// touched done once with status 0, nothing left running, nothing left in the line.
    @Test func randomKillsOfEveryKindOfProcessNeverLetTwoRunAtOnce() throws {
        guard commandOnPath("flock") else {
            print("skipped: flock(1) is missing (the chaos test checks overlaps with it)")
            return
        }
        let farm = try Farm()
        let log = farm.sandbox.path("log")
        let job = try farm.sandbox.script("chaos-job.sh", """
        log=$1 label=$2 pause=$3
        flock -n -E 99 "$log.lock" sh -c 'echo "start $1 $SEQEXEC_FENCE" >> "$0"; sleep "$2"; echo "end $1" >> "$0"' "$log" "$label" "$pause"
        [ $? = 99 ] && echo "OVERLAP $label" >> "$log"
        exit 0
        """)
        var generator = SystemRandomNumberGenerator()
        var runs: [(label: String, child: Child)] = []
        for index in 0..<8 {
            for host in ["a", "b", "c"] {
                let pause = String(format: "%.2f", Double.random(in: 0.3...0.8, using: &generator))
                runs.append(("\(host)\(index)", try farm.seqexec(["--lock", "chaos", "--lease", "2", job, log, "\(host)\(index)", pause], host: host)))
            }
        }
        var touched: Set<String> = []
        var kills: [String: Int] = [:]
        var seen: Set<Int32> = []
        while runs.contains(where: { $0.child.isRunning }) {
            _ = waitUntil(Double.random(in: 0.4...1.0, using: &generator)) { false }
            // Every process of every run, as it is now: what must be gone at the end.
            seen.formUnion(Processes.descendants(of: Set(runs.filter { $0.child.isRunning }.map(\.child.pid))).map(\.pid))
            let live = runs.filter { $0.child.isRunning && !touched.contains($0.label) }
            // Half the kills go to the run whose command holds the lock (the hand-over is the risk).
            let holding = live.filter { run in Processes.descendants(of: [run.child.pid]).count >= 3 }
            guard let victim = (Bool.random(using: &generator) && !holding.isEmpty ? holding : live).randomElement(using: &generator) else { continue }
            let tree = Processes.descendants(of: [victim.child.pid])
            seen.formUnion(tree.map(\.pid))
            let supervisor = tree.first { $0.parent == victim.child.pid }
            let command = supervisor.flatMap { supervisor in tree.first { $0.parent == supervisor.pid } }
            let kind = ["front", "supervisor", "front+supervisor", "command", "host"].randomElement(using: &generator)!
            switch kind {
            case "front": kill(victim.child.pid, SIGKILL)
            case "supervisor": if let supervisor { kill(supervisor.pid, SIGKILL) } else { continue }
            case "front+supervisor":
                guard let supervisor else { continue }
                kill(victim.child.pid, SIGKILL)
                _ = victim.child.wait(5)
                kill(supervisor.pid, SIGKILL)
            case "command": if let command { kill(command.pid, SIGKILL) } else { continue }
            default: seen.formUnion(FarmTests.killTree(victim.child.pid))
            }
            touched.insert(victim.label)
            kills[kind, default: 0] += 1
        }
        let lines = farm.sandbox.lines("log")
        let started = lines.filter { $0.hasPrefix("start ") }.map { String($0.split(separator: " ")[1]) }
        let overlaps = lines.filter { $0.hasPrefix("OVERLAP") }
        let untouched = runs.filter { !touched.contains($0.label) }
        let untouchedDone = untouched.filter { run in run.child.wait(1) == 0 && lines.contains("end \(run.label)") && started.filter { $0 == run.label }.count == 1 }
        // A front answers once its run is recorded; its supervisor may still be exiting.
        _ = waitUntil(10) { seen.allSatisfy { !farm.sandbox.isAlive($0) } }
        let left = seen.filter { farm.sandbox.isAlive($0) }
        print("shared lock chaos: \(runs.count) runs, kills \(kills.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \(started.count) started, \(Set(started).count) distinct, \(overlaps.count) overlaps, \(untouchedDone.count)/\(untouched.count) untouched done once, \(left.count) left running")
        #expect(overlaps.isEmpty, "\(lines)")
        #expect(started.count == Set(started).count, "\(started)")
        #expect(untouchedDone.count == untouched.count, "\(untouched.map { "\($0.label): \($0.child.stderr)" })")
        #expect(left.isEmpty, "left running: \(left)")
        #expect(waitUntil(10) { farm.count("holders", of: "chaos") == 0 && farm.count("queue", of: "chaos") == 0 })
    }

    /// A host cut off from the database (its connection goes through a relay that is then
    /// stopped: nothing answers, nothing is refused) ends its command before the lease runs
    /// out, and exits 77; the other host starts only after that.
    @Test func aHostCutOffEndsItsCommandBeforeAnotherStarts() throws {
        guard commandOnPath("python3") else {
            print("skipped: python3 is missing (the cut-off test relays the database's socket through it)")
            return
        }
        let farm = try Farm()
        let base = try #require(farmDatabase)
        let socketDirectory = try #require(base.split(separator: "?").last?.split(separator: "&").first { $0.hasPrefix("host=") }?.dropFirst(5))
        let relayDirectory = farm.sandbox.root + "/relay"
        try FileManager.default.createDirectory(atPath: relayDirectory, withIntermediateDirectories: true)
        let relayScript = try farm.sandbox.script("relay.py", """
        import os, socket, sys, threading
        server = socket.socket(socket.AF_UNIX)
        server.bind(os.path.join(sys.argv[1], ".s.PGSQL.5432"))
        server.listen(64)
        open(os.path.join(sys.argv[1], "ready"), "w").write("ready")
        def pump(source, sink):
            try:
                while True:
                    data = source.recv(65536)
                    if not data:
                        break
                    sink.sendall(data)
            except OSError:
                pass
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        while True:
            client, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(os.path.join(sys.argv[2], ".s.PGSQL.5432"))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        """, interpreter: "/usr/bin/env python3")
        let relay = try farm.sandbox.start(relayScript, [relayDirectory, String(socketDirectory)])
        defer { relay.signal(SIGCONT); relay.signal(SIGKILL) }
        #expect(waitUntil { FileManager.default.fileExists(atPath: relayDirectory + "/ready") }, "\(relay.stderr)")
        let relayed = farm.url.replacingOccurrences(of: "host=\(socketDirectory)", with: "host=\(relayDirectory)")
        let (holder, waiter, _) = try farm.holderAndWaiter("cut", lease: "3", holderURL: relayed)
        relay.signal(SIGSTOP)
        #expect(holder.wait(30) == 77, "\(holder.stderr)")
        #expect(holder.stderr.contains("cannot renew the lease on 'cut'") && holder.stderr.contains("before the 3s lease runs out"), "\(holder.stderr)")
        #expect(waiter.wait(30) == 0, "\(waiter.stderr)")
        let lines = farm.sandbox.lines("log")
        print("shared lock, a host cut off: \(lines)")
        #expect(lines.count == 4 && lines[0].hasPrefix("start a") && lines[1] == "end a" && lines[2].hasPrefix("start b"), "\(lines)")
    }

    /// `--order newest-first` across hosts: of a burst behind a holder, the older ones exit 76
    /// naming the newest, which alone runs; `--status` names every host in order meanwhile.
    @Test func newestFirstRunsOnlyTheNewestOfABurstAndStatusShowsEveryHost() throws {
        let farm = try Farm()
        let job = try farm.job()
        let log = farm.sandbox.path("log")
        let release = farm.sandbox.path("release")
        let holder = try farm.seqexec(["--lock", "deploy", job, log, "holder", release], host: "a")
        #expect(waitUntil { farm.sandbox.read("log").contains("start holder") }, "\(holder.stderr)")
        var burst: [Child] = []
        for (index, host) in ["b", "c", "b"].enumerated() {
            burst.append(try farm.seqexec(["--lock", "deploy", "--order", "newest-first", job, log, "deploy\(index)", ""], host: host))
            #expect(waitUntil { farm.count("queue", of: "deploy") == 1 && (try? farm.status("deploy"))
                .flatMap { ($0["queue"] as? [[String: Any]])?.first?["command"] as? String }?.contains("deploy\(index)") == true }, "\(burst.last!.stderr)")
        }
        let status = try farm.seqexec(["--lock", "deploy", "--status"], host: "c")
        #expect(status.wait(30) == 0)
        #expect(status.stdout.contains("holder:   host a pid ") && status.stdout.contains("fence ") && status.stdout.contains("lease ")
                && status.stdout.contains("1. host b pid \(burst[2].pid)"), "\(status.stdout)")
        // Each was replaced by the one that came next, and says which: host and pid.
        for (older, newer, host) in [(burst[0], burst[1], "c"), (burst[1], burst[2], "b")] {
            #expect(older.wait(30) == 76, "\(older.stderr)")
            #expect(older.stderr.contains("replaced by a newer run, host \(host) pid \(newer.pid) '"), "\(older.stderr)")
        }
        try "go".write(toFile: release, atomically: true, encoding: .utf8)
        #expect(holder.wait(30) == 0 && burst[2].wait(30) == 0, "\(burst[2].stderr)")
        #expect(farm.sandbox.lines("log").filter { $0.hasPrefix("start") }.map { String($0.split(separator: " ")[1]) } == ["holder", "deploy2"])
    }

    /// `--kill-all` from one host ends a holder on another (within a renewal) and its
    /// waiters; `--cancel-running` ends a holder and runs in its place.
    @Test func killAllFromOneHostEndsAHolderOnAnotherAndCancelRunningTakesOver() throws {
        let farm = try Farm()
        let job = try farm.job()
        let log = farm.sandbox.path("log")
        let never = farm.sandbox.path("never")
        let holder = try farm.seqexec(["--lock", "stop", "--lease", "3", job, log, "a", never], host: "a")
        #expect(waitUntil { farm.sandbox.read("log").contains("start a") }, "\(holder.stderr)")
        let waiter = try farm.seqexec(["--lock", "stop", job, log, "c", ""], host: "c")
        #expect(waitUntil { farm.count("queue", of: "stop") == 1 }, "\(waiter.stderr)")
        let stop = try farm.seqexec(["--lock", "stop", "--kill-all"], host: "b")
        #expect(stop.wait(30) == 0, "\(stop.stderr)")
        #expect(stop.stdout.contains("ended holder host a pid \(holder.pid)") && stop.stdout.contains("ended waiter host c"), "\(stop.stdout)")
        #expect(holder.wait(30) == 143 && holder.stderr.contains("revoked by kill-all from host b"), "\(holder.stderr)")
        #expect(waiter.wait(30) == 143 && waiter.stderr.contains("revoked by kill-all from host b"), "\(waiter.stderr)")
        #expect(farm.sandbox.lines("log") == [farm.sandbox.lines("log").first ?? "", "end a"])

        let second = try farm.seqexec(["--lock", "stop", job, log, "second", never], host: "a")
        #expect(waitUntil { farm.sandbox.read("log").contains("start second") }, "\(second.stderr)")
        let newer = try farm.seqexec(["--lock", "stop", "--cancel-running", job, log, "newer", ""], host: "b")
        #expect(second.wait(30) == 76 && second.stderr.contains("cancelled by a newer run, host b pid \(newer.pid)"), "\(second.stderr)")
        #expect(newer.wait(30) == 0, "\(newer.stderr)")
        #expect(farm.sandbox.read("log").contains("start newer"))
    }

    /// Bad input: one line naming the fix, exit 125, and nothing run.
    @Test func aStoreWithoutALockOrABadURLIsRefused() throws {
        let farm = try Farm()
        let (noLock, _, noLockErr) = try farm.sandbox.run(["--store", farm.url, "true"])
        #expect(noLock == 125 && noLockErr.hasPrefix("seqexec: --store keeps a named lock: add --lock NAME"), "\(noLockErr)")
        let (badURL, _, badErr) = try farm.sandbox.run(["--lock", "x", "--store", "/var/db", "true"])
        #expect(badURL == 125 && badErr.hasPrefix("seqexec: --store needs a PostgreSQL URL"), "\(badErr)")
        let (cancel, _, cancelErr) = try farm.sandbox.run(["--lock", "x", "--cancel-running", "true"])
        #expect(cancel == 125 && cancelErr.hasPrefix("seqexec: --cancel-running ends runs holding a shared lock"), "\(cancelErr)")
        let (memory, _, memoryErr) = try farm.sandbox.run(["--lock", "x", "--store", farm.url, "--min-available", "100", "true"])
        #expect(memory == 125 && memoryErr.hasPrefix("seqexec: --min-available is not kept for a lock in a store"), "\(memoryErr)")
        let (lease, _, leaseErr) = try farm.sandbox.run(["--lock", "x", "--store", farm.url, "--lease", "0.5", "true"])
        #expect(lease == 125 && leaseErr.hasPrefix("seqexec: invalid --lease '0.5': expected seconds of at least 1 "), "\(leaseErr)")
        let (gone, _, goneErr) = try farm.sandbox.run(["--lock", "x", "--store", "postgresql:///none?host=\(farm.sandbox.root)/nowhere", "true"])
        #expect(gone == 125 && goneErr.hasPrefix("seqexec: cannot use the shared lock 'x': cannot connect to ") && goneErr.split(separator: "\n").count == 1, "\(goneErr)")
    }
}
