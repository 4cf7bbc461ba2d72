import Foundation
import Glibc
import Testing

let python3: String? = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    ?? ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite(.serialized, .timeLimit(.minutes(2)))
struct TerminalTests {
    /// Ctrl-C typed at a real terminal (a pty): the command, in seqexec's foreground process
    /// group, gets SIGINT once; seqexec exits 130 with the lock released.
    @Test(.enabled(if: python3 != nil, "needs python3 for a pty"))
    func ctrlCAtATerminalEndsTheCommandWith130() throws {
        let sandbox = try Sandbox()
        let driver = sandbox.path("ctrlc_driver.py")
        try """
        import os, pty, select, sys, time
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.argv[1], [sys.argv[1], "sh", "-c", "trap 'echo got-int >> \\"$0\\"; exit 130' INT; echo ready; while :; do sleep 0.05; done", sys.argv[2]])
        out = b""
        deadline = time.time() + 20
        while b"ready" not in out and time.time() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 1024)
        os.write(fd, b"\\x03")
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """.write(toFile: driver, atomically: true, encoding: .utf8)
        let child = try sandbox.start(python3!, [driver, seqexecPath, sandbox.path("caught")])
        let status = child.wait(30)
        #expect(status == 0, "\(child.stderr)")
        #expect(child.stdout == "130\n")
        #expect(sandbox.read("caught") == "got-int\n", "the command got exactly one SIGINT")
        #expect(sandbox.stateIsClean)
    }

    @Test func aWaiterOffATerminalSaysWhatItWaitsFor() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec([job, "waiter"])
        #expect(waitUntil { waiter.stderr.contains("position 1 of 1") })
        #expect(waiter.stderr.hasPrefix("seqexec: waiting for '\(job) holder \(hold)' (pid \(holder.pid), "))
        #expect(!waiter.stderr.contains("\r"), "no in-place updates off a terminal")
        sandbox.release(hold)
        #expect(holder.wait() == 0 && waiter.wait() == 0)
        let (free, _, quiet) = try sandbox.run(["true"])
        #expect(free == 0 && quiet == "", "nothing is printed when the lock is free")
    }
}
