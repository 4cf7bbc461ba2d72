import Foundation
import Glibc
import SeqSystem
import Testing

/// This process's own cgroup v1 directory for `controller`, if it may make cgroups there.
func ownCgroup(_ controller: String) -> String? {
    guard getuid() == 0, let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, fields[1].split(separator: ",").contains(Substring(controller)) else { continue }
        let path = "/sys/fs/cgroup/\(fields[1])" + (fields[2] == "/" ? "" : String(fields[2]))
        return access(path, W_OK) == 0 && FileManager.default.fileExists(atPath: path + "/cgroup.procs") ? path : nil
    }
    return nil
}

/// Cgroups of one test's own under this process's, one per v1 controller: seqexec started in
/// them makes its `seqguard` parent there, so what the test finds left is its own runs' alone
/// (other suites run beside it, and a supervisor one of them kills leaves its run's cgroup
/// until a next run). Removed at the end; ones a killed test run left are removed by the next.
final class CgroupScope {
    let sandbox: Sandbox
    var directories: [String: String] = [:]
    let wrapper: String

    init(_ sandbox: Sandbox) throws {
        self.sandbox = sandbox
        let name = "seqguard-test-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
        for controller in ["memory", "cpu", "blkio"] {
            guard let own = ownCgroup(controller) else { continue }
            for stale in ((try? FileManager.default.contentsOfDirectory(atPath: own)) ?? []) where stale.hasPrefix("seqguard-test-") {
                let pid = Int32(stale.split(separator: "-")[2]) ?? 0
                if pid != getpid() && kill(pid, 0) != 0 { Self.remove(own + "/" + stale) }
            }
            try FileManager.default.createDirectory(atPath: own + "/" + name, withIntermediateDirectories: false)
            directories[controller] = own + "/" + name
        }
        wrapper = try sandbox.script("in-scope-\(name).sh", """
        for d in \(directories.values.map { "'\($0)'" }.joined(separator: " ")); do echo $$ > "$d/cgroup.procs"; done
        exec "$@"
        """)
    }

    deinit {
        for directory in directories.values {
            _ = waitUntil(5) { Self.remove(directory) }
        }
    }

    /// Removes a scope's directory and what seqexec left in it; whether it is gone.
    @discardableResult
    static func remove(_ directory: String) -> Bool {
        let seqguard = directory + "/seqguard"
        for entry in ((try? FileManager.default.contentsOfDirectory(atPath: seqguard)) ?? []) where entry.hasPrefix("pool-") || entry.hasPrefix("run-") {
            rmdir(seqguard + "/" + entry)
        }
        rmdir(seqguard)
        return rmdir(directory) == 0 || !FileManager.default.fileExists(atPath: directory)
    }

    /// `seqexec ARGS` started inside the scope.
    func seqexec(_ arguments: [String]) throws -> Child {
        try sandbox.start(wrapper, [seqexecPath] + arguments)
    }

    func run(_ arguments: [String], seconds: Double = 30) throws -> (Int32?, String, String) {
        let child = try seqexec(arguments)
        let status = child.wait(seconds)
        return (status, child.stdout, child.stderr)
    }

    /// The run and pool cgroups left in the scope for `controller`.
    func left(_ controller: String) -> [String] {
        guard let directory = directories[controller] else { return [] }
        return (try? FileManager.default.contentsOfDirectory(atPath: directory + "/seqguard")) ?? []
    }
}

/// `--kernel-limits`, `--cpus`, `--io-weight`: limits the kernel enforces through a cgroup per
/// run (cgroup v1, as root: this machine and CI). Where there is none (not root, cgroup v2
/// without delegation) the suite skips with a note.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: ownCgroup("memory") != nil && commandOnPath("python3"),
                                                      "no writable cgroup v1 memory hierarchy (not root, or cgroup v2) or no python3: the kernel-limit tests skip"))
struct KernelLimitsTests {
    /// The fork bomb the /proc sampler cannot outrun (thousands of processes each touching
    /// 2 MB): under the kernel's limit its peak stays within 1.05 of it, and it is ended with
    /// the memory-limit line; nothing of it and no cgroup is left.
    @Test func aForkBombPeaksWithinTheLimitAndIsEnded() throws {
        let sandbox = try Sandbox()
        let bomb = try sandbox.script("bomb.py", """
        import os, time
        for _ in range(3500):
            try:
                pid = os.fork()
            except OSError:
                time.sleep(0.01)
                continue
            if pid == 0:
                block = bytearray(2 << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(600)
                os._exit(0)
        time.sleep(600)
        """, interpreter: "/usr/bin/env python3")
        let scope = try CgroupScope(sandbox)
        let (status, _, stderr) = try scope.run(["--kernel-limits", "-m", "300", bomb], seconds: 120)
        #expect(status == 137, "\(stderr)")
        #expect(stderr.contains("memory limit 300 MB reached by"), "\(stderr)")
        try Self.expectForkBombHeld(sandbox, saying: "kernel limit")
        #expect(scope.left("memory").isEmpty, "\(scope.left("memory"))")
    }

    /// The fork bomb's run as its history records it: ended for memory by the kernel's limit,
    /// its peak within 1.05 of the 300 MB (printed, after `label`).
    static func expectForkBombHeld(_ sandbox: Sandbox, saying label: String) throws {
        let record = try #require(sandbox.history.last)
        let peak = (record["peak_tree_kb"] as? Int ?? 0) * 1024
        print("\(label): fork bomb under -m 300 peaked at \(peak >> 20) MB (\(String(format: "%.3f", Double(peak) / Double(300 << 20))) of the limit)")
        #expect(peak > 0 && Double(peak) <= 1.05 * Double(300 << 20), "peak \(peak)")
        #expect(record["enforcement"] as? String == "kernel" && record["ended"] as? String == "memory", "\(record)")
    }

    /// 400 MB written to a tmpfs file and closed, under a 100 MB limit: the kernel counts the
    /// file's pages (the /proc sampler cannot), and the writer is stopped.
    @Test func aTmpfsFileWrittenAndClosedIsCountedAndStopped() throws {
        let sandbox = try Sandbox()
        let file = "/dev/shm/seqguard-test-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
        defer { unlink(file) }
        let scope = try CgroupScope(sandbox)
        let (status, _, stderr) = try scope.run(["--kernel-limits", "-m", "100", "sh", "-c", "head -c 400M /dev/zero > \(file); sleep 30"], seconds: 60)
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        print("kernel limit: tmpfs writer under -m 100 stopped with the file at \(size >> 20) MB")
        // Ended by the supervisor at the threshold, or (a writer this fast) by the kernel at the
        // ceiling first: both are the memory-limit ending.
        #expect(status == 137 && stderr.contains("memory limit 100 MB reached by"), "\(stderr)")
        #expect(sandbox.history.last?["enforcement"] as? String == "kernel" && sandbox.history.last?["ended"] as? String == "memory")
        #expect(size < 110 << 20, "\(size)")
        #expect(scope.left("memory").isEmpty, "\(scope.left("memory"))")
    }

    /// `--cpus 0.5` holds a busy loop to half a CPU over 5 s (±10%).
    @Test func aCPUQuotaHoldsABusyLoop() throws {
        guard ownCgroup("cpu") != nil else {
            print("skipped: no writable cgroup v1 cpu hierarchy")
            return
        }
        let sandbox = try Sandbox()
        let busy = try sandbox.script("busy.py", """
        import os, time
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pass
        t = os.times()
        print(t.user + t.system)
        """, interpreter: "/usr/bin/env python3")
        let scope = try CgroupScope(sandbox)
        let (status, stdout, stderr) = try scope.run(["--cpus", "0.5", busy], seconds: 60)
        #expect(status == 0, "\(stderr)")
        let used = Double(stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        print("kernel limit: --cpus 0.5 held a 5 s busy loop to \(String(format: "%.2f", used)) s of CPU (\(String(format: "%.2f", used / 5)) CPU)")
        #expect(used >= 2.25 && used <= 2.75, "\(used) s of CPU in 5 s")
        #expect(scope.left("cpu").isEmpty, "\(scope.left("cpu"))")
    }

    /// A supervisor SIGKILLed with its command: its cgroup is left, and the next run removes it.
    @Test func aKilledSupervisorsCgroupIsRemovedByTheNextRun() throws {
        let sandbox = try Sandbox()
        let ready = sandbox.path("ready")
        let holder = try sandbox.seqexec(["--kernel-limits", "-m", "100", "sh", "-c", "touch \(ready); exec sleep 60"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: ready) }, "\(holder.stderr)")
        // --status says who keeps the running command's memory limit.
        let (_, json, _) = try sandbox.run(["--status", "--json"])
        #expect(json.contains("\"memory_enforcement\":\"kernel\""), "\(json)")
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("memory limit kept by the kernel"), "\(text)")
        let supervisor = try #require(Processes.descendants(of: [holder.pid]).first { $0.parent == holder.pid })
        let name = "run-\(supervisor.pid)-\(supervisor.startTime)"
        let own = try #require(ownCgroup("memory"))
        #expect(FileManager.default.fileExists(atPath: own + "/seqguard/" + name))
        _ = FarmTests.killTree(holder.pid)
        // Nothing of the killed run removes it now; the next run does (or a run of another
        // suite beside this one, which is as good).
        #expect(waitUntil(5) { !supervisor.identity.isAlive })
        let (status, _, stderr) = try sandbox.run(["--kernel-limits", "-m", "100", "true"])
        #expect(status == 0, "\(stderr)")
        #expect(waitUntil(5) { !FileManager.default.fileExists(atPath: own + "/seqguard/" + name) }, "\(name) is left")
    }

    /// A daemon the command double-forked, with every descriptor closed, whose seqexec and
    /// supervisor are then killed: no parent link and no open file lead to it any more, but
    /// the run's cgroup still holds it, and `--kill-all` ends it from there.
    @Test func killAllEndsWhatTheCgroupHoldsAfterTheSupervisorIsGone() throws {
        let sandbox = try Sandbox()
        let ready = sandbox.path("ready"), daemon = sandbox.path("daemon.pid")
        let holder = try sandbox.seqexec(["-m", "200", "sh", "-c",
            "(setsid sh -c 'echo $$ > \(daemon); exec sleep 300' </dev/null >/dev/null 2>&1 &); touch \(ready); exec sleep 300"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: ready) && !sandbox.read("daemon.pid").isEmpty }, "\(holder.stderr)")
        let daemonPid = try #require(Int32(sandbox.read("daemon.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(daemonPid)
        let supervisor = try #require(Processes.descendants(of: [holder.pid]).first { $0.parent == holder.pid })
        sandbox.extraPids += Processes.descendants(of: [holder.pid]).map(\.pid)
        kill(holder.pid, SIGKILL)
        kill(supervisor.pid, SIGKILL)
        #expect(waitUntil { (try? ProcStat.read(daemonPid).parent) == 1 || !sandbox.isAlive(supervisor.pid) })
        let (status, stdout, stderr) = try sandbox.run(["--kill-all"])
        #expect(status == 0, "\(stderr)")
        #expect(waitUntil(10) { !sandbox.isAlive(daemonPid) }, "the daemon outlived --kill-all: \(stdout)")
        // The killed supervisor's cgroup, emptied, goes with it.
        let own = try #require(ownCgroup("memory"))
        #expect(!FileManager.default.fileExists(atPath: own + "/seqguard/run-\(supervisor.pid)-\(supervisor.startTime)"))
    }

    /// Writes pool `name`'s file in the sandbox's state base.
    func pool(_ sandbox: Sandbox, _ name: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: sandbox.state + "/pools", withIntermediateDirectories: true)
        try text.write(toFile: sandbox.state + "/pools/" + name, atomically: true, encoding: .utf8)
    }

    /// Two projects in one pool: its slots hold the second back while the first runs, and
    /// its memory limit is shared: two runs of 130 MB each do not both fit in 200 MB, and the
    /// one the kernel ends says it was the pool's limit. Nothing of the pool stays in the
    /// hierarchy afterwards.
    @Test func twoProjectsInOnePoolShareItsSlotsAndItsMemory() throws {
        let sandbox = try Sandbox()
        let other = sandbox.root + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let name = "t\(getpid())"
        try pool(sandbox, name, "# one at a time\nslots=1\n")
        let (job, hold, holder) = try blockedHolder(sandbox, ["--pool", name])
        let second = try sandbox.seqexec(["-q", "--pool", name, "-p", other, job, "second"])
        // It waits in the pool's line (its own project is free).
        func waiting() -> Bool {
            ((try? FileManager.default.contentsOfDirectory(atPath: sandbox.state)) ?? []).contains { lane in
                ((try? String(contentsOfFile: sandbox.state + "/" + lane + "/queue.txt", encoding: .utf8)) ?? "").contains("second")
            }
        }
        #expect(waitUntil { waiting() }, "\(second.stderr)")
        #expect(second.isRunning && sandbox.lines("order") == ["holder"])
        sandbox.release(hold)
        #expect(holder.wait() == 0 && second.wait(30) == 0, "\(second.stderr)")
        #expect(sandbox.lines("order") == ["holder", "second"])

        let shared = "s\(getpid())"
        try pool(sandbox, shared, "memory_mb=200\nslots=2\n")
        let alloc = try sandbox.allocator()
        let (readyA, readyB, release) = (sandbox.path("readyA"), sandbox.path("readyB"), sandbox.path("release"))
        let first = try sandbox.seqexec(["--pool", shared, alloc, "130", readyA, release])
        #expect(waitUntil { FileManager.default.fileExists(atPath: readyA) }, "\(first.stderr)")
        let next = try sandbox.seqexec(["--pool", shared, "-p", other, alloc, "130", readyB, release])
        #expect(waitUntil(30) { !first.isRunning || !next.isRunning }, "the pool's 200 MB cannot hold both")
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        let statuses = [first.wait(30), next.wait(30)]
        print("kernel limit: two 130 MB runs in a 200 MB pool ended \(statuses.map { "\($0 ?? -1)" })")
        #expect(statuses.contains(137) && statuses.contains(0), "\(statuses) \(first.stderr) \(next.stderr)")
        #expect((first.stderr + next.stderr).contains("pool '\(shared)' reached its memory limit 200 MB"), "\(first.stderr)\(next.stderr)")
        let own = try #require(ownCgroup("memory"))
        #expect(waitUntil(5) { !FileManager.default.fileExists(atPath: own + "/seqguard/pool-\(shared)") })
        #expect(!FileManager.default.fileExists(atPath: own + "/seqguard/pool-\(name)"))
    }

    /// A pool with no file, or a file with a line it cannot take: one line naming the fix.
    @Test func aMissingOrBadPoolIsRefused() throws {
        let sandbox = try Sandbox()
        let (missing, _, missingErr) = try sandbox.run(["--pool", "nowhere", "true"])
        #expect(missing == 125 && missingErr.hasPrefix("seqexec: no pool 'nowhere': cannot read ") && missingErr.contains("write it with lines such as memory_mb=8192"), "\(missingErr)")
        try pool(sandbox, "bad", "slots=2\nmemory=8G\n")
        let (bad, _, badErr) = try sandbox.run(["--pool", "bad", "true"])
        #expect(bad == 125 && badErr.contains("pools/bad:2: unknown key 'memory'; the keys are memory_mb, cpus, slots"), "\(badErr)")
        let (name, _, nameErr) = try sandbox.run(["--pool", "../x", "true"])
        #expect(name == 125 && nameErr.hasPrefix("seqexec: --pool needs a name of letters, digits"), "\(nameErr)")
    }

    /// What cannot be enforced is refused with one line, never silently dropped; bad numbers too.
    @Test func whatTheKernelCannotEnforceIsRefused() throws {
        let sandbox = try Sandbox()
        let (cpus, _, cpusErr) = try sandbox.run(["--cpus", "0", "true"])
        #expect(cpus == 125 && cpusErr.hasPrefix("seqexec: invalid --cpus '0': expected a number of CPUs above 0"), "\(cpusErr)")
        let (weight, _, weightErr) = try sandbox.run(["--io-weight", "20000", "true"])
        #expect(weight == 125 && weightErr.hasPrefix("seqexec: invalid --io-weight '20000'"), "\(weightErr)")
        let hasWeight = ownCgroup("blkio").map { own in ["blkio.weight", "blkio.bfq.weight"].contains { FileManager.default.fileExists(atPath: own + "/" + $0) } } ?? false
        let scope = try CgroupScope(sandbox)
        let (io, out, ioErr) = try scope.run(["--io-weight", "200", "sh", "-c", "echo ran"])
        if hasWeight || ownCgroup("blkio") == nil {
            print("note: this kernel's blkio \(hasWeight ? "has a weight" : "hierarchy is not usable"); the refusal of --io-weight is not exercised here")
        } else {
            #expect(io == 125 && out.isEmpty && ioErr.contains("--io-weight cannot be enforced here"), "\(ioErr)")
        }
        #expect(scope.left("blkio").isEmpty, "\(scope.left("blkio"))")
    }
}
