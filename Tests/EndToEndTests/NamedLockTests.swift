import Foundation
import Glibc
import Testing

/// `--lock NAME`: a resource guarded by its name, not a project directory. Every caller
/// that names it, from any directory, waits in its one line; other names and projects do not.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct NamedLockTests {
    @Test func callersFromAnyDirectoryShareTheNamedLockAndNothingElse() throws {
        let sandbox = try Sandbox()
        let elsewhere = sandbox.root + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        let (job, hold, holder) = try blockedHolder(sandbox, ["--lock", "deploy"])
        // Another directory, the same name: it waits in the lock's line.
        let waiter = try sandbox.start(seqexecPath, ["-q", "--lock", "deploy", job, "waiter"], directory: elsewhere)
        #expect(waitUntil { sandbox.queueLines.count == 1 }, "\(waiter.stderr)")
        // Another name, and the project itself, are other lines: they run now.
        let other = try sandbox.start(seqexecPath, ["-q", "--lock", "test-db", "sh", "-c", "echo other"], directory: elsewhere)
        #expect(other.wait(30) == 0 && other.stdout == "other\n", "\(other.stderr)")
        let (plain, plainOut, plainErr) = try sandbox.run(["-q", "sh", "-c", "echo project"])
        #expect(plain == 0 && plainOut == "project\n", "\(plainErr)")
        // --status of the name, from anywhere: the holder and the waiter.
        let status = try sandbox.start(seqexecPath, ["--lock", "deploy", "--status"], directory: elsewhere)
        #expect(status.wait(30) == 0)
        #expect(status.stdout.contains("project:  lock deploy") && status.stdout.contains("pid \(holder.pid)")
                && status.stdout.contains("pid \(waiter.pid)"), "\(status.stdout)")
        sandbox.release(hold)
        #expect(holder.wait() == 0 && waiter.wait() == 0, "\(holder.stderr)\(waiter.stderr)")
        #expect(sandbox.lines("order") == ["holder", "waiter"] && sandbox.read("overlap") == "")
    }

    @Test func killAllOfANameEndsItsHolderAndBadNamesAreRefused() throws {
        let sandbox = try Sandbox()
        let (_, _, holder) = try blockedHolder(sandbox, ["--lock", "deploy"])
        let (killed, _, killErr) = try sandbox.run(["--lock", "deploy", "--kill-all"])
        #expect(killed == 0, "\(killErr)")
        #expect(holder.wait(30) != 0, "the holder was ended")
        #expect(!sandbox.isAlive(Int32(sandbox.read("pid-holder").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0))
        // Bad names and two lanes at once are refused with one line, exit 125 (bad usage).
        let (named, _, namedErr) = try sandbox.run(["--lock", "", "true"])
        #expect(named == 125 && namedErr == "seqexec: --lock needs a name of 1 to 200 bytes without control characters, such as deploy-staging\n", "\(namedErr)")
        let (both, _, bothErr) = try sandbox.run(["--lock", "x", "--machine", "true"])
        #expect(both == 125 && bothErr == "seqexec: --lock x and --machine are two different locks; give one\n", "\(bothErr)")
        let (project, _, projectErr) = try sandbox.run(["--lock", "x", "-p", sandbox.project, "true"])
        #expect(project == 125 && projectErr.hasPrefix("seqexec: --lock x and --project "), "\(projectErr)")
    }

    @Test func makeSeqTakesTheNamedLockFromItsEnvironment() throws {
        let sandbox = try Sandbox()
        _ = try sandbox.write("Makefile", "all:\n\t@echo made\n")
        let (_, hold, holder) = try blockedHolder(sandbox, ["--lock", "deploy"])
        let make = try sandbox.makeSeq(["all"], environment: ["MAKE_SEQ_LOCK": "deploy"])
        // It waits in the named lock's line (its make lock comes first, then the executor lock).
        #expect(waitUntil { sandbox.queueLines.count == 1 }, "\(make.stderr)")
        #expect(make.isRunning)
        sandbox.release(hold)
        #expect(holder.wait() == 0 && make.wait(30) == 0, "\(make.stderr)")
        #expect(make.stdout.contains("made"), "\(make.stdout)")
    }

    /// `--order newest-first` (deploy only the latest): of a burst waiting behind a holder,
    /// each newer one takes the place of the older ones, which exit 76 naming it; a waiter
    /// that did not ask it keeps its place.
    @Test func newestFirstRunsOnlyTheNewestOfABurst() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox, ["--lock", "deploy"])
        let patient = try sandbox.seqexec(["-q", "--lock", "deploy", job, "patient"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        var burst: [Child] = []
        for index in 1...3 {
            burst.append(try sandbox.seqexec(["-q", "--lock", "deploy", "--order", "newest-first", job, "deploy\(index)"]))
            // Handshake: each joins the line before the next comes (and takes the older one's place).
            #expect(waitUntil { sandbox.queueLines.contains { $0.contains("deploy\(index)") } }, "\(sandbox.queueLines)")
        }
        let newest = burst[2]
        for older in burst.prefix(2) {
            #expect(older.wait(30) == 76, "\(older.stderr)")
            #expect(older.stderr.contains("replaced by a newer run, pid \(newest.pid) '") && older.stderr.contains("(--order newest-first)"), "\(older.stderr)")
        }
        sandbox.release(hold)
        #expect(holder.wait() == 0 && patient.wait() == 0 && newest.wait() == 0, "\(newest.stderr)")
        #expect(sandbox.lines("order") == ["holder", "patient", "deploy3"] && sandbox.read("overlap") == "")
        let (bad, _, badErr) = try sandbox.run(["--order", "latest", "true"])
        #expect(bad == 125 && badErr.contains("invalid --order 'latest': expected oldest-first or newest-first"), "\(badErr)")
    }
}
