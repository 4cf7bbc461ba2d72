import Foundation
import Glibc
import Testing

/// The machine the cgroup v2 tests run on: a user-mode Linux guest booted over this machine's
/// files (`scripts/with-cgroup2`), whose only hierarchy is v2 with the memory, cpu and io
/// controllers, so the v2 path is exercised on a machine that is v1 (this one, and CI, which
/// installs `user-mode-linux`). Each test is a bash script run as root in a fresh guest, from
/// a leaf cgroup `t/leaf` of a subtree given every controller (as a delegated one is), so
/// seqexec makes its runs in `t/seqguard`; it writes what it saw into the project directory.
enum CgroupV2Guest {
    static let script = packageRoot + "/scripts/with-cgroup2"
    static let compiler = ["cc", "clang", "gcc"].first(where: commandOnPath)

    /// Why the suite cannot run here, or nil.
    static let missing: String? = {
        if getuid() != 0 { return "not root" }
        if !commandOnPath("linux.uml") { return "no user-mode Linux kernel (apt-get install user-mode-linux)" }
        if compiler == nil { return "no C compiler for the test's memory helper" }
        return nil
    }()

    /// The test's memory and CPU helper, built into the sandbox: a C program, because a guest
    /// takes seconds to start python and to fault its pages one by one (MAP_POPULATE asks the
    /// kernel for them in one call).
    static func helper(_ sandbox: Sandbox) throws -> String {
        let source = sandbox.path("helper.c")
        try """
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <time.h>
        #include <unistd.h>
        #include <sys/mman.h>
        #include <sys/times.h>
        static void touch(long mb) {
            if (mmap(0, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0) == MAP_FAILED) { perror("mmap"); exit(1); }
        }
        int main(int argc, char **argv) {
            if (argc >= 4 && !strcmp(argv[1], "bomb")) {          /* bomb N MB: N children holding MB each */
                for (int i = 0; i < atoi(argv[2]); i++) {
                    pid_t pid = fork();
                    if (pid == 0) { touch(atol(argv[3])); pause(); _exit(0); }
                    if (pid < 0) usleep(10000);
                }
                pause();
            } else if (argc >= 3 && !strcmp(argv[1], "busy")) {   /* busy S: spins S seconds, prints its CPU seconds */
                struct timespec start, now;
                clock_gettime(CLOCK_MONOTONIC, &start);
                do clock_gettime(CLOCK_MONOTONIC, &now); while (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 < atof(argv[2]));
                struct tms t;
                times(&t);
                printf("%.2f\\n", (double)(t.tms_utime + t.tms_stime) / sysconf(_SC_CLK_TCK));
            } else if (argc >= 5 && !strcmp(argv[1], "hold")) {   /* hold MB READY RELEASE */
                touch(atol(argv[2]));
                FILE *ready = fopen(argv[3], "w");
                if (ready) fclose(ready);
                while (access(argv[4], F_OK) != 0) usleep(10000);
            } else {
                fprintf(stderr, "usage: helper bomb N MB | busy S | hold MB READY RELEASE\\n");
                return 2;
            }
            return 0;
        }
        """.write(toFile: source, atomically: true, encoding: .utf8)
        let build = try sandbox.start(try #require(compiler), ["-O2", "-o", sandbox.path("helper"), source])
        #expect(build.wait(60) == 0, "\(build.stderr)")
        return sandbox.path("helper")
    }

    /// Runs `body` in a fresh guest (bash, in the project directory, with the sandbox's
    /// environment, `$SEQEXEC` and `$HELPER`); `left` then lists what is left of seqexec in
    /// the guest's hierarchy. Returns the guest's status and output.
    static func run(_ sandbox: Sandbox, _ body: String, fromRoot: Bool = false) throws -> (status: Int32?, stdout: String, stderr: String) {
        let script = try sandbox.script("guest.sh", """
        set -u
        cg=/sys/fs/cgroup
        waitfor() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "gave up waiting for $1" >&2; return 1; }
        alive() { local state; state=$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ]; }
        waitgone() { for _ in $(seq 600); do alive $1 || return 0; sleep 0.05; done; echo "gave up waiting for pid $1 to end" >&2; return 1; }
        \(fromRoot ? "" : """
        echo '+memory +cpu +io +pids' > $cg/cgroup.subtree_control
        mkdir -p $cg/t/leaf
        echo '+memory +cpu +io' > $cg/t/cgroup.subtree_control
        echo $$ > $cg/t/leaf/cgroup.procs
        """)
        \(body)
        find $cg -name 'seqguard' -o -name 'run-*' -o -name 'pool-*' > left
        """, interpreter: "/bin/bash")
        let guest = try sandbox.start(Self.script, ["/bin/bash", script], environment: [
            "SEQEXEC": seqexecPath, "HELPER": try helper(sandbox), "WITH_CGROUP2_TIMEOUT": "150",
        ])
        return (guest.wait(180), guest.stdout, guest.stderr)
    }
}

/// The cgroup v2 path of the kernel's limits, in a guest whose only hierarchy is v2: the same
/// tests as `KernelLimitsTests` on v1, with `memory.high` and `memory.events` in place of
/// the threshold eventfd, `memory.max` as the ceiling, `cpu.max`, and `cgroup.kill`. Sizes
/// are those of the v1 tests but for the fork bomb's count: a guest forks a hundred times
/// slower, so it is 400 processes of 2 MB rather than 3,500 (the limit, 300 MB, is the same).
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: CgroupV2Guest.missing == nil,
                                                      "no cgroup v2 guest here (\(CgroupV2Guest.missing ?? "")): the cgroup v2 tests skip"))
struct CgroupV2Tests {
    /// The fork bomb under `-m 300`: its peak stays within 1.05 of the limit, it is ended with
    /// the memory-limit line, and nothing of it and no cgroup is left.
    @Test func aForkBombPeaksWithinTheLimitAndIsEnded() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        "$SEQEXEC" --kernel-limits -m 300 "$HELPER" bomb 400 2 2> bomb.err
        echo $? > bomb.status
        """)
        #expect(status == 0, "\(stdout)\(stderr)")
        let err = sandbox.read("bomb.err")
        #expect(sandbox.read("bomb.status") == "137\n" && err.contains("memory limit 300 MB reached by"), "\(err)")
        try KernelLimitsTests.expectForkBombHeld(sandbox, saying: "cgroup v2")
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }

    /// 400 MB written to a tmpfs file and closed, under `-m 100`: the kernel counts the file's
    /// pages, and the writer is stopped.
    @Test func aTmpfsFileWrittenAndClosedIsCountedAndStopped() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        "$SEQEXEC" -m 100 sh -c 'head -c 400M /dev/zero > /dev/shm/file; sleep 30' 2> tmpfs.err
        echo $? > tmpfs.status
        stat -c %s /dev/shm/file > size
        """)
        #expect(status == 0, "\(stdout)\(stderr)")
        let size = Int(sandbox.read("size").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        print("cgroup v2: tmpfs writer under -m 100 stopped with the file at \(size >> 20) MB")
        #expect(sandbox.read("tmpfs.status") == "137\n" && sandbox.read("tmpfs.err").contains("memory limit 100 MB reached by"), "\(sandbox.read("tmpfs.err"))")
        #expect(size > 0 && size < 110 << 20, "\(size)")
        #expect(sandbox.history.last?["enforcement"] as? String == "kernel")
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }

    /// `--cpus 0.5` (cpu.max) holds a busy loop to half a CPU over 5 s (±10%); `--cpu-weight`
    /// is written as cpu.weight.
    @Test func aCPUQuotaHoldsABusyLoop() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        "$SEQEXEC" --cpus 0.5 "$HELPER" busy 5 > cpu.out 2> cpu.err
        echo $? > cpu.status
        "$SEQEXEC" --cpu-weight 300 sh -c 'cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cpu.weight' > weight.out
        """)
        #expect(status == 0 && sandbox.read("cpu.status") == "0\n", "\(stdout)\(stderr)\(sandbox.read("cpu.err"))")
        let used = Double(sandbox.read("cpu.out").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        print("cgroup v2: --cpus 0.5 held a 5 s busy loop to \(String(format: "%.2f", used)) s of CPU (\(String(format: "%.2f", used / 5)) CPU)")
        #expect(used >= 2.25 && used <= 2.75, "\(used) s of CPU in 5 s")
        #expect(sandbox.read("weight.out") == "300\n", "\(sandbox.read("weight.out"))")
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }

    /// A supervisor SIGKILLed with its command: its cgroup is left, and the next run removes
    /// it. Run from the guest's root cgroup: the runs are made in the root's `seqguard`.
    @Test func aKilledSupervisorsCgroupIsRemovedByTheNextRun() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        "$SEQEXEC" -m 100 sh -c 'touch ready; exec sleep 60' 2> holder.err &
        front=$!
        waitfor ready
        "$SEQEXEC" --status --json > status.json
        read -r supervisor _ < /proc/$front/task/$front/children
        read -r command _ < /proc/$supervisor/task/$supervisor/children
        ls -d $cg/seqguard/run-* > before
        kill -KILL $front $supervisor $command
        wait $front
        waitgone $supervisor
        ls -d $cg/seqguard/run-* > killed
        "$SEQEXEC" -m 100 true
        echo $? > next.status
        """, fromRoot: true)
        #expect(status == 0, "\(stdout)\(stderr)")
        #expect(sandbox.read("status.json").contains("\"memory_enforcement\":\"kernel\""), "\(sandbox.read("status.json"))")
        let before = sandbox.read("before").split(separator: "\n")
        #expect(before.count == 1 && before[0].hasPrefix("/sys/fs/cgroup/seqguard/run-") && sandbox.read("killed") == sandbox.read("before"), "\(before)")
        #expect(sandbox.read("next.status") == "0\n")
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }

    /// A daemon the command double-forked, whose seqexec and supervisor are then killed: the
    /// run's cgroup still holds it, and `--kill-all` ends it from there (the kernel's
    /// `cgroup.kill` last), and removes the cgroup.
    @Test func killAllEndsWhatTheCgroupHoldsAfterTheSupervisorIsGone() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        "$SEQEXEC" -m 200 sh -c "(setsid sh -c 'echo \\$\\$ > daemon.pid; trap \\"\\" TERM; exec sleep 300' </dev/null >/dev/null 2>&1 &); touch ready; exec sleep 300" 2> holder.err &
        front=$!
        waitfor ready && waitfor daemon.pid
        read -r supervisor _ < /proc/$front/task/$front/children
        kill -KILL $front $supervisor
        wait $front
        waitgone $supervisor
        "$SEQEXEC" --kill-all > killall.out 2> killall.err
        echo $? > killall.status
        waitgone $(cat daemon.pid) && echo gone > daemon.state || echo alive > daemon.state
        """)
        #expect(status == 0, "\(stdout)\(stderr)")
        #expect(sandbox.read("killall.status") == "0\n", "\(sandbox.read("killall.err"))")
        #expect(sandbox.read("daemon.state") == "gone\n", "the daemon outlived --kill-all: \(sandbox.read("killall.out"))")
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }

    /// Two projects in one pool share its memory: two runs of 130 MB do not both fit in its
    /// 200 MB, and the one the kernel ends says it was the pool's limit. Nothing of the pool
    /// stays in the hierarchy.
    @Test func twoProjectsInOnePoolShareItsMemory() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        mkdir -p "$SEQEXEC_STATE_DIR/pools" other
        printf 'memory_mb=200\\nslots=2\\n' > "$SEQEXEC_STATE_DIR/pools/shared"
        "$SEQEXEC" --pool shared "$HELPER" hold 130 readyA release 2> a.err &
        a=$!
        waitfor readyA
        "$SEQEXEC" --pool shared -p other "$HELPER" hold 130 readyB release 2> b.err &
        b=$!
        for _ in $(seq 600); do { alive $a && alive $b; } || break; sleep 0.05; done
        touch release
        wait $a; echo $? > a.status
        wait $b; echo $? > b.status
        """)
        #expect(status == 0, "\(stdout)\(stderr)")
        let statuses = [sandbox.read("a.status"), sandbox.read("b.status")]
        print("cgroup v2: two 130 MB runs in a 200 MB pool ended \(statuses.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })")
        #expect(Set(statuses) == ["0\n", "137\n"], "\(statuses) \(sandbox.read("a.err")) \(sandbox.read("b.err"))")
        #expect((sandbox.read("a.err") + sandbox.read("b.err")).contains("pool 'shared' reached its memory limit 200 MB"), "\(sandbox.read("a.err"))\(sandbox.read("b.err"))")
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }

    /// Where cgroup v2 cannot give the run a controller, the run is refused with one line: from
    /// a cgroup whose parent holds processes of its own (the no-internal-process rule), a CPU
    /// limit; and `--io-weight` where the io controller has no weight. Nothing runs.
    @Test func whatCgroupV2CannotGiveIsRefused() throws {
        let sandbox = try Sandbox()
        let (status, stdout, stderr) = try CgroupV2Guest.run(sandbox, """
        mkdir -p $cg/busy/leaf
        sleep 60 &
        other=$!
        echo $other > $cg/busy/cgroup.procs
        echo $$ > $cg/busy/leaf/cgroup.procs
        "$SEQEXEC" --cpus 0.5 sh -c 'echo ran' > busy.out 2> busy.err
        echo $? > busy.status
        echo $$ > $cg/t/leaf/cgroup.procs
        kill $other
        wait $other
        rmdir $cg/busy/leaf $cg/busy
        "$SEQEXEC" --io-weight 200 sh -c 'echo ran' > io.out 2> io.err
        echo $? > io.status
        """)
        #expect(status == 0, "\(stdout)\(stderr)")
        #expect(sandbox.read("busy.status") == "125\n" && sandbox.read("busy.out").isEmpty, "\(sandbox.read("busy.err"))")
        #expect(sandbox.read("busy.err").contains("cannot enable cgroup v2's cpu controller") && sandbox.read("busy.err").contains("Delegate=yes"), "\(sandbox.read("busy.err"))")
        if sandbox.read("io.status") == "0\n" {
            print("note: the guest's io controller has a weight; the refusal of --io-weight is not exercised")
        } else {
            #expect(sandbox.read("io.status") == "125\n" && sandbox.read("io.out").isEmpty && sandbox.read("io.err").contains("--io-weight cannot be enforced here"), "\(sandbox.read("io.err"))")
        }
        #expect(sandbox.read("left").isEmpty, "\(sandbox.read("left"))")
    }
}
