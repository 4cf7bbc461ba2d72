import Foundation
import Glibc
import Testing

/// make-seq against GNU make: real makes, real locks, real nesting.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MakeSeqTests {
    /// A Makefile whose `hold` target blocks until the test writes `hold`, and whose `quick`
    /// target appends to `order`.
    func holdingProject(_ sandbox: Sandbox, include: String = "") throws -> String {
        let hold = sandbox.fifo("hold.fifo")
        try sandbox.write("Makefile", """
        \(include)
        hold:
        \t@echo started > started; read line < \(hold)
        quick:
        \t@echo quick $(N) >> order
        """)
        return hold
    }

    var started: (Sandbox) -> Bool { { FileManager.default.fileExists(atPath: $0.path("started")) } }

    @Test func makesOfOneProjectRunOneAtATimeAndEachWaiterIsToldItsPlace() throws {
        let sandbox = try Sandbox()
        let hold = try holdingProject(sandbox)
        let holder = try sandbox.makeSeq(["hold"])
        #expect(waitUntil { started(sandbox) })
        let second = try sandbox.makeSeq(["quick", "N=1"])
        #expect(waitUntil { sandbox.queueLines("make-lock-").count == 1 })
        let third = try sandbox.makeSeq(["quick", "N=2"])
        #expect(waitUntil { sandbox.queueLines("make-lock-").count == 2 })
        // A make holds the executor lock too: a guarded command of the project waits for it.
        let command = try sandbox.seqexec(["sh", "-c", "echo command >> order"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        #expect(!FileManager.default.fileExists(atPath: sandbox.path("order")))
        #expect(second.stderr.contains("make-seq: 'make quick N=1' waiting for 'make hold' (pid \(holder.pid), "), "\(second.stderr)")
        #expect(second.stderr.contains("— position 1 of 1"), "\(second.stderr)")
        #expect(third.stderr.contains("— position 2 of 2"), "\(third.stderr)")
        let (status, text, _) = try sandbox.run(["--status"])
        #expect(status == 0 && text.contains("'make hold'"), "\(text)")
        let makeStatus = try sandbox.makeSeq(["--status"])
        #expect(makeStatus.wait() == 0)
        #expect(makeStatus.stdout.contains("make lock:") && makeStatus.stdout.contains("  2. pid \(third.pid), 'make quick N=2'"), "\(makeStatus.stdout)")

        sandbox.release(hold)
        #expect(holder.wait() == 0)
        #expect(second.wait() == 0)
        #expect(third.wait() == 0)
        #expect(command.wait() == 0)
        // The command was queued on the executor lock before either make took it.
        #expect(sandbox.lines("order") == ["command", "quick 1", "quick 2"])
        #expect(sandbox.stateIsClean && sandbox.queueLines("make-lock-").isEmpty)
        let makes = sandbox.history.filter { ($0["command"] as? String)?.hasPrefix("make") == true }
        #expect(makes.map { $0["command"] as? String ?? "" } == ["make hold", "make quick N=1", "make quick N=2"])
    }

    @Test func argumentsGoToMakeUntouched() throws {
        let sandbox = try Sandbox()
        try sandbox.write("Makefile", """
        a:
        \t@echo a $(X)
        b:
        \t@echo b $(X)
        fail:
        \t@exit 3
        sleepy:
        \t@sleep 30
        """)
        try sandbox.write("sub/Makefile", "show:\n\t@echo in $$(pwd)\n")
        var child = try sandbox.makeSeq(["-j2", "-k", "a", "b", "X=7"])
        #expect(child.wait() == 0)
        #expect(Set(child.stdout.split(separator: "\n")) == ["a 7", "b 7"], "\(child.stdout)")
        child = try sandbox.makeSeq(["--", "--version"])
        #expect(child.wait() == 0 && child.stdout.hasPrefix("GNU Make"), "make's own --version: \(child.stdout)")
        child = try sandbox.makeSeq(["--version"])
        #expect(child.wait() == 0 && child.stdout == "make-seq 0.1.0\n")
        child = try sandbox.makeSeq(["fail"])
        #expect(child.wait() == 2, "make's own status for a failed target")
        // MAKE_SEQ_ beats SEQEXEC_: the 0.3 s timeout applies.
        child = try sandbox.makeSeq(["sleepy"], environment: ["MAKE_SEQ_TIMEOUT": "0.3", "SEQEXEC_TIMEOUT": "100"])
        #expect(child.wait() == 124)

        // -C DIR: the project is the directory make runs in (no .git here, so itself).
        child = try sandbox.makeSeq(["-C", "sub", "show"])
        #expect(child.wait() == 0 && child.stdout.contains("in \(sandbox.project)/sub"), "\(child.stdout)")
        let (_, json, _) = try sandbox.run(["-p", sandbox.path("sub"), "--history", "--json"])
        let runs = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
        #expect(runs.map { $0["command"] as? String ?? "" } == ["make -C sub show"], "\(json)")

        // Bad settings: one line naming the variable, 125, make not run.
        child = try sandbox.makeSeq(["a"], environment: ["MAKE_SEQ_TIMEOUT": "soon"])
        #expect(child.wait() == 125)
        #expect(child.stderr == "make-seq: invalid MAKE_SEQ_TIMEOUT 'soon': expected seconds from 0 to 31536000 (365 days), e.g. 30, 2.5, 500ms, 90s, 10m or 1h30m\n")
        child = try sandbox.makeSeq(["a"], environment: ["MAKE_SEQ_MAKE": "/usr/local/bin/make-seq"])
        #expect(child.wait() == 125 && child.stderr.contains("names make-seq itself"))
        child = try sandbox.makeSeq(["a"], environment: ["MAKE_SEQ_MAKE": "no-such-make-seqguard"])
        #expect(child.wait() == 127 && child.stderr.contains("command not found"))
    }

    // MARK: - Nesting: one lock order, no deadlock (each waits at most 20 s, then says 75)

    @Test func recursiveMakeWithMakeSeqAsMake() throws {
        let sandbox = try Sandbox()
        try FileManager.default.createDirectory(atPath: sandbox.path(".git"), withIntermediateDirectories: true)
        try sandbox.write("Makefile", "outer:\n\t@$(MAKE) --no-print-directory -C sub inner\n")
        try sandbox.write("sub/Makefile", "inner:\n\t@echo inner ran at level $(MAKELEVEL)\n")
        let child = try sandbox.makeSeq(["outer", "MAKE=\(makeSeqPath)"], environment: ["MAKE_SEQ_WAIT_TIMEOUT": "20"])
        #expect(child.wait(40) == 0, "\(child.stderr)")
        #expect(child.stdout == "inner ran at level 1\n", "\(child.stdout)")
    }

    @Test func seqexecAroundMakeSeqWhileAnotherMakeWaits() throws {
        let sandbox = try Sandbox()
        let go = sandbox.fifo("go")
        try sandbox.write("Makefile", "t:\n\t@echo t ran\nt2:\n\t@echo t2 ran\n")
        let environment = ["SEQEXEC_WAIT_TIMEOUT": "20", "MAKE_SEQ_WAIT_TIMEOUT": "20"].merging(sandbox.toolsOnPath) { $1 }
        // The outer seqexec holds the executor lock; a make-seq takes the make lock and
        // queues on the executor lock; then the nested make-seq asks for the make lock.
        let outer = try sandbox.seqexec(["sh", "-c", "echo > started; read line < \(go); exec make-seq t"], environment: environment)
        #expect(waitUntil { started(sandbox) })
        let other = try sandbox.makeSeq(["t2"], environment: environment)
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        sandbox.release(go)
        #expect(outer.wait(40) == 0, "the nested make-seq runs inside its ancestor's lock: \(outer.stderr)")
        #expect(outer.stdout == "t ran\n")
        #expect(other.wait(40) == 0)
        #expect(other.stdout == "t2 ran\n")
        #expect(sandbox.stateIsClean && sandbox.queueLines("make-lock-").isEmpty)
    }

    @Test func aRecipeThatCallsSeqexec() throws {
        let sandbox = try Sandbox()
        try sandbox.write("Makefile", "t:\n\t@seqexec sh -c 'echo from the recipe'\n")
        let child = try sandbox.makeSeq(["t"], environment: ["SEQEXEC_WAIT_TIMEOUT": "20"].merging(sandbox.toolsOnPath) { $1 })
        #expect(child.wait(40) == 0, "\(child.stderr)")
        #expect(child.stdout == "from the recipe\n")
    }

    @Test func aGitHookThatCallsMakeSeqDuringAGuardedCommit() throws {
        let sandbox = try Sandbox()
        var environment = ["SEQEXEC_WAIT_TIMEOUT": "20", "MAKE_SEQ_WAIT_TIMEOUT": "20", "HOME": sandbox.root,
                           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"]
        environment.merge(sandbox.toolsOnPath) { $1 }
        #expect(try sandbox.start("/usr/bin/env", ["git", "init", "-q", "."], environment: environment).wait() == 0)
        try sandbox.write("Makefile", "check:\n\t@echo hook check ran\n")
        _ = try sandbox.script(".git/hooks/pre-commit", "exec make-seq check\n")
        #expect(try sandbox.start("/usr/bin/env", ["git", "add", "Makefile"], environment: environment).wait() == 0)
        let commit = try sandbox.seqexec(["git", "commit", "-q", "-m", "guarded"], environment: environment)
        #expect(commit.wait(40) == 0, "\(commit.stderr)")
        #expect((commit.stdout + commit.stderr).contains("hook check ran"), "git runs hooks with stdout on stderr: \(commit.stderr)")
        let log = try sandbox.start("/usr/bin/env", ["git", "log", "--format=%s"], environment: environment)
        #expect(log.wait() == 0 && log.stdout == "guarded\n")
    }
}

/// scripts/seq.mk: a plain `make` of a wired Makefile goes through make-seq.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SeqMkTests {
    let include = "include \(packageRoot)/scripts/seq.mk"

    func make(_ sandbox: Sandbox, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws -> Child {
        try sandbox.start("/usr/bin/env", ["make"] + arguments, environment: sandbox.toolsOnPath.merging(environment) { $1 }, directory: directory)
    }

    @Test func aPlainMakeGoesThroughMakeSeqWithGoalsFlagsAndVariables() throws {
        let sandbox = try Sandbox()
        try sandbox.write("Makefile", """
        \(include)
        all: a b
        \t@echo all $(X) $${SEQEXEC_TOKENS:+guarded}
        a:
        \t@echo a $(X)
        b:
        \t@echo b $(X)
        """)
        var child = try make(sandbox, ["-j2", "a", "b", "X=5"])
        #expect(child.wait() == 0, "\(child.stderr)")
        #expect(Set(child.stdout.split(separator: "\n")) == ["a 5", "b 5"], "\(child.stdout)")
        // The default goal, and -C from outside.
        child = try make(sandbox, ["-C", "project"], directory: sandbox.root)
        #expect(child.wait() == 0, "\(child.stderr)")
        #expect(child.stdout == """
        make: Entering directory '\(sandbox.project)'
        a
        b
        all guarded
        make: Leaving directory '\(sandbox.project)'

        """, "one pair of directory lines, as plain make prints: \(child.stdout)")
        #expect(child.stderr.isEmpty, "\(child.stderr)")
        #expect(sandbox.history.map { $0["command"] as? String ?? "" } == ["make -f Makefile a b", "make -f Makefile"])
        // A dry run runs no recipe, so it is not routed.
        child = try make(sandbox, ["-n", "a"])
        #expect(child.wait() == 0 && child.stdout == "echo a \n")
        #expect(sandbox.history.count == 2)
    }

    @Test func plainMakesQueueInArrivalOrder() throws {
        let sandbox = try Sandbox()
        let hold = try MakeSeqTests().holdingProject(sandbox, include: include)
        let holder = try make(sandbox, ["hold"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: sandbox.path("started")) })
        let first = try make(sandbox, ["quick", "N=1"])
        #expect(waitUntil { sandbox.queueLines("make-lock-").count == 1 })
        let second = try make(sandbox, ["quick", "N=2"])
        #expect(waitUntil { sandbox.queueLines("make-lock-").count == 2 })
        #expect(first.stderr.contains("' waiting for 'make -f Makefile hold'"), "\(first.stderr)")
        sandbox.release(hold)
        for child in [holder, first, second] { #expect(child.wait() == 0, "\(child.stderr)") }
        #expect(sandbox.lines("order") == ["quick 1", "quick 2"])
    }

    @Test func makeKillAllStopsTheRunningMakeAndItsWaiters() throws {
        let sandbox = try Sandbox()
        _ = try MakeSeqTests().holdingProject(sandbox, include: include)
        let holder = try make(sandbox, ["hold"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: sandbox.path("started")) })
        let waiter = try make(sandbox, ["quick", "N=1"])
        #expect(waitUntil { sandbox.queueLines("make-lock-").count == 1 })
        let stop = try make(sandbox, ["kill-all"])
        #expect(stop.wait() == 0, "\(stop.stderr)")
        #expect(stop.stdout.contains("ended holder pid"), "\(stop.stdout)")
        #expect(holder.wait() == 2 && waiter.wait() == 2, "each plain make reports its make-seq's end")
        #expect(!FileManager.default.fileExists(atPath: sandbox.path("order")), "the waiter never ran")
        #expect(sandbox.stateIsClean && sandbox.queueLines("make-lock-").isEmpty)
    }

    @Test func withoutMakeSeqItSaysSoAndRunsUnguarded() throws {
        let sandbox = try Sandbox()
        try sandbox.write("Makefile", "\(include)\na:\n\t@echo a ran\n")
        let path = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        var child = try sandbox.start("/usr/bin/env", ["make", "a"], environment: path)
        #expect(child.wait() == 0 && child.stdout == "a ran\n")
        #expect(child.stderr.contains("seq.mk: make-seq not found, running make unguarded"), "\(child.stderr)")
        child = try sandbox.start("/usr/bin/env", ["make", "a", "SEQ_MK_MISSING=error"], environment: path)
        #expect(child.wait() == 2 && child.stdout.isEmpty)
        #expect(child.stderr.contains("seq.mk: make-seq not found; install seqguard"), "\(child.stderr)")
        #expect(sandbox.history.isEmpty)
    }
}
