import SeqSystem

/// The environment variable that carries nested-call tokens: `seq-exec-<hash>=<token>,…`.
public let tokensVariable = "SEQEXEC_TOKENS"

/// One guarded run: wait for the project's lock in queue order, run the command under
/// supervision, release, and answer the exit status.
public enum GuardedCommand {
    /// One lock of the plan, opened.
    struct Lane {
        var project: Project
        var directory: StateDirectory
        var held: HeldClaim?
        /// The lane's own slots (a pool's), instead of the run's `--slots`.
        var slots: Int?
    }

    /// The supervisor's part, with `front` the process the caller started: it names the run
    /// in queue lines, lock records and history. The phases, in order; each early end has
    /// been recorded in the history by the phase that ended it, and the locks go on the way out.
    static func run(_ configuration: GuardConfiguration, front: ProcessIdentity, signals: SignalReceiver, reporter: Reporter,
                    frontReport: FileDescriptor? = nil) throws(GuardFailure) -> Int32 {
        var run = try GuardedRun(configuration, front: front, signals: signals, reporter: reporter)
        run.frontReport = frontReport
        defer {
            run.releaseAll()
            run.closeLanes()
        }
        if let status = try run.takeLocks() { return status }
        if run.holdsNoLock { return run.replaceProcessWithCommand() }
        if let status = try run.waitOutGit() { return status }
        return try run.superviseAndRecord()
    }

    /// How a run ended, its exit status, and the signal's name; says on stderr why a command
    /// died of SIGKILL, since 137 alone could be the OOM killer, `kill -9` or the monitor.
    static func ending(
        of run: SupervisedRun, command: String, oomKillsBefore: Int64?, reporter: Reporter
    ) -> (HistoryRecord.Ending, Int32, String?) {
        switch run.ending {
        case .timedOut: return (.timeout, ExitCode.timedOut, nil)
        case .memoryExceeded: return (.memory, ExitCode.memoryLimit, nil)
        case .couldNotStart: return (.notStarted, ExitCode.notFound, nil)
        case .stopped: return (.signal, Signal.terminate.shellExitCode, Signal.terminate.name)
        case .exited(let status):
            reporter.step("'\(command)' ended: \(describe(status))")
            guard case .signaled(let signal) = status else { return (.exit, status.shellExitCode, nil) }
            let name = signal.name
            guard signal == .kill else { return (.signal, status.shellExitCode, name) }
            if let before = oomKillsBefore, let after = SystemMemory.oomKillCount(), after > before {
                reporter.error("'\(command)' was killed by the kernel's OOM killer (the system ran out of memory; see 'dmesg'), not by seqexec's memory monitor")
                return (.oom, status.shellExitCode, name)
            }
            reporter.error("'\(command)' was killed by SIGKILL from outside seqexec (not its memory monitor, not the kernel's OOM killer)")
            return (.killed, status.shellExitCode, name)
        }
    }

    static func reportSpawnFailure(_ error: Errno, _ arguments: [String], _ reporter: Reporter) -> Int32 {
        if error == .noSuchFile || error == .notDirectory {
            reporter.error("cannot run '\(arguments[0])': command not found; check the name and PATH")
            return ExitCode.notFound
        }
        if error == .argumentListTooLong {
            reporter.error("cannot execute '\(arguments[0])': its arguments and environment together are larger than the kernel takes in one exec (E2BIG); pass fewer or shorter arguments (xargs splits a long list) or a smaller environment")
            return ExitCode.cannotExecute
        }
        reporter.error("cannot execute '\(arguments[0])': \(error); check that it is a program with execute permission")
        return ExitCode.cannotExecute
    }

    /// `exit 3`, `killed by SIGKILL`.
    public static func describe(_ status: TerminationStatus) -> String {
        switch status {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "killed by \(signal.name)"
        }
    }

    /// `seq-exec-1a2b3c4d=tok,make-lock-1a2b3c4d=tok` as a dictionary.
    public static func parseTokens(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }

    /// argv as a person would type it: arguments with spaces or quotes in single quotes.
    public static func displayCommand(_ arguments: [String]) -> String {
        var text = ""
        for argument in arguments {
            if !text.isEmpty { text += " " }
            text += displayArgument(argument)
        }
        return text
    }

    static func displayArgument(_ argument: String) -> String {
        let plain = !argument.isEmpty && argument.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value < 0x7F && !"'\"\\$`;&|<>(){}*?[]#~!".unicodeScalars.contains(scalar)
        }
        if plain { return argument }
        // Control characters (a script's newlines) shown escaped: messages stay one line.
        if argument.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            var escaped = ""
            for scalar in argument.unicodeScalars {
                switch scalar {
                case "\n": escaped += "\\n"
                case "\t": escaped += "\\t"
                case "'": escaped += "\\'"
                case "\\": escaped += "\\\\"
                default:
                    if scalar.value < 0x20 || scalar.value == 0x7F {
                        let hex = String(scalar.value, radix: 16)
                        escaped += "\\x" + (hex.count == 1 ? "0" : "") + hex
                    } else {
                        escaped.unicodeScalars.append(scalar)
                    }
                }
            }
            return "$'" + escaped + "'"
        }
        return "'" + argument.replacingAll("'", with: "'\\''") + "'"
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
