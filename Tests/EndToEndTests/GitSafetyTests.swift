import Foundation
import Glibc
import Testing

/// Git safety against real git: a `git commit` held open in its editor keeps index.lock, as
/// any long git operation does.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct GitSafetyTests {
    static let identity = ["-c", "user.name=seqguard", "-c", "user.email=seqguard@example.invalid", "-c", "init.defaultBranch=main"]

    /// Runs git in `directory` (the project by default) and expects it to succeed.
    func git(_ sandbox: Sandbox, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws {
        let child = try sandbox.start("git", Self.identity + arguments, environment: environment, directory: directory)
        #expect(child.wait() == 0, "git \(arguments): \(child.stderr)")
    }

    func repository() throws -> Sandbox {
        let sandbox = try Sandbox()
        try git(sandbox, ["init", "-q"])
        try "1\n".write(toFile: sandbox.path("tracked"), atomically: true, encoding: .utf8)
        try git(sandbox, ["add", "tracked"])
        try git(sandbox, ["commit", "-q", "-m", "first"])
        return sandbox
    }

    /// A `git commit -a` waiting in its editor (so holding .git/index.lock) until `release` exists.
    func commitInEditor(_ sandbox: Sandbox) throws -> (Child, release: String) {
        let editing = sandbox.path("editing"), release = sandbox.path("release")
        let editor = try sandbox.script("editor.sh", """
        echo "message" > "$1"
        touch "\(editing)"
        until [ -e "\(release)" ]; do sleep 0.02; done
        """)
        try "2\n".write(toFile: sandbox.path("tracked"), atomically: true, encoding: .utf8)
        let commit = try sandbox.start("git", Self.identity + ["commit", "-a"], environment: ["GIT_EDITOR": editor])
        #expect(waitUntil { FileManager.default.fileExists(atPath: editing) }, "\(commit.stderr)")
        #expect(FileManager.default.fileExists(atPath: sandbox.path(".git/index.lock")), "git commit holds index.lock while editing")
        return (commit, release)
    }

    func makeStaleLock(_ path: String) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-60)], ofItemAtPath: path)
    }

    @Test func aGitCommandWaitsForALiveGitOperationThenRuns() throws {
        let sandbox = try repository()
        let (commit, release) = try commitInEditor(sandbox)
        let guarded = try sandbox.seqexec(["--git-wait", "30", "git", "log", "--format=%s"])
        #expect(waitUntil { guarded.stderr.contains("waiting up to 30s for git pid \(commit.pid)") }, "\(guarded.stderr)")
        #expect(guarded.stderr.contains("index.lock"))
        #expect(guarded.isRunning, "it waits while the commit is open")
        // --status gives the wait its reason: git, the lock file and its git process.
        #expect(waitUntil {
            let (_, json, _) = (try? sandbox.run(["--status", "--json"])) ?? (nil, "", "")
            let status = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
            let reason = ((status?["holders"] as? [[String: Any]])?.first?["reason"]) as? [String: Any]
            return reason?["kind"] as? String == "git" && reason?["pid"] as? Int == Int(commit.pid)
                && (reason?["lock"] as? String)?.hasSuffix("index.lock") == true
        })
        let (_, text, _) = try sandbox.run(["--status"])
        #expect(text.contains("waiting for git: ") && text.contains("index.lock held by pid \(commit.pid)"), "\(text)")
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        #expect(commit.wait() == 0)
        #expect(guarded.wait() == 0, "\(guarded.stderr)")
        #expect(guarded.stdout == "message\nfirst\n", "it ran after the commit landed: \(guarded.stdout)")
    }

    @Test func itGivesUpAfterGitWaitWhileTheLockIsHeld() throws {
        let sandbox = try repository()
        let (commit, release) = try commitInEditor(sandbox)
        defer { _ = FileManager.default.createFile(atPath: release, contents: nil) }
        let (status, stdout, stderr) = try sandbox.run(["--git-wait", "0.3", "git", "status"])
        #expect(status == 75, "\(stderr)")
        #expect(stdout.isEmpty)
        #expect(stderr.contains("gave up after 0.3s waiting for git pid \(commit.pid)"), "\(stderr)")
        #expect(stderr.contains("holding \(sandbox.project)/.git/index.lock") || stderr.contains("/.git/index.lock"), "\(stderr)")
        #expect(sandbox.history.last?["ended"] as? String == "gave_up")
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        #expect(commit.wait() == 0)
        #expect(sandbox.stateIsClean)
    }

    @Test func aStaleLockIsNamedThenCleanedOnRequest() throws {
        let sandbox = try repository()
        let stale = sandbox.path(".git/index.lock")
        try makeStaleLock(stale)
        let (status, stdout, stderr) = try sandbox.run(["git", "status", "--short"])
        #expect(status == 125, "\(stderr)")
        #expect(stdout.isEmpty)
        #expect(stderr.split(separator: "\n").count == 1, "one line: \(stderr)")
        #expect(stderr.contains("stale git lock ") && stderr.contains("/.git/index.lock: no git process is running in"), "\(stderr)")
        #expect(stderr.contains("--clean-stale-git-locks"))
        #expect(FileManager.default.fileExists(atPath: stale), "nothing removed without the flag")

        // A script that runs git gets the same check with --git-guard; --no-git-wait skips it.
        let (forced, _, _) = try sandbox.run(["--git-guard", "sh", "-c", "true"])
        #expect(forced == 125)
        let (skipped, _, _) = try sandbox.run(["--no-git-wait", "git", "rev-parse", "HEAD"])
        #expect(skipped == 0)

        let (cleaned, _, notice) = try sandbox.run(["--clean-stale-git-locks", "git", "status", "--short"])
        #expect(cleaned == 0, "\(notice)")
        #expect(notice.contains("removed stale git lock ") && notice.contains("/.git/index.lock"), "\(notice)")
        #expect(!FileManager.default.fileExists(atPath: stale))
    }

    @Test func aRefLockCountsToo() throws {
        let sandbox = try repository()
        let stale = sandbox.path(".git/refs/heads/feature.lock")
        try makeStaleLock(stale)
        let (status, _, stderr) = try sandbox.run(["git", "branch", "other"])
        #expect(status == 125)
        #expect(stderr.contains("refs/heads/feature.lock"), "\(stderr)")
    }

    /// A linked worktree has its own index: its lock is found in `.git/worktrees/NAME`, and
    /// it does not hold up git in the main worktree.
    @Test func aWorktreeHasItsOwnGitDirectory() throws {
        let sandbox = try repository()
        let worktree = sandbox.root + "/wt"
        try git(sandbox, ["worktree", "add", "-q", worktree])
        let stale = sandbox.path(".git/worktrees/wt/index.lock")
        try makeStaleLock(stale)
        let (status, _, stderr) = try sandbox.run(["git", "-C", worktree, "status", "--short"])
        #expect(status == 125, "\(stderr)")
        #expect(stderr.contains(".git/worktrees/wt/index.lock"), "\(stderr)")
        let (main, _, mainErr) = try sandbox.run(["git", "status", "--short"])
        #expect(main == 0, "the main worktree's index is another file: \(mainErr)")
    }

    /// A hook runs inside `git commit`, which holds index.lock: a guarded git command there
    /// must not wait for its own parent.
    @Test func aGuardedGitCommandInsideAHookRunsAtOnce() throws {
        let sandbox = try repository()
        // Written through a close-on-exec descriptor (Sandbox.script): a child another test
        // spawns meanwhile must not inherit it open for writing, or git's exec of the hook
        // fails with ETXTBSY.
        _ = try sandbox.script(".git/hooks/pre-commit", """
        "\(seqexecPath)" --git-wait 60 git diff --cached --quiet
        echo "$?" > "\(sandbox.path("hook.status"))"

        """)
        let commit = try sandbox.start("git", Self.identity + ["commit", "-q", "--allow-empty", "-m", "hooked"])
        #expect(commit.wait(40) == 0, "\(commit.stderr)")
        #expect(sandbox.read("hook.status") == "0\n", "\(commit.stderr)")
        #expect(!commit.stderr.contains("waiting up to"), "\(commit.stderr)")
    }
}
