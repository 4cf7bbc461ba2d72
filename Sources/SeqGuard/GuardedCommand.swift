import Glibc
import SeqSystem

/// Everything one guarded invocation needs, already parsed from flags and environment.
public struct GuardConfiguration: Sendable {
    public var toolName = "seqexec"
    public var namespace = LockNamespace.seqexec
    public var projectPath: String?
    public var stateBase: String?
    /// Seconds; nil for no limit.
    public var timeout: Double? = 3600
    public var killGrace: Double = 5
    public var waitTimeout: Double?
    public var slots = 1
    public var priority = Priority.normal
    public var verbose = false
    public var quiet = false
    public var arguments: [String] = []

    public init() {}

    public var reporter: Reporter { Reporter(toolName: toolName, verbose: verbose, quiet: quiet) }

    /// The project and its state directory, as every mode of the tool finds them.
    public func openState() throws(GuardFailure) -> (Project, StateDirectory) {
        let project = try Project.resolve(explicit: projectPath)
        return (project, try StateDirectory.open(project: project, base: stateBase, namespace: namespace))
    }
}

/// The environment variable that carries nested-call tokens: `seq-exec-<hash>=<token>,…`.
public let tokensVariable = "SEQEXEC_TOKENS"

/// One guarded run: wait for the project's lock in queue order, run the command under
/// supervision, release, and answer the exit status.
public enum GuardedCommand {
    /// Runs `configuration.arguments` under the project's lock. Returns the exit status.
    @available(*, noasync)
    public static func run(_ configuration: GuardConfiguration) -> Int32 {
        let reporter = configuration.reporter
        let signals: SignalReceiver
        do {
            // Before any thread exists, so every thread inherits the blocked mask.
            signals = try SignalReceiver(signals: [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD])
        } catch {
            reporter.error("cannot set up signal handling: \(error)")
            return ExitCode.toolFailure
        }
        do {
            return try run(configuration, signals: signals, reporter: reporter)
        } catch {
            reporter.error(error.message)
            return error.exitCode
        }
    }

    static func run(_ configuration: GuardConfiguration, signals: SignalReceiver, reporter: Reporter) throws(GuardFailure) -> Int32 {
        let (project, directory) = try configuration.openState()
        defer { directory.close() }
        let command = displayCommand(configuration.arguments)
        reporter.step("project \(project.root) (\(project.hash)), state \(directory.path)")

        let inherited = Spawn.environmentValue(tokensVariable) ?? ""
        var request = AcquireRequest(command: command)
        request.slots = configuration.slots
        request.priority = configuration.priority
        request.waitTimeout = configuration.waitTimeout
        request.inheritedTokens = parseTokens(inherited)
        let token = Processes.randomHex(bytes: 12)

        var waiter = LockWaiter(directory: directory, reporter: reporter, signals: signals)
        switch try waiter.acquire(request, token: token) {
        case .passThrough:
            reporter.step("nested call inside the holder's command: running straight through")
            directory.close()
            signals.restoreMask()
            let error = Spawn.replaceProcess(configuration.arguments, environment: Spawn.currentEnvironment())
            return reportSpawnFailure(error, configuration.arguments, reporter)
        case .gaveUp(let waited, let holder):
            reporter.error("gave up after \(formatSeconds(waited)) waiting\(holder.map { " for \($0)" } ?? ""); '\(command)' was not run")
            return ExitCode.gaveUpWaiting
        case .interrupted(let signal):
            return 128 + signal
        case .acquired(var held, _):
            let lock = ProjectLock(directory: directory)
            defer { try? directory.withMutex { lock.release(held) } }
            do {
                try Processes.becomeChildSubreaper()
                try held.owner.clearCloseOnExec()
            } catch {
                throw GuardFailure("cannot prepare to supervise: \(error)", errno: error)
            }
            var environment = Spawn.currentEnvironment().filter { !$0.hasPrefix(tokensVariable + "=") }
            let entry = "\(directory.name)=\(token)"
            environment.append("\(tokensVariable)=\(inherited.isEmpty ? entry : inherited + "," + entry)")
            let supervisor = Supervisor(signals: signals, reporter: reporter, timeout: configuration.timeout, killGrace: configuration.killGrace)
            let ending = supervisor.run(configuration.arguments, environment: environment) { child in
                var record = held.record
                record.child = child
                try? directory.withMutex { lock.update(&held, record: record) }
            }
            switch ending {
            case .exited(let status):
                reporter.step("'\(command)' ended: \(describe(status))")
                return status.shellExitCode
            case .timedOut:
                return ExitCode.timedOut
            case .couldNotStart(let error):
                return reportSpawnFailure(error, configuration.arguments, reporter)
            }
        }
    }

    static func reportSpawnFailure(_ error: Errno, _ arguments: [String], _ reporter: Reporter) -> Int32 {
        if error == .noSuchFile || error == .notDirectory {
            reporter.error("cannot run '\(arguments[0])': command not found; check the name and PATH")
            return ExitCode.notFound
        }
        reporter.error("cannot execute '\(arguments[0])': \(error); check that it is a program with execute permission")
        return ExitCode.cannotExecute
    }

    static func describe(_ status: TerminationStatus) -> String {
        switch status {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "killed by \(SignalName.of(signal))"
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
        arguments.map { argument in
            let plain = !argument.isEmpty && argument.unicodeScalars.allSatisfy { scalar in
                scalar.value > 0x20 && scalar.value < 0x7F && !"'\"\\$`;&|<>(){}*?[]#~!".unicodeScalars.contains(scalar)
            }
            if plain { return argument }
            return "'" + argument.replacingAll("'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
