import Glibc
@testable import SeqGuard
import SeqSystem
import Testing
import TestSupport

@Suite struct HashAndEncodingTests {
    @Test func hashIsTheWholeSha1OfTheIdentityAndANewline() {
        // printf '%s\n' /work/main | sha1sum: a name's identity is the name itself.
        #expect(Project(root: "/work/main").hash == "081e9be42e646d863a655f0098185403335ad485")
        // A directory's identity is its device and inode, whatever path reached it.
        let status = try? FileSystem.status("/tmp")
        if let status {
            let one = Project(directory: "/tmp", status: status)
            let other = Project(directory: "/elsewhere/same-inode", status: status)
            #expect(one == other && one.hash == other.hash && one.identity == "dir \(status.device):\(status.inode)")
        }
        #expect(SHA1.hexDigest(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1.hexDigest([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }

    @Test func percentEncodingRoundTripsSeparators() {
        let text = "make test: a%b\nline"
        let encoded = PercentEncoding.encode(text)
        #expect(!encoded.contains(":") && !encoded.contains("\n"))
        #expect(PercentEncoding.decode(Substring(encoded)) == text)
        #expect(PercentEncoding.decode("bad%zz") == nil)
        #expect(PercentEncoding.decode("bad%2") == nil)
    }

    @Test func displayCommandQuotesWhatAShellWouldSplit() {
        #expect(GuardedCommand.displayCommand(["make", "test"]) == "make test")
        #expect(GuardedCommand.displayCommand(["echo", "a b", "it's", "*"]) == "echo 'a b' 'it'\\''s' '*'")
    }

    @Test func tokensParse() {
        #expect(GuardedCommand.parseTokens("seq-exec-1=a,make-lock-1=b,junk") == ["seq-exec-1": "a", "make-lock-1": "b"])
    }
}

@Suite struct QueueTests {
    let me = ProcessIdentity(pid: 4121, startTime: 99)

    @Test func entryRoundTripsWithColonsInCommand() throws {
        var entry = QueueEntry(process: me, queuedAt: WallTime(seconds: 5, nanoseconds: 7), command: "sh -c 'a:b'", priority: .high)
        entry.extra = ["future=1"]
        let parsed = try #require(QueueEntry(line: Substring(entry.line)))
        #expect(parsed == entry)
        #expect(entry.line.hasPrefix("4121:5.000000007:"))
    }

    @Test func garbageTruncatedAndForeignLinesAreRejectedNotFatal() {
        let text = """
        4121:5.0:make test:start=99:prio=normal
        this is not a line
        77:12:legacy without start time
        88:1.0:cmd:start=zz
        99:1.0:cmd:start=5:prio=urgent
        4122:6.0:make lint:start=100

        """
        let snapshot = QueueSnapshot(parsing: Array(text.utf8) + [0xFF, 0xFE])
        #expect(snapshot.entries.map(\.process.pid) == [4121, 4122])
        #expect(snapshot.rejectedLines.count == 5)
    }

    @Test func orderIsPriorityThenArrivalThenFileOrder() {
        func entry(_ pid: Int32, _ second: Int64, _ priority: Priority) -> QueueEntry {
            QueueEntry(process: ProcessIdentity(pid: pid, startTime: 1), queuedAt: WallTime(seconds: second, nanoseconds: 0), command: "c", priority: priority)
        }
        let snapshot = QueueSnapshot(entries: [
            entry(1, 10, .normal), entry(2, 5, .low), entry(3, 20, .high), entry(4, 10, .normal), entry(5, 1, .normal),
        ])
        #expect(snapshot.ordered.map(\.process.pid) == [3, 5, 1, 4, 2])
    }

    @Test func ownerRecordRoundTripsAndRejectsTruncation() throws {
        let record = OwnerRecord(holder: me, host: "box", since: WallTime(seconds: 3, nanoseconds: 0), command: "make\ntest", token: "abc",
                                 child: ProcessIdentity(pid: 5, startTime: 6))
        #expect(OwnerRecord(parsing: Array(record.text.utf8)) == record)
        let truncated = Array(record.text.utf8.prefix(20))
        #expect(OwnerRecord(parsing: truncated) == nil)
        #expect(OwnerRecord(parsing: Array("\u{0}\u{1}garbage".utf8)) == nil)
    }
}

@Suite struct StateDirectoryTests {
    @Test func createsPrivateDirectoriesAndReusesThem() throws {
        let temp = TemporaryDirectory()
        let project = Project(root: "/some/where")
        let base = temp.path + "/a"
        let directory = try StateDirectory.open(project: project, base: base, namespace: .seqexec)
        directory.close()
        let status = try FileSystem.status(directory.path)
        #expect(status.permissions == 0o700)
        #expect(directory.path == base + "/seq-exec-\(project.hash)")
        try StateDirectory.open(project: project, base: base, namespace: .seqexec).close()
        // A base given by hand gets made, but not its missing parents (a mistyped path).
        #expect(throws: GuardFailure.self) { try StateDirectory.open(project: project, base: temp.path + "/x/y", namespace: .seqexec) }
        #expect(!FileSystem.exists(temp.path + "/x"))
    }

    @Test func refusesASymlinkedProjectDirectory() throws {
        let temp = TemporaryDirectory()
        let project = Project(root: "/x")
        try FileSystem.makeDirectory(temp.path + "/elsewhere")
        #expect(symlink(temp.path + "/elsewhere", temp.path + "/seq-exec-\(project.hash)") == 0)
        let error = #expect(throws: GuardFailure.self) { try StateDirectory.open(project: project, base: temp.path, namespace: .seqexec) }
        #expect(error?.exitCode == 125)
        #expect(error?.message.contains("symlink") == true)
    }

    @Test func refusesADirectoryOthersCanWrite() throws {
        let temp = TemporaryDirectory()
        let project = Project(root: "/y")
        let path = temp.path + "/seq-exec-\(project.hash)"
        try FileSystem.makeDirectory(path)
        try FileSystem.changeMode(path, 0o777)
        let error = #expect(throws: GuardFailure.self) { try StateDirectory.open(project: project, base: temp.path, namespace: .seqexec) }
        #expect(error?.message.contains("chmod 700") == true)
    }

    @Test(.enabled(if: getuid() == 0, "needs root to give a directory to another user"))
    func refusesAnotherUsersDirectory() throws {
        let temp = TemporaryDirectory()
        let project = Project(root: "/z")
        let path = temp.path + "/seq-exec-\(project.hash)"
        try FileSystem.makeDirectory(path)
        #expect(chown(path, 65534, 65534) == 0)
        let error = #expect(throws: GuardFailure.self) { try StateDirectory.open(project: project, base: temp.path, namespace: .seqexec) }
        #expect(error?.message.contains("owned by uid 65534") == true)
    }

    @Test func projectRootIsTheNearestGitAncestor() throws {
        let temp = TemporaryDirectory()
        let root = try FileSystem.realPath(temp.path)
        try FileSystem.makeDirectory(root + "/.git")
        try FileSystem.makeDirectory(root + "/sub")
        try FileSystem.makeDirectory(root + "/sub/deeper")
        let saved = try FileSystem.currentDirectory()
        defer { _ = chdir(saved) }
        #expect(chdir(root + "/sub/deeper") == 0)
        #expect(try Project.resolve(explicit: nil).root == root)
        #expect(try Project.resolve(explicit: root + "/sub").root == root + "/sub")
        #expect(throws: GuardFailure.self) { try Project.resolve(explicit: root + "/missing") }
    }
}

@Suite struct ProjectLockTests {
    func makeLock(_ temp: TemporaryDirectory) throws -> ProjectLock {
        ProjectLock(directory: try StateDirectory.open(project: Project(root: temp.path), base: temp.path, namespace: .seqexec))
    }

    func record(_ token: String = "t") -> OwnerRecord {
        OwnerRecord(holder: .current(), host: "h", since: Clock.wallTime(), command: "cmd", token: token)
    }

    @Test func aHeldClaimIsLiveAndASecondClaimIsRefused() throws {
        let temp = TemporaryDirectory()
        let lock = try makeLock(temp)
        defer { lock.directory.close() }
        let held = try #require(try lock.claim(slots: 1, record: record()))
        #expect(try lock.claim(slots: 1, record: record()) == nil)
        let claims = try lock.inspect()
        #expect(claims.count == 1 && claims[0].isLive && claims[0].record?.token == "t")
        lock.release(held)
        #expect(try lock.inspect().isEmpty)
    }

    @Test func slotsAreTakenLowestFirst() throws {
        let temp = TemporaryDirectory()
        let lock = try makeLock(temp)
        defer { lock.directory.close() }
        let a = try #require(try lock.claim(slots: 2, record: record()))
        let b = try #require(try lock.claim(slots: 2, record: record()))
        #expect([a.name, b.name] == ["executor.lock", "executor.lock.1"])
        #expect(try lock.claim(slots: 2, record: record()) == nil)
        lock.release(a)
        lock.release(b)
    }

    @Test func aClaimWhoseFlockIsGoneIsStaleEvenWithAValidRecord() throws {
        let temp = TemporaryDirectory()
        let lock = try makeLock(temp)
        defer { lock.directory.close() }
        let held = try #require(try lock.claim(slots: 1, record: record()))
        // The record's flock alone gone (a command's `flock -u`): the claimant's guard keeps it live.
        try held.owner.unlock()
        #expect(try lock.inspect().first?.isLive == true)
        held.owner.close()  // as if the holder and its whole tree were SIGKILLed
        held.guardLock?.close()
        // Another test of this process may be spawning a child right now: until it execs, the
        // child's copy of the descriptor table still holds the flock. Allow it to pass.
        var claims = try lock.inspect()
        let deadline = Clock.monotonicNanoseconds() + 5_000_000_000
        while claims.count == 1 && claims[0].isLive && Clock.monotonicNanoseconds() < deadline {
            Poll.sleep(milliseconds: 1)
            claims = try lock.inspect()
        }
        #expect(claims.count == 1 && !claims[0].isLive)
        try lock.removeStale(claims[0])
        #expect(try lock.inspect().isEmpty)
    }

    @Test func garbageClaimsAreStaleNotFatal() throws {
        let temp = TemporaryDirectory()
        let lock = try makeLock(temp)
        defer { lock.directory.close() }
        let dir = lock.directory.path
        try FileSystem.makeDirectory(dir + "/executor.lock")
        let fd = try FileSystem.open(dir + "/executor.lock/owner", [.writeOnly, .create], mode: 0o600)
        try fd.writeAll("pid=12\ngarb")
        fd.close()
        try FileSystem.makeDirectory(dir + "/executor.lock.3")
        let claims = try lock.inspect()
        #expect(claims.map(\.isLive) == [false, false])
        #expect(claims.allSatisfy { $0.problem != nil })
        for claim in claims { try lock.removeStale(claim) }
        #expect(try lock.inspect().isEmpty)
    }

    @Test func aSymlinkedClaimIsRefused() throws {
        let temp = TemporaryDirectory()
        let lock = try makeLock(temp)
        defer { lock.directory.close() }
        #expect(symlink("/tmp", lock.directory.path + "/executor.lock") == 0)
        #expect(throws: GuardFailure.self) { try lock.inspect() }
    }
}

@Suite struct GitRepositoryTests {
    @Test func aGitFileLeadsToTheModuleDirectory() throws {
        let temp = TemporaryDirectory()
        let module = temp.path + "/super/.git/modules/sub"
        _ = system("mkdir -p '\(module)/objects' '\(module)/refs/tags' '\(temp.path)/super/sub/deep' && echo 'ref: refs/heads/main' > '\(module)/HEAD'")
        _ = system("printf 'gitdir: ../.git/modules/sub\\n' > '\(temp.path)/super/sub/.git'")
        let found = try #require(GitRepository.find(from: temp.path + "/super/sub/deep"))
        #expect(found.worktree == temp.path + "/super/sub")
        #expect(found.gitDirectory == module)
        #expect(found.commonDirectory == module)
        #expect(found.lockFiles().isEmpty)
        _ = system("touch '\(module)/index.lock' '\(module)/refs/tags/v1.lock' '\(module)/refs/tags/v2'")
        #expect(Set(found.lockFiles()) == [module + "/index.lock", module + "/refs/tags/v1.lock"])
    }

    @Test func aWorktreeSharesTheCommonDirectory() throws {
        let temp = TemporaryDirectory()
        let main = temp.path + "/main/.git"
        _ = system("mkdir -p '\(main)/objects' '\(main)/refs' '\(main)/worktrees/wt' '\(temp.path)/wt' && echo x > '\(main)/HEAD' && echo x > '\(main)/worktrees/wt/HEAD'")
        _ = system("echo ../.. > '\(main)/worktrees/wt/commondir' && echo 'gitdir: \(main)/worktrees/wt' > '\(temp.path)/wt/.git'")
        let found = try #require(GitRepository.find(from: temp.path + "/wt"))
        #expect(found.gitDirectory == main + "/worktrees/wt")
        #expect(found.commonDirectory == main)
        _ = system("touch '\(main)/packed-refs.lock'")
        #expect(found.lockFiles() == [main + "/packed-refs.lock"], "a shared lock is seen from every worktree")
    }

    @Test func gitArgumentsNameTheRepositoryAndTheSubcommand() {
        #expect(GitGuard.subcommand(["git", "-C", "x", "-c", "a=b", "--no-pager", "commit", "-m", "y"]) == "commit")
        #expect(GitGuard.subcommand(["git"]) == nil)
    }

    @Test func isoUTCMatchesTheCalendar() {
        #expect(Clock.isoUTC(WallTime(seconds: 0, nanoseconds: 0)) == "1970-01-01T00:00:00Z")
        #expect(Clock.isoUTC(WallTime(seconds: 951_782_400, nanoseconds: 0)) == "2000-02-29T00:00:00Z")
        #expect(Clock.isoUTC(WallTime(seconds: 1_795_397_147, nanoseconds: 5)) == "2026-11-23T01:25:47Z")
        #expect(Clock.isoUTC(WallTime(seconds: 4_107_542_399, nanoseconds: 0)) == "2100-02-28T23:59:59Z")
    }

    @Test func historyLinesRoundTripThroughTheParser() throws {
        var record = HistoryRecord(command: "make \"t\" \u{1}é", pid: 7, project: "/p", queuedAt: WallTime(seconds: 100, nanoseconds: 500_000_000),
                                   waitMilliseconds: 12, exitStatus: 137, ended: .memory)
        record.peakTreeBytes = 300 << 20
        record.metric = .pss
        let line = JSON.encode(record.json)
        let value = try #require(JSON.decode(line))
        let back = try #require(HistoryRecord(json: value))
        #expect(back.command == record.command && back.ended == .memory && back.exitStatus == 137)
        #expect(back.peakTreeBytes == 300 << 20 && back.metric == .pss && back.runMilliseconds == nil)
        #expect(back.queuedAt.seconds == 100)
        #expect(JSON.decode("{\"a\":1,") == nil && JSON.decode("[1 2]") == nil && JSON.decode("\"\\ud83d\\ude00\"")?.string == "😀")
    }
}

@Suite struct MemoryScheduleTests {
    @Test func theIntervalIsACeilingNotTheRule() {
        let mib: Int64 = 1 << 20
        // Start-up: 20 ms, doubling.
        #expect(MemoryMonitor.nextDelay(interval: 5, limit: 2048 * mib, usage: 0, bytesPerSecond: 0, samplesTaken: 0) == 0.02)
        #expect(MemoryMonitor.nextDelay(interval: 5, limit: 2048 * mib, usage: 0, bytesPerSecond: 0, samplesTaken: 3) == 0.16)
        // Idle and empty: the interval; a little used, a little less.
        #expect(MemoryMonitor.nextDelay(interval: 5, limit: 2048 * mib, usage: 0, bytesPerSecond: 0, samplesTaken: 20) == 5)
        #expect(MemoryMonitor.nextDelay(interval: 5, limit: 2048 * mib, usage: 1024 * mib, bytesPerSecond: 0, samplesTaken: 20) == 2.5)
        // Growing 800 MB/s with 100 MB left: again before half of it is gone.
        let fast = MemoryMonitor.nextDelay(interval: 1, limit: 300 * mib, usage: 200 * mib, bytesPerSecond: Double(800 * mib), samplesTaken: 20)
        #expect(abs(fast - 0.0625) < 1e-9)
        // At or over the limit, and near it: the floor.
        #expect(MemoryMonitor.nextDelay(interval: 5, limit: 100 * mib, usage: 100 * mib, bytesPerSecond: 0, samplesTaken: 20) == MemoryMonitor.minimumDelay)
        #expect(MemoryMonitor.nextDelay(interval: 5, limit: 100 * mib, usage: 99 * mib, bytesPerSecond: Double(mib), samplesTaken: 20) == 0.1)
    }
}
