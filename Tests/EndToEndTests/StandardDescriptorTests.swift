import Foundation
import Glibc
import SeqSystem
import Testing

/// A caller that closed 0, 1 or 2: each tool opens /dev/null on them before anything else,
/// so neither its own errors nor the command's output land in a lock's files.
@Suite struct StandardDescriptorTests {
    @Test(.timeLimit(.minutes(1))) func closedStandardDescriptorsBehindAHolderStillRunTheCommand() throws {
        let sandbox = try Sandbox()
        let go = sandbox.path("go")
        let holder = try sandbox.seqexec(["sh", "-c", "echo held > '\(sandbox.path("held"))'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: sandbox.path("held")) })
        // All three closed, waiting behind the holder.
        let closed = try sandbox.start("/bin/sh", ["-c", "exec \"$0\" sh -c 'echo ran > \"$0\"' \"$1\" <&- >&- 2>&-", seqexecPath, sandbox.path("ran")])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(holder.wait() == 0)
        #expect(closed.wait() == 0, "\(closed.stderr)")
        #expect(sandbox.read("ran") == "ran\n")
    }

    /// Stdout and stderr closed: the command prints, and the owner record `--status` reads
    /// is still the holder's own.
    @Test(.timeLimit(.minutes(1))) func aCommandWithoutStdoutAndStderrCannotWriteIntoTheOwnerRecord() throws {
        let sandbox = try Sandbox()
        let go = sandbox.path("go")
        // It prints first, then says it is up: by then its output went wherever 1 and 2 lead.
        let script = "echo noise-0; echo noise-0 >&2; echo up > '\(sandbox.path("up"))'; i=1; while [ ! -e '\(go)' ]; do echo noise-$i; echo noise-$i >&2; i=$((i+1)); sleep 0.01; done"
        let run = try sandbox.start("/bin/sh", ["-c", "exec \"$0\" sh -c \"$1\" >&- 2>&-", seqexecPath, script])
        #expect(waitUntil { sandbox.read("up") == "up\n" })
        let (status, out, err) = try sandbox.run(["--status", "--json"])
        #expect(status == 0, "\(err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        let holders = object["holders"] as? [[String: Any]] ?? []
        #expect(holders.first?["pid"] as? Int == Int(run.pid), "\(out)")
        let owner = (sandbox.stateDirectory("seq-exec-").map { (try? String(contentsOfFile: $0 + "/executor.lock/owner", encoding: .utf8)) ?? "" }) ?? ""
        // Its own lines only (the command text names the noise; no line of noise is in it).
        #expect(!owner.split(separator: "\n").contains { $0.hasPrefix("noise-") } && owner.contains("token="), "\(owner)")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(run.wait() == 0)
    }
}
