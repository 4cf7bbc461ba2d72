import Foundation
import Glibc
import SeqSystem
import Testing

/// Input that would otherwise be changed silently is refused with FILE:LINE and exit 1;
/// dates and ids are read strictly; a device in use is not pulled from under its worker.
@Suite struct InputTests {
    /// import-csv of `bytes`: its status and stderr, and how many jobs the store holds after.
    func importing(_ bytes: [UInt8]) throws -> (Int32?, String, Int) {
        let pipeline = try PipelineSandbox(devices: 1)
        let file = pipeline.sandbox.path("jobs.csv")
        #expect(FileManager.default.createFile(atPath: file, contents: Data(bytes)))
        let (status, _, err) = try pipeline.pipe(["import-csv", file])
        let jobs = try pipeline.jobs().count
        return (status, err.replacingOccurrences(of: file, with: "jobs.csv"), jobs)
    }

    @Test func csvInputThatWouldBeChangedIsRefusedWithItsLine() throws {
        let nul = try importing(Array("job_id,account,mode\na1,acct,ok\nb\u{0}2,acct,ok\n".utf8))
        #expect(nul.0 == 1 && nul.1.contains("jobs.csv:3: a NUL byte") && nul.2 == 0, "\(nul)")
        let twice = try importing(Array("job_id,account,mode,mode\na1,acct,ok,ok\n".utf8))
        #expect(twice.0 == 1 && twice.1.contains("jobs.csv:1: column 'mode' is named twice") && twice.2 == 0, "\(twice)")
        // The row starts on line 3 (the quoted caption spans two lines); line 5 has too many values.
        let extra = try importing(Array("job_id,account,mode,caption\na1,acct,ok,one\na2,acct,ok,\"two\nlines\"\na3,acct,ok,three,four\n".utf8))
        #expect(extra.0 == 1 && extra.1.contains("jobs.csv:5: 5 values but the header names 4 columns") && extra.2 == 0, "\(extra)")
        let latin1 = try importing(Array("job_id,account,mode,caption\na1,acct,ok,caf".utf8) + [0xE9] + Array("\n".utf8))
        #expect(latin1.0 == 1 && latin1.1.contains("jobs.csv:2: not UTF-8") && latin1.1.contains("iconv") && latin1.2 == 0, "\(latin1)")
        let bom = try importing([0xEF, 0xBB, 0xBF] + Array("job_id,account,mode\na1,acct,ok\n".utf8))
        #expect(bom.0 == 0 && bom.2 == 1, "a UTF-8 byte order mark is no column name: \(bom)")
    }

    /// Every bad row is said, each with its line, and nothing is imported; a header without
    /// the needed columns is told the smallest one; the command's help lists the columns.
    @Test func everyBadRowIsReportedAndTheSmallestHeaderNamed() throws {
        let rows = try importing(Array("job_id,account,mode,priority\na1,acct,ok,P1\n,acct,ok,\na3,,ok,\na4,acct,ok,urgent\na1,b,ok,\n".utf8))
        let lines = rows.1.split(separator: "\n").map(String.init)
        #expect(rows.0 == 1 && rows.2 == 0, "\(rows)")
        #expect(lines == [
            "seqpipe: jobs.csv:3: job_id is empty; every job needs an id",
            "seqpipe: jobs.csv:4: account is empty for job a3",
            "seqpipe: jobs.csv:5: priority 'urgent' is not P0 (first) to P3, high, normal, low, or a whole number (higher first)",
            "seqpipe: jobs.csv:6: job 'a1' is on line 2 too; give each job its own id",
            "seqpipe: jobs.csv: 4 bad rows; nothing imported",
        ], "\(lines)")
        let plain = try importing(Array("id,name\n1,x\n".utf8))
        #expect(plain.0 == 1 && plain.1.contains("no 'job_id' column; expected a header line such as job_id,account,video_path,caption")
                && !plain.1.contains("worker_id"), "\(plain)")
        let pipeline = try PipelineSandbox(devices: 0)
        let (status, help, _) = try pipeline.pipe(["import-csv", "--help"])
        #expect(status == 0 && help.contains("job_id,account,video_path,caption") && help.contains("max_attempts, retry_at, error_type")
                && help.contains("Every bad"), "\(help)")
    }

    @Test func aDayTheMonthDoesNotHaveIsNoTime() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let (status, _, err) = try pipeline.pipe(["events", "--since", "2026-02-30T00:00:00Z"])
        #expect(status == 2 && err.contains("--since"), "\(err)")
        #expect(try pipeline.pipe(["events", "--since", "2028-02-29T00:00:00Z"]).0 == 0, "a leap day is a day")
    }

    @Test(.timeLimit(.minutes(2))) func aDeviceInUseIsRefusedAndDrainedWithForce() throws {
        let pipeline = try PipelineSandbox(devices: 2)
        try pipeline.addJobs([("long", "slow:2", "a1")] + (0..<6).map { ("j\($0)", "ok", "b\($0)") })
        let run = try pipeline.start(["run"])
        #expect(waitUntil(20) { pipeline.marks.contains { $0.start && $0.job == "long" } })
        let workers = try pipeline.status()["workers"] as? [[String: Any]] ?? []
        let name = try #require(workers.first { $0["job"] as? String == "long" }?["device"] as? String, "\(workers)")
        let refused = try pipeline.pipe(["device", "remove", name])
        #expect(refused.0 == 1 && refused.2.contains("in use") && refused.2.contains("--force"), "\(refused.2)")
        let forced = try pipeline.pipe(["device", "remove", name, "--force"], seconds: 60)
        #expect(forced.0 == 0 && forced.1.contains("waiting for job long") && forced.1.contains("removed"), "\(forced)")
        #expect(try pipeline.jobs()["long"]?.status == "success", "the drained job finished")
        #expect(waitUntil(20) { run.stderr.contains("was removed from the store; not restarted") }, "\(run.stderr)")
        // The other device works on; the removed one's worker is not started again.
        #expect(waitUntil(30) { (try? pipeline.jobs().values.allSatisfy { $0.status == "success" }) ?? false })
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        // One worker ended (the drained one) and none was started again.
        #expect(run.stderr.components(separatedBy: ") ended (").count == 2, "\(run.stderr)")
        let (_, events, _) = try pipeline.pipe(["events", "--limit", "500"])
        #expect(!events.contains("worker-restart"), "\(events)")
    }
}
