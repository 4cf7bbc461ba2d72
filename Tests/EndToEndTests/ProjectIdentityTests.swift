import Foundation
import Glibc
import SeqSystem
import Testing

/// A project is its directory as the kernel knows it (device and inode): reached by a bind
/// mount or by a new name after a rename, it meets the same lock; two directories never
/// share one, and a state directory that records another project is refused.
@Suite struct ProjectIdentityTests {
    /// A command that logs its start, waits for the file `go`, and logs its end.
    static func holder(_ log: String, _ name: String, _ go: String) -> [String] {
        ["sh", "-c", "echo \(name)-start >> '\(log)'; while [ ! -e '\(go)' ]; do sleep 0.02; done; echo \(name)-end >> '\(log)'"]
    }

    @Test(.timeLimit(.minutes(1))) func aRenamedCheckoutMeetsTheLockItsCommandHolds() throws {
        let sandbox = try Sandbox()
        let project = sandbox.path("checkout")
        try FileManager.default.createDirectory(atPath: project + "/.git", withIntermediateDirectories: true)
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        let first = try sandbox.start(seqexecPath, Self.holder(log, "A", go), directory: project)
        #expect(waitUntil { sandbox.read("order.log").contains("A-start") })
        #expect(rename(project, sandbox.path("renamed")) == 0)
        let second = try sandbox.start(seqexecPath, ["sh", "-c", "echo B-start >> '\(log)'; echo B-end >> '\(log)'"], directory: sandbox.path("renamed"))
        // B waits for A: it is queued behind it, in the same state directory.
        #expect(waitUntil { sandbox.queueLines.count == 1 }, "the second caller waits in the first's queue")
        #expect(!sandbox.read("order.log").contains("B-start"))
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(first.wait() == 0 && second.wait() == 0)
        #expect(sandbox.lines("order.log") == ["A-start", "A-end", "B-start", "B-end"], "\(sandbox.read("order.log"))")
    }

    /// The same checkout through a bind mount (in a mount namespace of the test's own).
    @Test(.timeLimit(.minutes(1))) func aBindMountOfTheCheckoutMeetsTheSameLock() throws {
        let sandbox = try Sandbox()
        let unshare = ["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let unshare, (try? sandbox.start(unshare, ["-m", "/bin/true"]).wait(10)) == 0 else {
            print("skipped: aBindMountOfTheCheckoutMeetsTheSameLock needs unshare(1) (util-linux) and mount namespaces (root)")
            return
        }
        let log = sandbox.path("order.log")
        let go = sandbox.path("go")
        try FileManager.default.createDirectory(atPath: sandbox.path("other"), withIntermediateDirectories: true)
        // In the namespace: the project bound at other/, A started from the project, B from
        // other/ once A holds the lock; B must wait for A.
        let script = """
            mount --bind "$1" "$2" || exit 99
            cd "$1" && "$3" sh -c 'echo A-start >> "$0"; while [ ! -e "$1" ]; do sleep 0.02; done; echo A-end >> "$0"' "$4" "$5" &
            a=$!
            i=0; until grep -q A-start "$4" 2>/dev/null; do i=$((i+1)); [ $i -gt 500 ] && exit 3; sleep 0.02; done
            cd "$2" && "$3" sh -c 'echo B-start >> "$0"; echo B-end >> "$0"' "$4" &
            b=$!
            i=0; until "$3" --status | grep -q 'waiting'; do i=$((i+1)); [ $i -gt 500 ] && exit 4; sleep 0.02; done
            grep -q B-start "$4" && exit 5
            touch "$5"
            wait $a && wait $b
            """
        let run = try sandbox.start(unshare, ["-m", "/bin/sh", "-c", script, "sh", sandbox.project, sandbox.path("other"), seqexecPath, log, go])
        let status = run.wait(50)
        guard status != 99 else {
            print("skipped: aBindMountOfTheCheckoutMeetsTheSameLock could not bind-mount here")
            return
        }
        #expect(status == 0, "\(run.stderr)")
        #expect(sandbox.lines("order.log") == ["A-start", "A-end", "B-start", "B-end"], "\(sandbox.read("order.log"))")
    }

    @Test func twoDirectoriesNeverShareAStateDirectoryAndAForeignRecordIsRefused() throws {
        let sandbox = try Sandbox()
        // The two names whose first 8 digits of SHA-1 once met: each its own state now.
        for name in ["d32430", "d91242"] {
            try FileManager.default.createDirectory(atPath: sandbox.path(name + "/.git"), withIntermediateDirectories: true)
            #expect(try sandbox.start(seqexecPath, ["true"], directory: sandbox.path(name)).wait() == 0)
        }
        let states = try FileManager.default.contentsOfDirectory(atPath: sandbox.state).filter { $0.hasPrefix("seq-exec-") }
        #expect(states.count == 2 && states.allSatisfy { $0.count == "seq-exec-".count + 40 }, "\(states)")
        // A state directory that records another project is not used.
        let record = sandbox.state + "/" + states[0] + "/project"
        #expect(FileManager.default.fileExists(atPath: record))
        try "dir 1:2\n/somewhere/else\n".write(toFile: record, atomically: false, encoding: .utf8)
        let recorded = try String(contentsOfFile: sandbox.state + "/" + states[1] + "/project", encoding: .utf8)
        var refused = 0
        for name in ["d32430", "d91242"] {
            let run = try sandbox.start(seqexecPath, ["true"], directory: sandbox.path(name))
            if run.wait() == 125 && run.stderr.contains("records another project") && run.stderr.contains("rm -r") { refused += 1 }
        }
        #expect(refused == 1, "exactly the project whose record was changed is refused; the other's record: \(recorded)")
    }
}
