import Foundation
import Glibc
import SeqSystem
import Testing

/// The seqexec under test: $SEQEXEC_BIN, else the one built beside this test bundle.
let seqexecPath: String = {
    if let path = ProcessInfo.processInfo.environment["SEQEXEC_BIN"], !path.isEmpty { return path }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
    return directory.appendingPathComponent("seqexec").path
}()

/// A sibling of seqexec in the same build: make-seq.
let makeSeqPath = (seqexecPath as NSString).deletingLastPathComponent + "/make-seq"

/// The directory holding the built tools, for a PATH that finds them by name (as seq.mk does).
let toolsDirectory = (seqexecPath as NSString).deletingLastPathComponent

/// Whether `name` is a program on this process's PATH (an optional tool a test needs).
func commandOnPath(_ name: String) -> Bool { pathOf(name) != nil }

/// The first of `candidates` (paths, or names on PATH) that is a Python able to import
/// `module` (a client library a test drives: selenium, the MCP SDK), or nil.
func python(importing module: String, from candidates: [String]) -> String? {
    candidates.compactMap(pathOf).first { python in
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: python)
        probe.arguments = ["-c", "import \(module)"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }
}

/// Where `name` is found on PATH (an absolute name as it is), or nil.
func pathOf(_ name: String) -> String? {
    if name.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Polls `condition` until it holds or `seconds` pass: waiting on a file or a process, never a
/// guessed sleep. Returns whether it held.
@discardableResult
func waitUntil(_ seconds: Double = 20, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

/// One process started by a test, with its output in files. Reaped by pid with waitid, so
/// an orphaned grandchild holding an inherited descriptor never hides its parent's exit.
final class Child {
    let pid: Int32
    let stdoutPath: String
    let stderrPath: String
    private var status: TerminationStatus?

    init(_ executable: String, _ arguments: [String], environment: [String: String], directory: String, outputPrefix: String) throws {
        stdoutPath = outputPrefix + ".out"
        stderrPath = outputPrefix + ".err"
        let redirect = "cd \"$0\" && out=$1 && err=$2 && shift 2 && exec \"$@\" </dev/null >\"$out\" 2>\"$err\""
        pid = try Spawn.spawn(
            ["/bin/sh", "-c", redirect, directory, stdoutPath, stderrPath, executable] + arguments,
            environment: environment.map { "\($0.key)=\($0.value)" }, resetSignals: [])
    }

    var isRunning: Bool {
        if status == nil { status = try? Spawn.reap(pid) }
        return status == nil
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The exit status as a shell reports it (128+N for a signal), or nil if still running after `seconds`.
    func wait(_ seconds: Double = 30) -> Int32? {
        guard waitUntil(seconds, { !isRunning }) else { return nil }
        return status?.shellExitCode
    }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }
}

/// A private project and state directory for one test, removed afterwards with every
/// process the test started, whether the test passed or not.
final class Sandbox {
    let root: String
    let project: String
    let state: String
    private(set) var children: [Child] = []
    private var counter = 0

    init() throws {
        var template = Array("/tmp/seqexec-e2e-XXXXXX".utf8CString)
        root = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        project = root + "/project"
        state = root + "/state"
        try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
    }

    deinit {
        // A test that ended with a child still running (it failed, or gave up waiting) may
        // leave that child's supervisor running its command on: killing a front leaves the
        // run supervised, by design.
        let unfinished = children.contains { $0.isRunning }
        for child in children where child.isRunning { kill(child.pid, SIGKILL) }
        // Those, and submitted runs, which are no children of the test: the guard's own
        // emergency stop ends them, by the identities their state records.
        if let lanes = try? FileManager.default.contentsOfDirectory(atPath: state),
           unfinished || lanes.contains(where: { FileManager.default.fileExists(atPath: "\(state)/\($0)/runs") }),
           let stop = try? Child(seqexecPath, ["-q", "--kill-all"], environment: environment, directory: project, outputPrefix: "\(root)/kill-all") {
            _ = stop.wait(30)
        }
        // Only the very process a test named: its pid may have been reused since.
        for pid in extraPids where isAlive(pid) {
            if let started = extraStarts[pid] ?? nil, (try? ProcStat.read(pid).startTime) == started { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Pids a test learnt from files (a command's own pid) and must end if the test fails.
    /// Each is remembered with its start time when added, so a reused pid is never hit.
    var extraPids: [Int32] = [] {
        didSet { for pid in extraPids where extraStarts[pid] == nil { extraStarts[pid] = try? ProcStat.read(pid).startTime } }
    }
    private var extraStarts: [Int32: UInt64?] = [:]

    var environment: [String: String] {
        // Nothing of the person's own settings leaks in: every SEQEXEC_ name and the legacy ones.
        // Nor a make the tests run under (`make test`): its flags, level and jobserver.
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SEQEXEC_") && !$0.key.hasPrefix("MAKE_SEQ") }
        for name in ["VERBOSE", "TIMEOUT", "MEMORY_LIMIT_MB", "CHECK_INTERVAL", "GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE",
                     "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES", "MAKE", "SEQ_MK"] {
            environment[name] = nil
        }
        environment["SEQEXEC_STATE_DIR"] = state
        return environment
    }

    /// Starts `seqexec ARGS` in the project directory.
    @discardableResult
    func seqexec(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Child {
        counter += 1
        let child = try Child(seqexecPath, arguments, environment: environment.merging(extra) { $1 }, directory: project,
                              outputPrefix: "\(root)/child-\(counter)")
        children.append(child)
        return child
    }

    /// Starts any program (a bystander, a helper).
    func start(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:], directory: String? = nil) throws -> Child {
        counter += 1
        let child = try Child(executable, arguments, environment: environment.merging(extra) { $1 }, directory: directory ?? project,
                              outputPrefix: "\(root)/child-\(counter)")
        children.append(child)
        return child
    }

    /// Starts `make-seq ARGS` in the project directory (or `directory`).
    @discardableResult
    func makeSeq(_ arguments: [String], environment extra: [String: String] = [:], directory: String? = nil) throws -> Child {
        try start(makeSeqPath, arguments, environment: extra, directory: directory)
    }

    /// The environment with the built seqexec and make-seq first on PATH, as an installed
    /// seqguard would be.
    var toolsOnPath: [String: String] { ["PATH": toolsDirectory + ":" + (environment["PATH"] ?? "/usr/bin:/bin")] }

    /// The state directory of `namespace` (`seq-exec-`, `make-lock-`) for `project`, once it exists.
    func stateDirectory(_ prefix: String) -> String? {
        (try? FileManager.default.contentsOfDirectory(atPath: state))?.first { $0.hasPrefix(prefix) }.map { state + "/" + $0 }
    }

    /// Runs seqexec to completion and returns (status, stdout, stderr).
    func run(_ arguments: [String], environment extra: [String: String] = [:], seconds: Double = 30) throws -> (Int32?, String, String) {
        let child = try seqexec(arguments, environment: extra)
        let status = child.wait(seconds)
        return (status, child.stdout, child.stderr)
    }

    func path(_ name: String) -> String { project + "/" + name }

    func read(_ name: String) -> String { (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "" }

    func lines(_ name: String) -> [String] { read(name).split(separator: "\n").map(String.init) }

    /// The project's state directory (`<state>/seq-exec-<hash>`), once it exists.
    var projectState: String? {
        (try? FileManager.default.contentsOfDirectory(atPath: state))?.first { $0.hasPrefix("seq-exec-") }.map { state + "/" + $0 }
    }

    var queueLines: [String] { queueLines("seq-exec-") }

    /// The queue of the lane whose directory name starts with `prefix` (`make-lock-`).
    func queueLines(_ prefix: String) -> [String] {
        guard let dir = stateDirectory(prefix), let text = try? String(contentsOfFile: dir + "/queue.txt", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    var lockExists: Bool {
        guard let dir = projectState else { return false }
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.hasPrefix("executor.lock") }
    }

    /// The records of `history.jsonl`, oldest first.
    var history: [[String: Any]] {
        guard let dir = projectState, let text = try? String(contentsOfFile: dir + "/history.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    /// A python3 helper that allocates and touches memory: `alloc MB READY RELEASE [FORKS]`
    /// allocates MB MiB, forks FORKS children that share it, writes READY, and holds it until
    /// the file RELEASE exists; `alloc bomb` allocates 8 MiB every 10 ms for ever.
    func allocator() throws -> String {
        try script("alloc.py", """
        import os, sys, time
        if sys.argv[1] == "bomb":
            keep = []
            while True:
                keep.append(bytearray(8 << 20))
                time.sleep(0.01)
        block = bytearray(int(sys.argv[1]) << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        children = []
        for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 0):
            pid = os.fork()
            if pid == 0:  # a worker: holds the shared pages until released
                while not os.path.exists(sys.argv[3]):
                    time.sleep(0.01)
                os._exit(0)
            children.append(pid)
        open(sys.argv[2], "w").write("ready")
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.01)
        for pid in children:
            os.waitpid(pid, 0)
        """, interpreter: "/usr/bin/env python3")
    }

    /// No lock and no queue line left.
    var stateIsClean: Bool { !lockExists && queueLines.isEmpty }

    func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // A zombie is dead for our purposes.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// A script in the project directory.
    func script(_ name: String, _ body: String, interpreter: String = "/bin/sh") throws -> String {
        // Written through a close-on-exec descriptor: a child spawned meanwhile by another
        // test must not inherit it, or exec'ing the script fails with ETXTBSY.
        let file = path(name)
        let fd = try FileSystem.open(file, [.writeOnly, .create, .truncate], mode: 0o755)
        defer { fd.close() }
        try fd.writeAll("#!\(interpreter)\n" + body)
        return file
    }

    /// A plain file in the project directory (a Makefile: recipe lines start with "\t").
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path(name)
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = try FileSystem.open(file, [.writeOnly, .create, .truncate], mode: 0o644)
        defer { fd.close() }
        try fd.writeAll(text)
        return file
    }

    /// A FIFO the test writes to release a blocked command: a handshake, not a sleep.
    func fifo(_ name: String) -> String {
        let file = path(name)
        mkfifo(file, 0o600)
        return file
    }

    /// Opens `fifo` for writing and closes it: a command blocked in `read < fifo` goes on.
    func release(_ fifo: String) {
        let fd = open(fifo, O_WRONLY)
        if fd >= 0 { _ = Glibc.write(fd, "go\n", 3); close(fd) }
    }
}
