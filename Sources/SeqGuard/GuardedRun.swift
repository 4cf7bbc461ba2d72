import SeqSystem

/// One guarded run in the supervisor, phase by phase (GuardedCommand.run calls them in
/// order): take the locks in queue order, run straight through when an ancestor holds them,
/// wait out other git operations, supervise the command, then record it and release.
struct GuardedRun {
    let configuration: GuardConfiguration
    let front: ProcessIdentity
    let signals: SignalReceiver
    let reporter: Reporter
    /// The locks of the plan, outermost first; a lane's `held` is cleared once released.
    var lanes: [GuardedCommand.Lane] = []
    /// The lane that runs the command keeps the history: the last executor lock.
    let home: Int
    let project: Project
    let command: String
    let inherited: String
    let inheritedTokens: [String: String]
    /// Bytes, not text: a variable that is not UTF-8 reaches the command unchanged.
    var environment: [[UInt8]]
    let token = Processes.randomHex(bytes: 12)
    let queuedAt = Clock.wallTime()
    let arrival = Clock.monotonicNanoseconds()
    let history: History
    /// The run's pool (`--pool`), read once.
    let pool: Pool?
    /// Where the front hears of the command's process (so that it can name it if this
    /// supervisor is killed) and, at the end, the status.
    var frontReport: FileDescriptor?
    /// The shared lock held (`--store`), instead of the lanes' local locks.
    var shared: SharedHold?

    init(_ configuration: GuardConfiguration, front: ProcessIdentity, signals: SignalReceiver, reporter: Reporter) throws(GuardFailure) {
        self.configuration = configuration
        self.front = front
        self.signals = signals
        self.reporter = reporter
        var lanes: [GuardedCommand.Lane] = []
        pool = try configuration.pool()
        do {
            for (project, namespace) in try configuration.lockPlan() {
                lanes.append(.init(project: project, directory: try StateDirectory.open(project: project, base: configuration.stateBase, namespace: namespace),
                                   held: nil, slots: project == pool?.project ? pool?.slots : nil))
            }
        } catch {
            for lane in lanes { lane.directory.close() }
            throw error
        }
        self.lanes = lanes
        home = lanes.lastIndex { $0.directory.namespace == .seqexec } ?? lanes.count - 1
        project = lanes[home].project
        command = GuardedCommand.displayCommand(configuration.arguments)
        reporter.step("project \(project.root) (\(project.hash)), state \(lanes.map(\.directory.path).joined(separator: ", "))")
        // A submitted run is no part of whoever submitted it: their tokens are not its own.
        inherited = configuration.ignoresInheritedTokens ? "" : Spawn.environmentValue(tokensVariable) ?? ""
        inheritedTokens = GuardedCommand.parseTokens(inherited)
        environment = Spawn.rawEnvironment()
        for (name, value) in configuration.environmentChanges { environment.setVariable(name, value) }
        history = History(directory: lanes[home].directory, maximumBytes: configuration.historyMaximumBytes)
    }

    /// Seconds since arrival: the locks, memory admission and git all count as waiting.
    func waitedSoFar() -> Double { Double(Clock.monotonicNanoseconds() - arrival) / 1e9 }

    var holdsNoLock: Bool { lanes.allSatisfy { $0.held == nil } && shared == nil }

    func historyEntry(_ ended: HistoryRecord.Ending, status: Int32, waited: Double) -> HistoryRecord {
        HistoryRecord(
            command: command, pid: front.pid, project: project.root, queuedAt: queuedAt,
            waitMilliseconds: Int64(waited * 1000), exitStatus: status, ended: ended)
    }

    /// Records a run that ended before its command started.
    func record(_ ended: HistoryRecord.Ending, status: Int32) {
        do { try history.record(historyEntry(ended, status: status, waited: waitedSoFar())) } catch {
            reporter.error("\(error.message); the run itself is unaffected")
        }
        recordResult(status: status, ended: ended)
    }

    /// A submitted run's result, for `--wait` and `--runs`, beside its history line.
    func recordResult(status: Int32, ended: HistoryRecord.Ending) {
        guard let id = configuration.runID else { return }
        do {
            let store = try RunStore(state: lanes[home].directory)
            defer { store.close() }
            try store.saveResult(id: id, status: status, ended: ended.rawValue)
        } catch {
            reporter.error("\(error.message); 'seqexec --wait \(id)' cannot give the status")
        }
    }

    /// Releases every lock still held, innermost first.
    mutating func releaseAll() {
        shared?.release()
        shared = nil
        for index in lanes.indices.reversed() {
            guard let held = lanes[index].held else { continue }
            let directory = lanes[index].directory
            try? directory.withMutex { ProjectLock(directory: directory).release(held) }
            lanes[index].held = nil
        }
    }

    mutating func closeLanes() {
        for lane in lanes { lane.directory.close() }
        lanes = []
    }

    /// Phase 1: the locks, in order. A lock an ancestor of this process holds (its token is in
    /// SEQEXEC_TOKENS and its claim is live) is passed through; so is every lock outside it,
    /// since the ancestor's lock already excludes what those would. Nil once every lock is
    /// taken or passed; the exit status when the wait ended without them.
    mutating func takeLocks() throws(GuardFailure) -> Int32? {
        if let store = configuration.store { return try takeSharedLock(url: store) }
        // (With one lock there is nothing outside it; the waiter's own check passes it through.)
        let innermostInherited = lanes.count < 2 ? nil : lanes.lastIndex { lane in
            inheritedTokens[lane.directory.name].map { LockWaiter.isHeld(by: $0, in: lane.directory) } ?? false
        }
        var announce = configuration.announce
        defer {
            // Every lane passed through without a wait: the run has its place all the same.
            _ = try? announce?.writeAll([0x71])
            announce?.close()
        }
        for index in lanes.indices {
            if let innermostInherited, index < innermostInherited {
                reporter.step("an ancestor holds \(lanes[innermostInherited].directory.name): not taking \(lanes[index].directory.name)")
                continue
            }
            let directory = lanes[index].directory
            var request = AcquireRequest(command: command)
            request.slots = lanes[index].slots ?? configuration.slots
            request.priority = configuration.priority
            request.waitTimeout = configuration.waitTimeout.map { max(0, $0 - waitedSoFar()) }
            request.inheritedTokens = inheritedTokens
            request.announce = announce
            announce = nil
            request.historyProject = index == home ? project.root : nil
            request.killGrace = configuration.killGrace
            request.newestFirst = configuration.newestFirst
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
                reporter.error("gave up after \(formatDuration(waitedSoFar())) waiting\(holder.map { " for \($0)" } ?? ""); '\(command)' was not run")
                releaseAll()
                record(.gaveUp, status: ExitCode.gaveUpWaiting)
                return ExitCode.gaveUpWaiting
            case .interrupted(let signal):
                releaseAll()
                record(.interrupted, status: signal.shellExitCode)
                return signal.shellExitCode
            case .replaced(let newer):
                reporter.error("replaced by a newer run, pid \(newer.process.pid) '\(LockWaiter.shortened(newer.command))' (--order newest-first); '\(command)' was not run")
                releaseAll()
                record(.replaced, status: ExitCode.replaced)
                return ExitCode.replaced
            case .acquired(let held, _):
                lanes[index].held = held
            }
        }
        return nil
    }

    /// Phase 2, for a nested call inside the holder's command: no lock of its own to keep, so
    /// this process becomes the command. Returns only if it cannot be executed.
    mutating func replaceProcessWithCommand() -> Int32 {
        reporter.step("nested call inside the holder's command: running straight through")
        closeLanes()
        signals.restoreMask()
        _ = try? Processes.setParentDeathSignal(nil)
        reporter.flushHeldBack()
        let error = Spawn.replaceProcess(configuration.commandBytes, environment: environment)
        return GuardedCommand.reportSpawnFailure(error, configuration.arguments, reporter)
    }

    /// Phase 3, for a git command: other git operations of the repository end first. Nil when
    /// the repository is quiet; the exit status when the wait ended without it.
    mutating func waitOutGit() throws(GuardFailure) -> Int32? {
        guard configuration.guardsGit, let repository = GitGuard.repository(forGitArguments: configuration.arguments) else { return nil }
        var gitGuard = GitGuard(
            repository: repository, reporter: reporter, signals: signals,
            wait: configuration.gitWait, cleanStaleLocks: configuration.cleanStaleGitLocks)
        // The wait goes into the lock records, for --status; the command's start replaces it.
        var lanes = self.lanes
        gitGuard.onWaiting = { lock, git in
            for index in lanes.indices {
                guard var held = lanes[index].held else { continue }
                var record = held.record
                record.waitingFor = "git:\(git?.identity.pid ?? 0):\(lock ?? "")"
                let directory = lanes[index].directory
                try? directory.withMutex { ProjectLock(directory: directory).update(&held, record: record) }
                lanes[index].held = held
            }
        }
        defer { self.lanes = lanes }
        switch try gitGuard.waitForQuiet() {
        case .clear:
            return nil
        case .gaveUp(let message):
            reporter.error("\(message); '\(command)' was not run")
            record(.gaveUp, status: ExitCode.gaveUpWaiting)
            return ExitCode.gaveUpWaiting
        case .interrupted(let signal):
            record(.interrupted, status: signal.shellExitCode)
            return signal.shellExitCode
        }
    }

    /// Phase 4: the command, supervised to its end (time limit, memory limit, signals, its
    /// whole tree); then its history line and the locks' release.
    mutating func superviseAndRecord() throws(GuardFailure) -> Int32 {
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
        let policy = configuration.memoryPolicy
        var supervisor = Supervisor(
            signals: signals, reporter: reporter, timeout: configuration.timeout,
            killGrace: configuration.killGrace, memory: policy)
        try keepSharedLease(&supervisor, tokens: &tokens)
        supervisor.cgroup = try kernelCgroup(owner: supervisorIdentity)
        defer { supervisor.cgroup?.remove() }
        environment.setVariable(tokensVariable, tokens)
        // A run the command submitted (`seqexec --submit` inside it) outlives it by design:
        // it is no leftover of this one.
        let base = configuration.stateBase
        supervisor.spareAtEnd = { RunStore.liveRelays(base: base) }
        var lanes = self.lanes
        let timeout = configuration.timeout
        var deadline: WallTime?
        let frontReport = frontReport
        let keeper = shared?.keeper
        let enforcement = supervisor.cgroup?.limits.memoryBytes != nil ? "kernel" : policy == nil ? nil : "sampled"
        let run = supervisor.run(configuration.commandBytes, environment: environment) { child in
            _ = try? frontReport?.writeAll(FrontReport.started(child))
            keeper?.tell(command: child)
            // The command's time limit plus the grace its teardown gets: past this, an
            // unsupervised tree is ended by whoever finds it.
            deadline = timeout.map { Clock.wallTime().adding(seconds: $0 + configuration.killGrace) }
            for index in lanes.indices {
                guard var held = lanes[index].held else { continue }
                var record = held.record
                record.supervisor = supervisorIdentity
                record.child = child
                record.deadline = deadline
                record.waitingFor = nil
                record.enforcement = enforcement
                let directory = lanes[index].directory
                try? directory.withMutex { ProjectLock(directory: directory).update(&held, record: record) }
                lanes[index].held = held
            }
        }
        self.lanes = lanes
        var (ended, status, signalName) = GuardedCommand.ending(of: run, command: command, oomKillsBefore: run.oomKillsAtStart, reporter: reporter)
        // Ended by the project's emergency stop: the caller is told who stopped it.
        if case .exited(.signaled(let signal)) = run.ending,
           let mark = KillAllMark.read(in: lanes[home].directory), mark.at >= queuedAt {
            reporter.error("'\(command)' was ended (\(signal.name)) by '\(mark.command)', pid \(mark.pid), at \(Clock.localClockTime(mark.at))")
        }
        if run.cancelled, let (sharedEnded, sharedStatus) = sharedEnding() {
            (ended, status, signalName) = (sharedEnded, sharedStatus, ended == .signal ? signalName : nil)
        }
        if case .couldNotStart(let error) = run.ending {
            status = GuardedCommand.reportSpawnFailure(error, configuration.arguments, reporter)
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
            finished.enforcement = run.enforcement
        }
        recordAndRelease(finished)
        return status
    }

    /// The run's cgroups when the kernel is asked to enforce a limit. A memory limit the kernel
    /// cannot enforce here falls back to the /proc monitor, said once; a CPU or I/O limit is
    /// never silently dropped: the run ends unrun.
    func kernelCgroup(owner: ProcessIdentity) throws(GuardFailure) -> RunCgroup? {
        var limits = configuration.kernelLimits
        do {
            return try RunCgroup.make(limits, owner: owner, pool: pool)
        } catch where limits.memoryBytes != nil && pool == nil {
            limits.memoryBytes = nil
            guard limits.isEmpty else { throw error }
            // Asked for by name, the fallback is said; the default's is logged with -v only.
            let message = "\(error.message); the memory limit is sampled from /proc instead"
            if configuration.kernelMemoryLimit == true { reporter.notice(message) } else { reporter.step(message) }
            return nil
        }
    }

    /// Writes the finished run's history line and releases every lock. The line is written
    /// in the same visit to the mutex that releases the lock it was run under; then the
    /// outer locks go, innermost first.
    mutating func recordAndRelease(_ finished: HistoryRecord) {
        var failure: GuardFailure?
        let homeHeld = lanes[home].held != nil
        for index in lanes.indices.reversed() {
            guard let held = lanes[index].held else { continue }
            let directory = lanes[index].directory
            try? directory.withMutex {
                if index == home {
                    do throws(GuardFailure) { try history.append(finished) } catch { failure = error }
                }
                ProjectLock(directory: directory).release(held)
            }
            lanes[index].held = nil
        }
        if !homeHeld {
            do { try history.record(finished) } catch { failure = error }
        }
        shared?.release()
        shared = nil
        if let failure {
            reporter.error("\(failure.message); the run itself is unaffected")
        }
        recordResult(status: finished.exitStatus, ended: finished.ended)
    }
}
