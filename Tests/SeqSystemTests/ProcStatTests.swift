import Glibc
import SeqSystem
import Testing

@Suite struct ProcStatTests {
    @Test func parsesCommandWithSpacesAndParentheses() {
        let line = "4121 (my (odd) cmd) S 1 4121 4121 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1234567 321 18446744073709551615"
        let stat = ProcStat.parse(Array(line.utf8))
        #expect(stat?.pid == 4121)
        #expect(stat?.command == "my (odd) cmd")
        #expect(stat?.state == "S")
        #expect(stat?.parent == 1)
        #expect(stat?.startTime == 98765)
        #expect(stat?.residentPages == 321)
    }

    @Test func rejectsTruncatedLines() {
        #expect(ProcStat.parse(Array("4121 (sh) S 1 2".utf8)) == nil)
        #expect(ProcStat.parse(Array("garbage".utf8)) == nil)
        #expect(ProcStat.parse([]) == nil)
    }

    @Test func currentProcessIsAliveAndAReusedPidIsNot() {
        let me = ProcessIdentity.current()
        #expect(me.startTime > 0)
        #expect(me.isAlive)
        // Same pid, another start time: what a reused pid looks like.
        #expect(!ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isAlive)
    }

    @Test func signalRefusesAPidWhoseStartTimeDiffers() {
        let me = ProcessIdentity.current()
        // Would kill this test process if the start time were ignored.
        #expect(!Processes.signal(ProcessIdentity(pid: me.pid, startTime: me.startTime + 7), .kill))
    }

    @Test func wallTimeParsesAndOrders() throws {
        let time = try #require(WallTime(parsing: "1732312345.5"))
        #expect(time.nanoseconds == 500_000_000)
        #expect(time.description == "1732312345.500000000")
        #expect(WallTime(parsing: "12.x") == nil)
        #expect(WallTime(parsing: "-3") == nil)
        #expect(WallTime(parsing: "1.1234567891") == nil)
        #expect(try #require(WallTime(parsing: "10.000000001")) > WallTime(seconds: 10, nanoseconds: 0))
    }

    @Test func flockIsPerOpenFileDescription() throws {
        let path = "/tmp/seqsystem-flock-\(getpid())"
        defer { try? FileSystem.removeFile(path) }
        let a = try FileSystem.open(path, [.readWrite, .create], mode: 0o600)
        defer { a.close() }
        let b = try FileSystem.open(path, .readOnly)
        defer { b.close() }
        #expect(try a.lock(exclusive: true, nonBlocking: true))
        #expect(try !b.lock(exclusive: false, nonBlocking: true))
        try a.unlock()
        #expect(try b.lock(exclusive: false, nonBlocking: true))
    }
}
