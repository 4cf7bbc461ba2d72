import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// How one guarded command of a worker ended.
public struct StepResult: Sendable {
    public var run: SupervisedRun
    /// The tail of what it printed (stdout and stderr together).
    public var output: String

    public var succeeded: Bool { run.ending == .exited(.exited(0)) }

    /// The last non-empty line of output, for the job's error column.
    public var lastLine: String {
        output.split(separator: "\n").last { !$0.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } }.map(String.init) ?? ""
    }

    public var endingText: String {
        switch run.ending {
        case .exited(.exited(let code)): return "exit \(code)"
        case .exited(.signaled(let signal)): return "killed by \(signal.name)"
        case .timedOut: return "timed out"
        case .memoryExceeded: return "memory limit"
        case .couldNotStart(let error): return "could not start: \(error)"
        case .stopped: return "stopped"
        }
    }
}

/// Runs a worker's commands through SeqGuard's Supervisor: time limit, memory limit over the
/// whole tree, leftovers ended; output captured to a file, then copied to the worker's log.
public struct StepRunner {
    public var signals: SignalReceiver
    public var reporter: Reporter
    public var captureFile: String
    public var killGrace: Double
    public var stopGrace: Double
    public var environment: [String]
    /// Where a step's progress reports land: the step finds it open as descriptor
    /// `progressDescriptor` (named in SEQPIPE_PROGRESS_FD) and writes a line per report.
    public var progressFile: String?
    public static let progressDescriptor: Int32 = 3
    /// What of a command's output is kept: its last 64 KiB go to the log and the classifier,
    /// and at most `outputCap` bytes are on disk while it runs.
    public static let outputKept = 65536
    public static let outputCap: Int64 = 4 << 20
    /// Once readable (the orchestrator is gone), the running command's tree is ended at once.
    public var cancel: FileDescriptor?
    /// Children that are not the command's (the worker's device server): see `Supervisor.spared`.
    public var spared: Set<Int32> = []

    /// Runs `argv` and returns how it ended and the tail of its output. `tick` is called
    /// about every `interval` seconds while it runs; `beat`, likewise, with the step's latest
    /// progress line when it reported since the last beat (nil when not).
    @available(*, noasync)
    public func run(_ argv: [String], timeout: Double?, memoryLimitMegabytes: Int?, label: String,
                    tick: (interval: Double, action: () -> Bool)? = nil,
                    beat: (interval: Double, action: (String?) -> Void)? = nil) -> StepResult {
        let output: FileDescriptor
        do {
            // Read back (its tail) through the same descriptor once the command ends.
            output = try FileSystem.open(captureFile, [.readWrite, .create, .truncate], mode: 0o600)
        } catch {
            return StepResult(run: SupervisedRun(ending: .couldNotStart(error)), output: "cannot open \(captureFile): \(error)")
        }
        let input = try? FileSystem.open("/dev/null", [.readOnly])
        defer { input?.close() }
        var supervisor = Supervisor(
            signals: signals, reporter: reporter, timeout: timeout, killGrace: killGrace,
            memory: memoryLimitMegabytes.map { MemoryPolicy(limitBytes: Int64($0) << 20, interval: 0.5) })
        supervisor.output = output
        supervisor.input = input
        supervisor.stopGrace = stopGrace
        supervisor.tick = tick
        supervisor.cancel = cancel
        supervisor.spared = spared
        var environment = environment
        var progress: FileDescriptor?
        if let progressFile, let file = try? FileSystem.open(progressFile, [.readWrite, .create, .truncate], mode: 0o600) {
            progress = file
            supervisor.passing = [(file, Self.progressDescriptor)]
            environment.removeAll { $0.hasPrefix("SEQPIPE_PROGRESS_FD=") }
            environment.append("SEQPIPE_PROGRESS_FD=\(Self.progressDescriptor)")
        }
        defer { progress?.close() }
        if let beat {
            var seen: Int64 = 0
            supervisor.tick = (beat.interval, {
                var latest: String?
                if let progress, let (bytes, size) = try? progress.readTail(maximum: 4096), size != seen {
                    seen = size
                    latest = String(decoding: bytes, as: UTF8.self).split(separator: "\n").last { !$0.allSatisfy { $0 == " " || $0 == "\r" } }
                        .map { String($0.prefix(200)) } ?? ""
                }
                beat.action(latest)
                return true
            })
        }
        supervisor.outputCap = Self.outputCap
        let run = supervisor.run(argv, environment: environment) { _ in }
        // The tail only, whatever was printed; the capture goes once read (nothing is left
        // behind after the run).
        let (tail, size) = (try? output.readTail(maximum: Self.outputKept)) ?? ([], 0)
        output.close()
        try? FileSystem.removeFile(captureFile)
        var text = String(decoding: tail, as: UTF8.self)
        if size > Int64(tail.count) {
            text = "[seqpipe: \(size - Int64(tail.count)) earlier bytes of output dropped; the last \(tail.count / 1024) KiB follow]\n" + text
        }
        let result = StepResult(run: run, output: text)
        // The step's words go to the worker's log (our stdout), under a header.
        var log = "--- \(label): \(GuardedCommand.displayCommand(argv))\n"
        log += text
        if !text.isEmpty && !text.hasSuffix("\n") { log += "\n" }
        log += "--- \(label): \(result.endingText) after \(formatDuration(Double(run.runNanoseconds) / 1e9))\n"
        try? FileDescriptor.standardOutput.writeAll(log)
        return result
    }
}
