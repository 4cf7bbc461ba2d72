import Foundation
import Glibc
import Testing

@Suite(.serialized, .timeLimit(.minutes(3)))
struct SupervisionTests {
    @Test func exitStatuses() throws {
        let sandbox = try Sandbox()
        let notExecutable = sandbox.path("plain.txt")
        try "hello".write(toFile: notExecutable, atomically: true, encoding: .utf8)
        let cases: [([String], Int32)] = [
            (["true"], 0),
            (["sh", "-c", "exit 3"], 3),
            (["sh", "-c", "kill -9 $$"], 137),
            (["sh", "-c", "kill -TERM $$"], 143),
            (["no-such-command-seqguard"], 127),
            ([notExecutable], 126),
            (["-t", "0.3", "sleep", "30"], 124),
            (["--slots", "0", "true"], 125),
            (["--priority", "urgent", "true"], 125),
            (["--bogus", "true"], 125),
            (["-t", "abc", "true"], 125),
            ([], 125),
        ]
        for (arguments, expected) in cases {
            let (status, _, stderr) = try sandbox.run(arguments)
            #expect(status == expected, "seqexec \(arguments): \(stderr)")
            if expected >= 124 && expected != 137 && expected != 143 {
                #expect(stderr.split(separator: "\n").count == 1, "one line for \(arguments): \(stderr)")
            }
        }
        #expect(sandbox.stateIsClean)
    }

    @Test func badEnvironmentIsNamed() throws {
        let sandbox = try Sandbox()
        let (status, _, stderr) = try sandbox.run(["true"], environment: ["SEQEXEC_TIMEOUT": "soon"])
        #expect(status == 125)
        #expect(stderr.contains("SEQEXEC_TIMEOUT"))
        // The bare names of the original tooling belong to the migration shims alone: a CI's
        // generic TIMEOUT=1 must not end seqexec's commands after a second.
        let (ignored, _, _) = try sandbox.run(["sh", "-c", "sleep 1.2"], environment: ["TIMEOUT": "0.2", "VERBOSE": "1"])
        #expect(ignored == 0, "TIMEOUT is not seqexec's")
        let (legacy, _, _) = try sandbox.run(["true"], environment: ["TIMEOUT": "x1", "SEQEXEC_LEGACY_NAMES": "1"])
        #expect(legacy == 125, "under a shim a bad TIMEOUT is reported")
        let (fine, _, _) = try sandbox.run(["-t", "5", "true"], environment: ["TIMEOUT": "10", "SEQEXEC_LEGACY_NAMES": "1"])
        #expect(fine == 0)
    }

    @Test func argumentsPassIntactWithoutAShell() throws {
        let sandbox = try Sandbox()
        let arguments = ["a b", "$HOME", "*", ";", "it's", "\"q\"", "", "x\ny"]
        let (status, stdout, _) = try sandbox.run(["printf", "[%s]\\n"] + arguments)
        #expect(status == 0)
        #expect(stdout == arguments.map { "[\($0)]\n" }.joined())
    }

    @Test func timeoutEndsATermIgnoringTree() throws {
        let sandbox = try Sandbox()
        let script = try sandbox.script("stubborn.sh", """
        trap '' TERM
        sh -c 'trap "" TERM; echo $$ > "\(sandbox.project)/grandchild"; exec sleep 300' &
        wait
        """)
        let started = Date()
        let (status, _, stderr) = try sandbox.run(["-t", "0.5", "--kill-grace", "0.5", script])
        #expect(status == 124)
        #expect(stderr.contains("timed out after 0.5s"))
        #expect(Date().timeIntervalSince(started) < 20)
        let grandchild = try #require(Int32(sandbox.read("grandchild").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(grandchild)
        #expect(!sandbox.isAlive(grandchild))
        #expect(sandbox.stateIsClean)
    }

    @Test func leftoverDescendantsAreEndedWhenTheCommandExits() throws {
        let sandbox = try Sandbox()
        let script = try sandbox.script("daemonise.sh", """
        ( setsid sleep 300 & echo $! > "\(sandbox.project)/daemon" ) &
        wait
        exit 4
        """)
        let (status, _, stderr) = try sandbox.run(["--kill-grace", "1", script])
        #expect(status == 4)
        #expect(stderr.contains("ending 1 leftover process"))
        let daemon = try #require(Int32(sandbox.read("daemon").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(daemon)
        #expect(!sandbox.isAlive(daemon))
        #expect(sandbox.stateIsClean)
    }

    @Test(arguments: [SIGTERM, SIGHUP, SIGINT, SIGQUIT])
    func signalsAreForwardedAndTheLockReleasedAfter(signal: Int32) throws {
        let sandbox = try Sandbox()
        let script = try sandbox.script("trap.sh", """
        trap 'echo caught > "\(sandbox.project)/caught"; exit 7' \(signal)
        echo ready > "\(sandbox.project)/ready"
        while :; do sleep 0.02; done
        """)
        let child = try sandbox.seqexec([script])
        #expect(waitUntil { sandbox.read("ready") == "ready\n" })
        child.signal(signal)
        #expect(child.wait() == 7)
        #expect(sandbox.read("caught") == "caught\n")
        #expect(sandbox.stateIsClean)
    }

    @Test func aSignalWhileWaitingRemovesTheQueueLine() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec(["-q", job, "waiter"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        waiter.signal(SIGINT)
        #expect(waiter.wait() == 130)
        #expect(sandbox.queueLines.isEmpty)
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        #expect(sandbox.lines("order") == ["holder"])
        #expect(sandbox.stateIsClean)
    }

    @Test func nestedCallsOfTheHolderPassStraightThrough() throws {
        let sandbox = try Sandbox()
        // seqexec inside seqexec inside seqexec, same project: no waiting on itself.
        let (status, stdout, stderr) = try sandbox.run(
            ["-w", "10", "sh", "-c", "\"$0\" -w 10 sh -c '\"$0\" -w 10 echo inner' \"$0\"", seqexecPath], seconds: 30)
        #expect(status == 0, "\(stderr)")
        #expect(stdout == "inner\n")
        #expect(sandbox.stateIsClean)
    }

    @Test func aForgedTokenDoesNotPass() throws {
        let sandbox = try Sandbox()
        let (_, hold, holder) = try blockedHolder(sandbox)
        let name = try #require(sandbox.projectState.map { URL(fileURLWithPath: $0).lastPathComponent })
        let (status, stdout, _) = try sandbox.run(["-q", "-w", "0.3", "echo", "sneaked"], environment: ["SEQEXEC_TOKENS": "\(name)=0123456789abcdef01234567"])
        #expect(status == 75)
        #expect(stdout == "")
        sandbox.release(hold)
        #expect(holder.wait() == 0)
    }
}
