import Foundation
import Glibc
import SeqSystem
import Testing

/// A SQLite store is its file: a second name for it meets the same run, and a run whose
/// file is deleted, replaced or loses its write-ahead log stops at once, saying so.
@Suite(.serialized) struct StoreFileTests {
    /// A pipeline whose one device posts each job (a line in posts.log) after `work` seconds.
    static func pipeline(jobs: Int, work: Double) throws -> PipelineSandbox {
        let pipeline = try PipelineSandbox(devices: 1)
        let posts = pipeline.sandbox.path("posts.log")
        let post = "\(simDirectory)/sim-step --log \(pipeline.stepLog) --job {job_id} --account {account} slow:\(work) && echo {job_id} >> \(posts)"
        try pipeline.configure(step: ["run": ["/bin/sh", "-c", post], "timeout_seconds": 30])
        try pipeline.addJobs((0..<jobs).map { ("j\($0)", "ok", "acct\($0)") })
        return pipeline
    }

    static func posted(_ pipeline: PipelineSandbox) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in pipeline.sandbox.lines("posts.log") { counts[line, default: 0] += 1 }
        return counts
    }

    var store: String { ".seqpipe/pipeline.db" }

    @Test(.timeLimit(.minutes(2))) func aHardLinkElsewhereMeetsTheRunningOrchestrator() throws {
        let pipeline = try Self.pipeline(jobs: 12, work: 0.1)
        try FileManager.default.createDirectory(atPath: pipeline.sandbox.path("elsewhere"), withIntermediateDirectories: true)
        #expect(link(pipeline.sandbox.path(store), pipeline.sandbox.path("elsewhere/pipeline.db")) == 0)
        let first = try pipeline.start(["run", "--once"])
        #expect(waitUntil(20) { !Self.posted(pipeline).isEmpty })
        let second = try pipeline.pipe(["--db", pipeline.sandbox.path("elsewhere/pipeline.db"), "--config", pipeline.sandbox.path(".seqpipe/pipeline.json"), "run", "--once"])
        #expect(second.0 == 75, "\(second.2)")
        #expect(second.2.contains("under another name") && second.2.contains("pid \(first.pid)"), "\(second.2)")
        #expect(first.wait(60) == 0, "\(first.stderr)")
        let posted = Self.posted(pipeline)
        #expect(posted.count == 12 && posted.values.allSatisfy { $0 == 1 }, "\(posted)")
    }

    @Test(.timeLimit(.minutes(2))) func aDeletedStoreStopsTheRunWithAnError() throws {
        let pipeline = try Self.pipeline(jobs: 200, work: 0.05)
        let run = try pipeline.start(["run"])
        #expect(waitUntil(20) { Self.posted(pipeline).count >= 3 })
        #expect(unlink(pipeline.sandbox.path(store)) == 0)
        #expect(run.wait(30) == 125, "\(run.stderr)")
        #expect(run.stderr.contains("was deleted while the run used it"), "\(run.stderr)")
        // The claims stopped at once: far from every job was posted.
        #expect(Self.posted(pipeline).count < 200)
        // Nothing makes a new, empty store in its place.
        #expect(!FileManager.default.fileExists(atPath: pipeline.sandbox.path(store)))
        let status = try pipeline.pipe(["status"])
        #expect(status.0 == 125 && status.2.contains("seqpipe init"), "\(status.2)")
    }

    @Test(.timeLimit(.minutes(2))) func aRemovedWriteAheadLogStopsTheRun() throws {
        let pipeline = try Self.pipeline(jobs: 200, work: 0.05)
        let run = try pipeline.start(["run"])
        #expect(waitUntil(20) { Self.posted(pipeline).count >= 3 })
        #expect(unlink(pipeline.sandbox.path(store + "-wal")) == 0)
        #expect(run.wait(30) == 125, "\(run.stderr)")
        #expect(run.stderr.contains("write-ahead log") && run.stderr.contains("was removed"), "\(run.stderr)")
    }

    @Test(.timeLimit(.minutes(2))) func aStoreReplacedUnderTheRunStopsItAndADamagedOneIsRefused() throws {
        let pipeline = try Self.pipeline(jobs: 200, work: 0.05)
        let snapshot = pipeline.sandbox.path("snapshot.db")
        try FileManager.default.copyItem(atPath: pipeline.sandbox.path(store), toPath: snapshot)
        let run = try pipeline.start(["run"])
        #expect(waitUntil(20) { Self.posted(pipeline).count >= 3 })
        #expect(rename(snapshot, pipeline.sandbox.path(store)) == 0)
        #expect(run.wait(30) == 125, "\(run.stderr)")
        #expect(run.stderr.contains("was replaced by another file"), "\(run.stderr)")

        // A page of the file overwritten: the next run refuses it, naming the damage.
        let damaged = pipeline.sandbox.path(store)
        try? FileManager.default.removeItem(atPath: damaged + "-wal")
        try? FileManager.default.removeItem(atPath: damaged + "-shm")
        let handle = try #require(FileHandle(forUpdatingAtPath: damaged))
        handle.seek(toFileOffset: 4096 * 2)
        handle.write(Data(repeating: 0x5A, count: 4096))
        try handle.close()
        let again = try pipeline.pipe(["run", "--once"])
        #expect(again.0 == 125 && again.2.contains("damaged") && again.2.contains("export-csv"), "\(again.0 as Any) \(again.2)")
    }

    /// Runs `script` (sh, `$1` the store's directory, `$2` seqpipe) in a mount namespace of
    /// its own, where it may mount over the store; nil (with a note) where namespaces are not
    /// available.
    static func inMountNamespace(_ pipeline: PipelineSandbox, _ name: String, _ script: String) throws -> (Int32?, String, String)? {
        let unshare = ["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let unshare, (try? pipeline.sandbox.start(unshare, ["-m", "/bin/true"]).wait(10)) == 0 else {
            print("skipped: \(name) needs unshare(1) (util-linux) and mount namespaces (root)")
            return nil
        }
        let child = try pipeline.sandbox.start(unshare, ["-m", "/bin/sh", "-c", script, "sh", pipeline.sandbox.path(".seqpipe"), seqpipePath],
                                               directory: pipeline.sandbox.project)
        let status = child.wait(60)
        return (status, child.stdout, child.stderr)
    }

    /// A store on a read-only mount: the commands that read it work, a run says why it cannot.
    @Test func aReadOnlyStoreIsReadAndARunSaysWhyItCannotWrite() throws {
        let pipeline = try Self.pipeline(jobs: 3, work: 0)
        let script = """
            mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99
            "$2" status && "$2" jobs && "$2" export-csv >/dev/null && echo READ-OK
            "$2" run --once; echo "run: $?"
            """
        guard let (status, out, err) = try Self.inMountNamespace(pipeline, "aReadOnlyStoreIsRead…", script), status != 99 else { return }
        #expect(out.contains("pending 3") && out.contains("READ-OK"), "\(out) \(err)")
        #expect(out.contains("run: 125") && err.contains("read-only mount"), "\(out) \(err)")
    }

    /// A full disk: the write that fails says so, and nothing is lost of what was there.
    @Test func aFullDiskIsNamed() throws {
        let pipeline = try Self.pipeline(jobs: 3, work: 0)
        let script = """
            mkdir -p "$1/../full" && mount -t tmpfs -o size=400k tmpfs "$1/../full" || exit 99
            cp "$1/pipeline.db" "$1/../full/pipeline.db"
            dd if=/dev/zero of="$1/../full/filler" bs=4k 2>/dev/null
            i=0; while [ $i -lt 200 ]; do "$2" --db "$1/../full/pipeline.db" add-job --id "x$i" --account a --field caption="$(head -c 3000 /dev/zero | tr '\\0' x)" || break; i=$((i+1)); done
            "$2" --db "$1/../full/pipeline.db" status | grep -c pending
            """
        guard let (status, out, err) = try Self.inMountNamespace(pipeline, "aFullDiskIsNamed", script), status != 99 else { return }
        #expect(err.contains("full"), "\(out) \(err)")
        #expect(status == 0, "\(out) \(err)")
    }

    @Test func aStoreThatIsNoFileAndAForeignURLAreRefusedWithTheFix() throws {
        let pipeline = try Self.pipeline(jobs: 0, work: 0)
        let device = try pipeline.pipe(["--db", "/dev/null", "init"])
        #expect(device.0 == 125 && device.2.contains("not a regular file"), "\(device.2)")
        #expect(!FileManager.default.fileExists(atPath: "/dev/null-journal"))
        let foreign = try pipeline.pipe(["--db", "mysql://db/x", "status"])
        #expect(foreign.0 == 2 && foreign.2.contains("no 'mysql' store") && foreign.2.contains("postgresql://"), "\(foreign.2)")
        let directory = try pipeline.pipe(["--db", pipeline.sandbox.project, "status"])
        #expect(directory.0 == 125 && directory.2.contains("is a directory"), "\(directory.2)")
    }
}
