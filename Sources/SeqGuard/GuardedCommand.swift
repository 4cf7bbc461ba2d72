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
    }

    /// The supervisor's part, with `front` the process the caller started: it names the run
    /// in queue lines, lock records and history.
    static func run(_ configuration: GuardConfiguration, front: ProcessIdentity, signals: SignalReceiver, reporter: Reporter) throws(GuardFailure) -> Int32 {
        var lanes: [Lane] = []
        defer { for lane in lanes { lane.directory.close() } }
        for (project, namespace) in try configuration.lockPlan() {
            lanes.append(Lane(project: project, directory: try StateDirectory.open(project: project, base: configuration.stateBase, namespace: namespace), held: nil))
        }
        // The lane that runs the command keeps the history: the last executor lock.
        let home = lanes.lastIndex { $0.directory.namespace == .seqexec } ?? lanes.count - 1
        let project = lanes[home].project
        let command = displayCommand(configuration.arguments)
        reporter.step("project \(project.root) (\(project.hash)), state \(lanes.map(\.directory.path).joined(separator: ", "))")

        let inherited = Spawn.environmentValue(tokensVariable) ?? ""
        let inheritedTokens = parseTokens(inherited)
        // Bytes, not text: a variable that is not UTF-8 reaches the command unchanged.
        var environment = Spawn.rawEnvironment()
        for (name, value) in configuration.environmentChanges { environment.setVariable(name, value) }
        let token = Processes.randomHex(bytes: 12)
        let queuedAt = Clock.wallTime()
        let arrival = Clock.monotonicNanoseconds()
        /// Seconds since arrival: the locks, memory admission and git all count as waiting.
        func waitedSoFar() -> Double { Double(Clock.monotonicNanoseconds() - arrival) / 1e9 }
        let history = History(directory: lanes[home].directory, maximumBytes: configuration.historyMaximumBytes)
        func historyEntry(_ ended: HistoryRecord.Ending, status: Int32, waited: Double) -> HistoryRecord {
            HistoryRecord(
                command: command, pid: front.pid, project: project.root, queuedAt: queuedAt,
                waitMilliseconds: Int64(waited * 1000), exitStatus: status, ended: ended)
        }
        func record(_ ended: HistoryRecord.Ending, status: Int32, waited: Double) {
            do { try history.record(historyEntry(ended, status: status, waited: waited)) } catch {
                reporter.error("\(error.message); the run itself is unaffected")
            }
        }
        /// Releases every lock held, innermost first.
        func releaseAll() {
            for lane in lanes.reversed() {
                guard let held = lane.held else { continue }
                try? lane.directory.withMutex { ProjectLock(directory: lane.directory).release(held) }
            }
        }

        /// Records the finished run and releases every lock. The history line is written in the
        /// same visit to the mutex that releases the lock it was run under; then the outer
        /// locks go, innermost first.
        func finish(_ finished: HistoryRecord) {
            var failure: GuardFailure?
            for (index, lane) in lanes.enumerated().reversed() {
                guard let held = lane.held else { continue }
                try? lane.directory.withMutex {
                    if index == home {
                        do throws(GuardFailure) { try history.append(finished) } catch { failure = error }
                    }
                    ProjectLock(directory: lane.directory).release(held)
                }
            }
            if lanes[home].held == nil {
                do { try history.record(finished) } catch { failure = error }
            }
            if let failure {
                reporter.error("\(failure.message); the run itself is unaffected")
            }
        }

        // Take the locks in order. A lock an ancestor of this process holds (its token is in
        // SEQEXEC_TOKENS and its claim is live) is passed through; so is every lock outside
        // it, since the ancestor's lock already excludes what those would.
        var released = false
        defer { if !released { releaseAll() } }
        // (With one lock there is nothing outside it; the waiter's own check passes it through.)
        let innermostInherited = lanes.count < 2 ? nil : lanes.lastIndex { lane in
            inheritedTokens[lane.directory.name].map { LockWaiter.isHeld(by: $0, in: lane.directory) } ?? false
        }
        for index in lanes.indices {
            if let innermostInherited, index < innermostInherited {
                reporter.step("an ancestor holds \(lanes[innermostInherited].directory.name): not taking \(lanes[index].directory.name)")
                continue
            }
            let directory = lanes[index].directory
            var request = AcquireRequest(command: command)
            request.slots = configuration.slots
            request.priority = configuration.priority
            request.waitTimeout = configuration.waitTimeout.map { max(0, $0 - waitedSoFar()) }
            request.inheritedTokens = inheritedTokens
            // Memory admission comes last, just before the command would start.
            if index == lanes.count - 1 { request.minimumAvailableBytes = configuration.minimumAvailableMegabytes.map { Int64($0) << 20 } }
            if lanes[index].project == .machine, inheritedTokens.keys.contains(where: { $0 != directory.name }) {
                reporter.notice("taking the machine-wide lock inside a project's lock: this can deadlock against a machine-wide command waiting for that project; take --machine outermost")
            }
            var waiter = LockWaiter(directory: directory, reporter: reporter, signals: signals, identity: front)
            switch try waiter.acquire(request, token: token) {
            case .passThrough:
                reporter.step("nested call inside the holder of \(directory.name): not taking it again")
            case .gaveUp(_, let holder):
                reporter.error("gave up after \(formatSeconds(waitedSoFar())) waiting\(holder.map { " for \($0)" } ?? ""); '\(command)' was not run")
                releaseAll()
                released = true
                record(.gaveUp, status: ExitCode.gaveUpWaiting, waited: waitedSoFar())
                return ExitCode.gaveUpWaiting
            case .interrupted(let signal):
                releaseAll()
                released = true
                record(.interrupted, status: signal.shellExitCode, waited: waitedSoFar())
                return signal.shellExitCode
            case .acquired(let held, _):
                lanes[index].held = held
            }
        }

        if lanes.allSatisfy({ $0.held == nil }) {
            reporter.step("nested call inside the holder's command: running straight through")
            for lane in lanes { lane.directory.close() }
            lanes = []
            signals.restoreMask()
            _ = try? Processes.setParentDeathSignal(nil)
            let error = Spawn.replaceProcess(configuration.commandBytes, environment: environment)
            return reportSpawnFailure(error, configuration.arguments, reporter)
        }

        if configuration.guardsGit, let repository = GitGuard.repository(forGitArguments: configuration.arguments) {
            let gitGuard = GitGuard(
                repository: repository, reporter: reporter, signals: signals,
                wait: configuration.gitWait, cleanStaleLocks: configuration.cleanStaleGitLocks)
            switch try gitGuard.waitForQuiet() {
            case .clear: break
            case .gaveUp(let message):
                reporter.error("\(message); '\(command)' was not run")
                record(.gaveUp, status: ExitCode.gaveUpWaiting, waited: waitedSoFar())
                return ExitCode.gaveUpWaiting
            case .interrupted(let signal):
                record(.interrupted, status: signal.shellExitCode, waited: waitedSoFar())
                return signal.shellExitCode
            }
        }

        // The command's run is ours to see through, whatever becomes of the front.
        _ = try? Processes.setParentDeathSignal(nil)
        do {
            try Processes.becomeChildSubreaper()
            for lane in lanes { try lane.held?.owner.clearCloseOnExec() }
        } catch {
            throw GuardFailure("cannot prepare to supervise: \(error)", errno: error)
        }
        let supervisorIdentity = ProcessIdentity.current()
        // Nested guarded calls find their ancestor's locks by these tokens.
        var tokens = inherited
        for lane in lanes where lane.held != nil {
            let entry = "\(lane.directory.name)=\(token)"
            tokens = tokens.isEmpty ? entry : tokens + "," + entry
        }
        environment.setVariable(tokensVariable, tokens)
        let policy = configuration.memoryPolicy
        let supervisor = Supervisor(
            signals: signals, reporter: reporter, timeout: configuration.timeout,
            killGrace: configuration.killGrace, memory: policy)
        let run = supervisor.run(configuration.commandBytes, environment: environment) { child in
            for index in lanes.indices {
                guard var held = lanes[index].held else { continue }
                var record = held.record
                record.supervisor = supervisorIdentity
                record.child = child
                let directory = lanes[index].directory
                try? directory.withMutex { ProjectLock(directory: directory).update(&held, record: record) }
                lanes[index].held = held
            }
        }
        var (ended, status, signalName) = ending(of: run, command: command, oomKillsBefore: run.oomKillsAtStart, reporter: reporter)
        if case .couldNotStart(let error) = run.ending {
            status = reportSpawnFailure(error, configuration.arguments, reporter)
            ended = .notStarted
        }
        let waited = max(0, waitedSoFar() - Double(run.runNanoseconds) / 1e9)
        var finished = historyEntry(ended, status: status, waited: waited)
        if ended != .notStarted {
            finished.childPid = run.child?.pid
            finished.runMilliseconds = run.runNanoseconds / 1_000_000
            finished.signal = signalName
            finished.peakTreeBytes = run.peakTreeBytes
            finished.peakSharedFileBytes = run.peakSharedFileBytes
            finished.metric = policy?.metric
            finished.memoryLimitMegabytes = policy == nil ? nil : configuration.memoryLimitMegabytes
            finished.largestProcessBytes = Processes.reapedChildrenPeakResident()
        }
        released = true
        finish(finished)
        return status
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
