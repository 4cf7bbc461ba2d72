import Foundation
import Testing

/// The three tools read their command lines with one scanner: the conventions a getopt
/// user expects hold in each, and each mistake gets one line naming it (exit 2 or 125).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct CommandLineTests {
    @Test func seqexecTakesBundledFlagsAndAttachedValues() throws {
        let sandbox = try Sandbox()
        let (status, out, err) = try sandbox.run(["-vq", "-t30", "--kill-grace=1", "--", "sh", "-c", "echo ran"])
        #expect(status == 0 && out == "ran\n", "\(err)")
        // -q wins over -v for the guard's own lines; -v was still accepted in the bundle.
        #expect(!err.contains("seqexec:"), "\(err)")
        let (bad, _, badErr) = try sandbox.run(["-vx", "true"])
        #expect(bad == 125 && badErr == "seqexec: unknown option '-x' in '-vx'; see 'seqexec --help'\n")
        let (history, text, _) = try sandbox.run(["-n3", "--history"])
        #expect(history == 0 && text.contains("sh -c"), "\(text)")
    }

    @Test func makeSeqTakesItsOwnOptionsInAnyOrderAndSaysWhereMakesGo() throws {
        let sandbox = try Sandbox()
        let status = try sandbox.makeSeq(["--json", "--status"])
        #expect(status.wait() == 0 && status.stdout.hasPrefix("{\"make_lock\":"), "\(status.stderr)")
        let mixed = try sandbox.makeSeq(["--status", "-j2"])
        #expect(mixed.wait() == 125)
        #expect(mixed.stderr.contains("unknown option '-j'") && mixed.stderr.split(separator: "\n").count == 1, "\(mixed.stderr)")
        let json = try sandbox.makeSeq(["--json"])
        #expect(json.wait() == 125 && json.stderr == "make-seq: --json goes with --status or --history; see 'make-seq --help'\n", "\(json.stderr)")
    }

    @Test func seqpipeTakesOptionsAfterTheCommandAndHelpsPerCommand() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        let store = pipeline.sandbox.path(".seqpipe/pipeline.db")
        // --db after the command, --json before the command's words: both work.
        let (status, json, err) = try pipeline.pipe(["status", "--json", "--db", store])
        #expect(status == 0 && json.hasPrefix("{"), "\(err)")
        let (added, id, _) = try pipeline.pipe(["add-job", "--priority", "-3", "--account", "a1", "--field", "mode=ok", "--db=\(store)"])
        #expect(added == 0 && !id.isEmpty)
        let (help, text, _) = try pipeline.pipe(["device", "--help"])
        #expect(help == 0 && text.contains("device add NAME [--url URL]") && text.contains("device list | device remove NAME"), "\(text)")
        #expect(!text.contains("account add"), "\(text)")
        let (cancelHelp, cancelText, _) = try pipeline.pipe(["cancel", "-h"])
        #expect(cancelHelp == 0 && cancelText.contains("cancel JOB... | cancel [--status S]"), "\(cancelText)")
        let (bad, _, badErr) = try pipeline.pipe(["events", "--json=yes"])
        #expect(bad == 2 && badErr == "seqpipe: events: option --json takes no value; see 'seqpipe events --help'\n", "\(badErr)")
        let (early, _, earlyErr) = try pipeline.pipe(["--workers", "2", "run"])
        #expect(early == 2 && earlyErr == "seqpipe: unknown option '--workers'; see 'seqpipe --help'\n", "\(earlyErr)")
    }
}
