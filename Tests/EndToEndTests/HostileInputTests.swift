import Foundation
import Glibc
import SeqSystem
import Testing

/// seqexec against an adversarial user's input: closed pipes, planted FIFOs and symlinks,
/// numbers out of range, foreign state.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HostileInputTests {
    /// `seqexec … | head`: the supervisor outlives its closed stdout and stderr, ends the
    /// command's leftovers, records the run and exits with the command's status.
    @Test func aClosedPipeDoesNotKillTheSupervisor() throws {
        let sandbox = try Sandbox()
        let leftover = sandbox.path("leftover.pid")
        let script = """
            "$0" -- sh -c 'sleep 20 & echo $! > "$1"; sleep .3; exit 3' sh "$1" 2>&1 | true
            echo "${PIPESTATUS[0]}" > "$2"
            """
        let shell = try sandbox.start("/bin/bash", ["-c", script, seqexecPath, leftover, sandbox.path("status")])
        #expect(shell.wait(30) == 0)
        #expect(sandbox.read("status") == "3\n", "seqexec's own status: \(sandbox.read("status"))")
        let pid = try #require(Int32(sandbox.read("leftover.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        sandbox.extraPids.append(pid)
        #expect(waitUntil(5) { !sandbox.isAlive(pid) }, "the backgrounded sleep was left running")
        #expect(sandbox.history.count == 1 && sandbox.history.first?["exit_status"] as? Int == 3, "\(sandbox.history)")
        #expect(sandbox.stateIsClean)
    }

    /// The command gets SIGPIPE at its default action again, or ignored when seqexec's own
    /// caller ignored it: what a shell would have given it.
    @Test func theCommandGetsTheSigpipeDispositionSeqexecStartedWith() throws {
        let sandbox = try Sandbox()
        let (status, out, _) = try sandbox.run(["-q", "--", "grep", "SigIgn", "/proc/self/status"])
        #expect(status == 0)
        let mask = UInt64(out.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16) ?? 0
        #expect(mask & (1 << (UInt64(SIGPIPE) - 1)) == 0, "SIGPIPE ignored in the command: \(out)")
        let ignored = try sandbox.start("/bin/bash", ["-c", "trap '' PIPE; exec \"$0\" -q -- grep SigIgn /proc/self/status", seqexecPath])
        #expect(ignored.wait() == 0)
        let inherited = UInt64(ignored.stdout.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16) ?? 0
        #expect(inherited & (1 << (UInt64(SIGPIPE) - 1)) != 0, "\(ignored.stdout)")
    }

    /// A FIFO planted as the queue or the history blocks nothing: each caller gets 125 and
    /// the fix at once, and a run whose history cannot be written still ends and frees the lock.
    @Test func aFifoInTheStateIsRefusedNotWaitedOn() throws {
        let sandbox = try Sandbox()
        #expect(try sandbox.run(["-q", "true"]).0 == 0)
        let state = try #require(sandbox.projectState)
        #expect(mkfifo(state + "/queue.txt", 0o600) == 0)
        for arguments in [["-q", "-w", "1", "touch", sandbox.path("ran")], ["--status"], ["--kill-all"]] {
            let (status, _, err) = try sandbox.run(arguments, seconds: 10)
            #expect(status == 125, "\(arguments): \(err)")
            #expect(err.contains("queue.txt: it is a FIFO, not a regular file; remove it with 'rm \(state)/queue.txt'"), "\(err)")
        }
        #expect(!FileManager.default.fileExists(atPath: sandbox.path("ran")))
        unlink(state + "/queue.txt")

        unlink(state + "/history.jsonl")
        #expect(mkfifo(state + "/history.jsonl", 0o600) == 0)
        let (status, _, err) = try sandbox.run(["-q", "sh", "-c", "exit 4"], seconds: 10)
        #expect(status == 4, "the run itself is unaffected: \(err)")
        #expect(err.contains("history.jsonl: it is a FIFO, not a regular file"), "\(err)")
        #expect(sandbox.stateIsClean)
        unlink(state + "/history.jsonl")

        // Never written through a symlink either.
        let target = sandbox.path("elsewhere.jsonl")
        #expect(symlink(target, state + "/history.jsonl") == 0)
        let (linked, _, linkErr) = try sandbox.run(["-q", "true"], seconds: 10)
        #expect(linked == 0 && linkErr.contains("history.jsonl: it is a symlink, not a regular file"), "\(linkErr)")
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    /// Every byte from 0x01 to 0xFF reaches the command unchanged: in an argument, in a
    /// variable of the environment, and in the program's path (all but '/', in one name).
    @Test func argvEnvironmentAndProgramPathPassByteForByte() throws {
        let sandbox = try Sandbox()
        let all = [UInt8](1...255)
        let directory = sandbox.path("bin")
        #expect(mkdir(directory, 0o700) == 0)
        let program = [UInt8](directory.utf8) + [UInt8(ascii: "/")] + all.filter { $0 != UInt8(ascii: "/") }
        let script = "#!/usr/bin/env python3\nimport os, sys\nsys.stdout.buffer.write(os.fsencode(sys.argv[0]).hex().encode() + b' ' + os.fsencode(sys.argv[1]).hex().encode() + b' ' + os.environb[b'ALL_BYTES'].hex().encode() + b'\\n')\n"
        let fd = Spawn.openRaw(program, [.writeOnly, .create, .exclusive], 0o700)
        try #require(fd >= 0, "cannot create the program: \(Errno.current)")
        _ = script.utf8.withContiguousStorageIfAvailable { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let output = try FileSystem.open(sandbox.path("out"), [.writeOnly, .create, .truncate], mode: 0o600)
        var environment = sandbox.environment.map { [UInt8]("\($0.key)=\($0.value)".utf8) }
        environment.append([UInt8]("ALL_BYTES=".utf8) + all)
        let pid = try Spawn.spawn([[UInt8](seqexecPath.utf8), [UInt8]("-q".utf8), [UInt8]("--".utf8), program, all],
                                  environment: environment, resetSignals: [], output: output)
        output.close()
        var status: TerminationStatus?
        #expect(waitUntil(30) { status = try? Spawn.reap(pid); return status != nil })
        #expect(status == .exited(0), "\(sandbox.read("out"))")
        func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
        #expect(sandbox.read("out") == "\(hex(program)) \(hex(all)) \(hex(all))\n")
    }

    /// Numbers out of range, in any notation, are refused before anything starts.
    @Test func numbersAreRangeCheckedBeforeTheCommandStarts() throws {
        let sandbox = try Sandbox()
        let marker = sandbox.path("ran")
        for options in [["-t", "1e10"], ["-t", "0x10"], ["-t", "inf"], ["-m", "17592186044416"],
                        ["--min-available", "9223372036854775807"], ["--kill-grace", "-1"], ["--slots", "+2"]] {
            let (status, _, err) = try sandbox.run(options + ["touch", marker])
            #expect(status == 125, "\(options): \(err)")
            #expect(err.hasPrefix("seqexec: invalid \(options[0]) '\(options[1])': expected "), "\(err)")
        }
        let make = try sandbox.makeSeq(["-q", "-f", "/dev/null"], environment: ["SEQEXEC_TIMEOUT": "1e10"])
        #expect(make.wait() == 125 && make.stderr.contains("invalid SEQEXEC_TIMEOUT '1e10'"), "\(make.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    /// A state base given by hand gets the default base's checks: another user's is refused.
    @Test func anExplicitBaseOfAnotherUserIsRefused() throws {
        guard getuid() == 0 else {
            print("skipped: anExplicitBaseOfAnotherUserIsRefused needs root to give a directory to another user")
            return
        }
        let sandbox = try Sandbox()
        let base = sandbox.root + "/foreign"
        #expect(mkdir(base, 0o700) == 0 && chown(base, 65534, 65534) == 0)
        let (status, _, err) = try sandbox.run(["--state-dir", base, "-q", "touch", sandbox.path("ran")])
        #expect(status == 125 && err.contains("unsafe state \(base): owned by uid 65534"), "\(err)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.path("ran")))
    }

    /// A queue line names a live process, but not one that holds the line's waiter lock (a
    /// reused pid, a forged line): nobody waits behind it, and --kill-all leaves that process be.
    @Test func aReusedPidCannotAdoptAQueueLine() throws {
        let sandbox = try Sandbox()
        let bystander = try sandbox.start("/bin/sleep", ["300"])
        #expect(waitUntil { (try? ProcStat.read(bystander.pid))?.command == "sleep" })
        let start = try #require(try? ProcStat.read(bystander.pid).startTime)
        #expect(try sandbox.run(["-q", "true"]).0 == 0)
        let state = try #require(sandbox.projectState)
        let lines = [
            "\(bystander.pid):1796160000.000000:forged%3Awith%20token:start=\(start):prio=high:w=deadbeefdeadbeef",
            "\(bystander.pid):1796160000.000001:forged%3Ano%20token:start=\(start):prio=high",
        ]
        try sandbox.write("../state/\((state as NSString).lastPathComponent)/queue.txt", lines.joined(separator: "\n") + "\n")
        let (status, _, err) = try sandbox.run(["-q", "-w", "5", "true"], seconds: 10)
        #expect(status == 0, "it did not wait behind a line nobody holds: \(err)")
        #expect(sandbox.queueLines.isEmpty)

        try sandbox.write("../state/\((state as NSString).lastPathComponent)/queue.txt", lines.joined(separator: "\n") + "\n")
        let (killed, out, _) = try sandbox.run(["--kill-all"])
        #expect(killed == 0 && out.contains("nothing to end"), "\(out)")
        #expect(bystander.isRunning, "--kill-all signalled a process it had not proved to be a waiter")
        #expect(sandbox.queueLines.isEmpty)
    }

    /// The same with a pid the kernel really reused: inside a pid namespace a waiter is
    /// killed and a bystander is started at its pid (ns_last_pid) until one lands in the same
    /// clock tick, so pid and start time both match the dead waiter's line. The line reads as
    /// stale and --kill-all leaves the bystander be. Needs unshare(1) and namespaces.
    @Test func aPidReusedInAPidNamespaceCannotAdoptAQueueLine() throws {
        let sandbox = try Sandbox()
        let unshare = ["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let namespace = geteuid() == 0 ? ["--pid", "--fork", "--mount-proc", "--kill-child"]
            : ["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child"]
        guard let unshare, (try? sandbox.start(unshare, namespace + ["/bin/sh", "-c", "echo $$ > /proc/sys/kernel/ns_last_pid"]).wait(10)) == 0 else {
            print("skipped: aPidReusedInAPidNamespaceCannotAdoptAQueueLine needs unshare(1) (util-linux) and pid namespaces with a writable ns_last_pid")
            return
        }
        let gate = sandbox.fifo("gate")
        let script = try sandbox.script("reuse.sh", #"""
            seqexec=$1 gate=$2 state=$SEQEXEC_STATE_DIR
            "$seqexec" -q -- sh -c 'read x < "$0"' "$gate" &
            holder=$!
            i=0; until ls "$state"/seq-exec-*/executor.lock/owner >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 20000 ] && exit 3; done
            attempt=0
            while [ $attempt -lt 1000 ]; do
                attempt=$((attempt+1))
                setsid "$seqexec" -q -- true & w=$!
                i=0; until grep -q "^$w:" "$state"/seq-exec-*/queue.txt 2>/dev/null; do i=$((i+1)); [ $i -gt 20000 ] && exit 4; done
                # The front and its supervisor (which holds the waiter's lock) at once, with -9:
                # setsid made the front a group leader. A front killed alone takes its line along.
                kill -9 -$w; wait $w 2>/dev/null
                echo $((w - 1)) > /proc/sys/kernel/ns_last_pid
                sleep 300 & s=$!
                line=$(grep "^$w:" "$state"/seq-exec-*/queue.txt)
                start=${line##*:start=}; start=${start%%:*}
                set -- $(cat /proc/$s/stat)
                if [ "$s" = "$w" ] && [ "$start" = "${22}" ]; then
                    echo "reused $s after $attempt attempts"
                    "$seqexec" --status --json > status.json
                    "$seqexec" --kill-all > killall.out; echo "kill-all $?"
                    if kill -0 $s 2>/dev/null; then echo "bystander alive"; fi
                    kill $s
                    exit 0
                fi
                kill $s; wait $s 2>/dev/null
            done
            echo "no reuse in the same tick after $attempt attempts"
            """#)
        let run = try sandbox.start(unshare, namespace + ["/bin/sh", script, seqexecPath, gate], directory: sandbox.project)
        #expect(run.wait(120) == 0, "\(run.stdout)\(run.stderr)")
        let out = run.stdout
        guard out.contains("reused") else {
            print("skipped: aPidReusedInAPidNamespaceCannotAdoptAQueueLine could not land a pid in the dead waiter's clock tick: \(out)")
            return
        }
        print("aPidReusedInAPidNamespaceCannotAdoptAQueueLine: \(out.split(separator: "\n").first ?? "")")
        let status = try JSONSerialization.jsonObject(with: Data(sandbox.read("status.json").utf8)) as? [String: Any]
        let queue = status?["queue"] as? [[String: Any]] ?? []
        #expect(!queue.isEmpty && queue.allSatisfy { $0["stale"] as? Bool == true }, "the dead waiter's line reads as stale: \(queue)")
        #expect(out.contains("kill-all 0"), "\(out) \(sandbox.read("killall.out"))")
        #expect(out.contains("bystander alive"), "--kill-all signalled the process now at the dead waiter's pid: \(out)")
        #expect(sandbox.queueLines.isEmpty)
    }

    /// A waiter that fails mid-wait (its state turned unusable) takes its line with it.
    @Test func aWaiterThatFailsMidWaitLeavesNoLine() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let waiter = try sandbox.seqexec(["-q", job, "w1"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let state = try #require(sandbox.projectState)
        #expect(symlink("/tmp", state + "/executor.lock.1") == 0)
        #expect(waiter.wait(20) == 125)
        #expect(waiter.stderr.contains("executor.lock.1"), "\(waiter.stderr)")
        #expect(sandbox.queueLines.isEmpty, "\(sandbox.queueLines)")
        unlink(state + "/executor.lock.1")
        sandbox.release(hold)
        #expect(holder.wait() == 0)
        #expect(sandbox.stateIsClean)
    }

    /// Too few descriptors to run: said so, with the fix, instead of "no command given".
    @Test func tooFewOpenFilesAreNamed() throws {
        let sandbox = try Sandbox()
        let shell = try sandbox.start("/bin/bash", ["-c", "ulimit -n 8; exec \"$0\" -q -- true", seqexecPath])
        #expect(shell.wait() == 125)
        #expect(shell.stderr == "seqexec: seqexec needs at least 16 open files and the limit is 8; raise it ('ulimit -n 16')\n", "\(shell.stderr)")
    }

    /// A writer killed between writing its temporary queue file and renaming it leaves the
    /// file; the next writer, under the same mutex, removes it.
    @Test func temporaryQueueFilesOfKilledWritersAreRemoved() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let state = try #require(sandbox.projectState)
        try sandbox.write("../state/\((state as NSString).lastPathComponent)/queue.txt.99999.tmp", "garbage\n")
        let waiter = try sandbox.seqexec(["-q", job, "w1"])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        #expect(!FileManager.default.fileExists(atPath: state + "/queue.txt.99999.tmp"))
        sandbox.release(hold)
        #expect(holder.wait() == 0 && waiter.wait() == 0)
    }

    /// A shared directory (/tmp, sticky and everyone's) as the state base is refused with the
    /// fix a user wants: a private directory, not a chmod of /tmp.
    @Test func aSharedStateBaseIsRefusedWithAPrivateOneAsTheFix() throws {
        let sandbox = try Sandbox()
        let (status, _, err) = try sandbox.run(["--state-dir", "/tmp", "true"])
        #expect(status == 125 && err.contains("a directory everyone shares") && !err.contains("chmod"), "\(err)")
    }

    /// A 1 GB `.git` file is no `gitdir:` pointer: it is not read (here, under a 256 MB address
    /// space limit that reading it whole would break), and the command runs.
    @Test func aHugeDotGitFileIsNotReadWhole() throws {
        let sandbox = try Sandbox()
        let dotGit = sandbox.path(".git")
        #expect(FileManager.default.createFile(atPath: dotGit, contents: nil))
        #expect(truncate(dotGit, 1 << 30) == 0)
        let run = try sandbox.start("/bin/sh", ["-c", "ulimit -v 262144 && exec \"$0\" -q git --version", seqexecPath])
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("git version"), "\(run.stdout)")
    }

    /// A command whose arguments the kernel will not take in one exec (E2BIG): seqexec says
    /// so, with the fix, and exits 126, not "permission denied". The waiting supervisor's
    /// stack limit is lowered (prlimit) so that the exec it makes fails while its own did not.
    @Test(.enabled(if: commandOnPath("prlimit"), "needs prlimit(1) (util-linux)"))
    func argumentsTooLargeForOneExecAreNamedAsSuch() throws {
        let sandbox = try Sandbox()
        let go = sandbox.path("go")
        let holder = try sandbox.seqexec(["-q", "sh", "-c", "echo held > '\(sandbox.path("held"))'; while [ ! -e '\(go)' ]; do sleep 0.02; done"])
        #expect(waitUntil { FileManager.default.fileExists(atPath: sandbox.path("held")) })
        // 180 KB of arguments: fine under the default 8 MB stack, over the 128 KB floor of a
        // 512 KB one.
        let big = String(repeating: "a", count: 60_000)
        let waiter = try sandbox.seqexec(["echo", big, big, big])
        #expect(waitUntil { sandbox.queueLines.count == 1 })
        let supervisor = Processes.descendants(of: [waiter.pid]).first?.pid ?? 0
        #expect(supervisor > 0)
        let prlimit = try sandbox.start("/usr/bin/env", ["prlimit", "--pid", "\(supervisor)", "--stack=524288:"])
        #expect(prlimit.wait(10) == 0, "\(prlimit.stderr)")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(holder.wait() == 0)
        #expect(waiter.wait() == 126)
        let said = waiter.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(said == "seqexec: cannot execute 'echo': its arguments and environment together are larger than the kernel takes in one exec (E2BIG); pass fewer or shorter arguments (xargs splits a long list) or a smaller environment",
                "\(said.prefix(300))")
        #expect(!waiter.stderr.contains(big), "no waiting line repeats the whole argument list")
        #expect(sandbox.stateIsClean)
    }
}
