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
        // Its own command first, then what it waits for: several waiters' lines say which is which.
        #expect(waiter.stderr.hasPrefix("seqexec: '\(job) waiter' waiting for '\(job) holder \(hold)' (pid \(holder.pid), "), "\(waiter.stderr)")
        #expect(!waiter.stderr.contains("\r"), "no in-place updates off a terminal")
        sandbox.release(hold)
        #expect(holder.wait() == 0 && waiter.wait() == 0)
        let (free, _, quiet) = try sandbox.run(["true"])
        #expect(free == 0 && quiet == "", "nothing is printed when the lock is free")
    }

    /// The README's own example on a real terminal: three waiters share one screen. Each
    /// prints whole lines that name its own command, fitted to the width, and none redraws
    /// a line (so no "position 2 of 2lint" garble, no stale half-line left behind).
    @Test(.enabled(if: python3 != nil, "needs python3 for a pty"))
    func waitersSharingATerminalEachPrintTheirOwnWholeLines() throws {
        let sandbox = try Sandbox()
        let go = sandbox.path("go")
        let holder = try sandbox.seqexec(["-q", "sh", "-c", "echo held > '\(sandbox.path("held"))'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: sandbox.path("held")) })
        let driver = sandbox.path("shared_driver.py")
        try """
        import fcntl, os, pty, select, struct, sys, termios, time
        pid, fd = pty.fork()
        if pid == 0:
            os.execv("/bin/sh", ["sh", "-c", '"$0" true make-test & "$0" true make-lint & "$0" true sleep-1 & wait', sys.argv[1]])
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        out = b""
        deadline = time.time() + 40
        while time.time() < deadline:
            if not os.path.exists(sys.argv[2]) and out.count(b"waiting") >= 3:
                open(sys.argv[2], "w").close()
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors="replace"))
        """.write(toFile: driver, atomically: true, encoding: .utf8)
        let run = try sandbox.start(python3!, [driver, seqexecPath, go])
        #expect(run.wait(60) == 0, "\(run.stderr)")
        #expect(holder.wait(20) == 0)
        let screen = run.stdout
        #expect(!screen.contains("\u{1B}[K"), "no line is redrawn: \(screen.debugDescription)")
        let lines = screen.split(whereSeparator: \.isNewline).map(String.init).filter { $0.contains("waiting") }
        for name in ["make-test", "make-lint", "sleep-1"] {
            #expect(lines.contains { $0.hasPrefix("seqexec: 'true \(name)' waiting ") }, "\(name): \(lines)")
        }
        #expect(lines.allSatisfy { $0.count <= 79 && $0.components(separatedBy: "seqexec:").count == 2 }, "whole lines, one waiter each: \(lines)")
    }
}
