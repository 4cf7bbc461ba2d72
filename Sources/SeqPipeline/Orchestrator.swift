import Glibc
import SeqGuard
import SeqSystem

/// Where a pipeline's files are: the store, its config, the worker logs.
public struct PipelinePaths: Sendable {
    /// The store, as an absolute path.
    public var database: String
    public var config: String
    public var directory: String
    public var logs: String { directory + "/logs" }
    public var run: String { directory + "/run" }
    /// `SEQEXEC_STATE_DIR`, where the single-instance lock lives (else seqguard's default).
    public var stateBase: String?

    public init(database: String, config: String?, stateBase: String?) {
        self.database = database
        let slash = database.lastIndex(of: "/")
        directory = slash.map { $0 == database.startIndex ? "/" : String(database[..<$0]) } ?? "."
        self.config = config ?? directory + "/pipeline.json"
        self.stateBase = stateBase
    }

    public func log(worker: Int) -> String { "\(logs)/worker_\(worker).log" }
    public var schedulerLog: String { "\(logs)/scheduler.log" }

    /// The pipeline's lock directory: one orchestrator per store.
    public func lockDirectory(create: Bool = true) throws(GuardFailure) -> StateDirectory {
        try StateDirectory.open(project: Project(root: database), base: stateBase, namespace: .pipeline, create: create)
    }
}

/// Holds the pipeline's single-instance lock, runs N workers and watches them: restarts one
/// that dies (requeuing its job), ends what it left behind, and stops them all cleanly.
public struct Orchestrator {
    public var store: any JobStore
    public var config: PipelineConfig
    public var paths: PipelinePaths
    public var workerCount: Int
    public var once: Bool
    public var signals: SignalReceiver
    public var reporter: Reporter

    public init(store: any JobStore, config: PipelineConfig, paths: PipelinePaths, workerCount: Int, once: Bool,
                signals: SignalReceiver, reporter: Reporter) {
        self.store = store
        self.config = config
        self.paths = paths
        self.workerCount = workerCount
        self.once = once
        self.signals = signals
        self.reporter = reporter
    }

    struct Slot {
        var index: Int
        var device: Device
        var process: ProcessIdentity?
        var restarts = 0
        var quickDeaths = 0
        var startedAt: Int64 = 0
        var restartAt: Int64?
        var stoppedCleanly = false
        /// The scheduler of recurring jobs, not a worker: no device, no claims.
        var scheduler = false
    }

    func say(_ message: String) {
        reporter.notice(message)
    }

    /// Exit status: 0 after a clean stop; 75 when another orchestrator holds the store.
    @available(*, noasync)
    public func run() throws(GuardFailure) -> Int32 {
        let lockDirectory = try paths.lockDirectory()
        defer { lockDirectory.close() }
        let lock = InstanceLock(directory: lockDirectory)
        var held: HeldClaim
        let waitDeadline = Clock.monotonicNanoseconds() + Int64((config.stopGraceSeconds + config.killGraceSeconds + 5) * 1e9)
        while true {
            switch try lock.tryAcquire(command: "seqpipe run --workers \(workerCount)") {
            case .acquired(let claim):
                held = claim
            case .held(let record, let draining):
                if draining, Clock.monotonicNanoseconds() < waitDeadline {
                    // The last orchestrator is gone; its workers are still stopping.
                    Poll.sleep(milliseconds: 100)
                    continue
                }
                let who = record.map { "pid \($0.holder.pid), since \(Clock.localDateTime($0.since))" } ?? "a process"
                throw GuardFailure(
                    exitCode: ExitCode.gaveUpWaiting,
                    "another orchestrator (\(who)) runs on \(paths.database); stop it with 'seqpipe stop-all' or wait for it")
            }
            break
        }
        defer { lock.release(held) }

        let devices: [Device]
        do {
            devices = try store.devices()
        } catch { throw GuardFailure("store \(paths.database): \(error.message)") }
        guard !devices.isEmpty else {
            throw GuardFailure("\(paths.database) has no device; add one with 'seqpipe device add NAME --url URL'")
        }
        guard devices.count >= workerCount else {
            throw GuardFailure(
                "\(workerCount) worker\(workerCount == 1 ? "" : "s") need as many devices; \(paths.database) has \(devices.count); add one with 'seqpipe device add NAME --url URL' or run with --workers \(devices.count)")
        }
        do {
            try Processes.becomeChildSubreaper()
            try held.owner.clearCloseOnExec()
            try FileSystem.makeDirectories(paths.logs)
            try FileSystem.makeDirectories(paths.run, mode: 0o700)
        } catch {
            throw GuardFailure("cannot prepare to run workers: \(error)", errno: error)
        }
        do {
            let orphans = try store.requeueClaims(worker: nil, crashed: false, policy: config.policy, now: nowSeconds())
            if !orphans.isEmpty { say("requeued \(orphans.count) orphaned claim\(orphans.count == 1 ? "" : "s") of an earlier run: \(orphans.joined(separator: " "))") }
            try store.clearWorkers()
            try store.addEvent(Event(at: nowSeconds(), kind: "orchestrator-start", message: "pid \(Processes.currentPid), \(workerCount) workers\(once ? ", --once" : "")"))
        } catch { throw GuardFailure("store \(paths.database): \(error.message)") }

        var slots = (0..<workerCount).map { Slot(index: $0, device: devices[$0]) }
        if !config.recurring.isEmpty {
            slots.append(Slot(index: workerCount, device: Device(name: "-"), scheduler: true))
        }
        for index in slots.indices { spawn(&slots[index]) }
        let recurring = config.recurring.isEmpty ? "" : " and the scheduler of \(config.recurring.count) recurring job\(config.recurring.count == 1 ? "" : "s")"
        say("running \(workerCount) worker\(workerCount == 1 ? "" : "s")\(recurring) on \(paths.database); logs in \(paths.logs)")

        var stopping = false
        var stopDeadline: Int64?
        var kills: [ProcessIdentity: Int64] = [:]
        var nextBeat = Clock.monotonicNanoseconds() + Int64(config.heartbeatSeconds * 1e9)
        var nextCheck = Clock.monotonicNanoseconds()
        func beginStop(_ why: String) {
            guard !stopping else { return }
            stopping = true
            say("\(why): stopping \(slots.filter { $0.process != nil }.count) worker(s)")
            for index in slots.indices {
                slots[index].restartAt = nil
                if let process = slots[index].process { Processes.signal(process, SIGTERM) }
            }
            stopDeadline = Clock.monotonicNanoseconds() + Int64((config.stopGraceSeconds + config.killGraceSeconds + 2) * 1e9)
        }

        while true {
            // Reap: workers that ended, and orphans of dead workers we ended.
            while let (pid, status) = (try? Spawn.reapAny()) ?? nil {
                guard let index = slots.firstIndex(where: { $0.process?.pid == pid }) else { continue }
                let process = slots[index].process!
                slots[index].process = nil
                if stopping && status == .exited(0) {
                    slots[index].stoppedCleanly = true
                    continue
                }
                let how = GuardedCommand.describe(status)
                if slots[index].scheduler {
                    say("the scheduler (pid \(pid)) ended (\(how))")
                    try? store.addEvent(Event(at: nowSeconds(), kind: "scheduler-died", message: "pid \(pid) ended (\(how))"))
                } else {
                do {
                    let requeued = try store.requeueClaims(worker: index, crashed: !stopping, policy: config.policy, now: nowSeconds())
                    try store.addEvent(Event(at: nowSeconds(), kind: "worker-died", job: requeued.first, device: slots[index].device.name, worker: index,
                                             message: "pid \(pid) ended (\(how))\(requeued.isEmpty ? "" : "; requeued \(requeued.joined(separator: " "))")"))
                    say("worker \(index) (pid \(pid)) ended (\(how))\(requeued.isEmpty ? "" : "; its job \(requeued.joined(separator: " ")) is back in the queue")")
                } catch {
                    reporter.error("store \(paths.database): \(error.message)")
                }
                }
                _ = process
                // What it left behind was reparented here: end it, the guard's way.
                for orphan in orphans(of: slots) {
                    if Processes.signal(orphan, SIGTERM) {
                        Processes.signal(orphan, SIGCONT)
                        kills[orphan] = Clock.monotonicNanoseconds() + Int64(config.killGraceSeconds * 1e9)
                    }
                }
                if !stopping {
                    let quick = Clock.monotonicNanoseconds() - slots[index].startedAt < 5_000_000_000
                    slots[index].quickDeaths = quick ? slots[index].quickDeaths + 1 : 0
                    let delay = config.restartDelaySeconds * Double(1 << min(slots[index].quickDeaths, 6))
                    slots[index].restartAt = Clock.monotonicNanoseconds() + Int64(delay * 1e9)
                }
            }
            if stopping && slots.allSatisfy({ $0.process == nil }) { break }

            let now = Clock.monotonicNanoseconds()
            for index in slots.indices {
                if let at = slots[index].restartAt, at <= now, !stopping {
                    slots[index].restartAt = nil
                    slots[index].restarts += 1
                    spawn(&slots[index])
                }
            }
            if nextBeat <= now {
                lock.beat(&held)
                nextBeat = now + Int64(config.heartbeatSeconds * 1e9)
            }
            if once && !stopping && nextCheck <= now {
                nextCheck = now + Int64(config.idlePollSeconds * 1e9)
                if let left = try? store.remainingWork(today: Clock.day(of: nowSeconds(), zone: config.dayZone)), left == 0 {
                    beginStop("--once: nothing left to do")
                }
            }
            if let deadline = stopDeadline, deadline <= now {
                stopDeadline = nil
                for slot in slots {
                    guard let process = slot.process else { continue }
                    reporter.error("worker \(slot.index) (pid \(process.pid)) did not stop within the grace; killing it")
                    Processes.signal(process, SIGKILL)
                }
            }
            for (process, at) in kills where at <= now {
                Processes.signal(process, SIGKILL)
                kills[process] = nil
            }
            var wake = nextBeat
            if once && !stopping { wake = min(wake, nextCheck) }
            if let deadline = stopDeadline { wake = min(wake, deadline) }
            for slot in slots { if let at = slot.restartAt { wake = min(wake, at) } }
            for (_, at) in kills { wake = min(wake, at) }
            let wait = Int32(clamping: max(0, wake - Clock.monotonicNanoseconds()) / 1_000_000 + 1)
            guard !Poll.readable([signals.descriptor], timeoutMilliseconds: min(wait, 1000)).isEmpty else { continue }
            for signal in signals.drain() where signal.number != SIGCHLD {
                beginStop("\(SignalName.of(signal.number))")
            }
        }

        // Every worker is gone. Claims a killed worker still held go back to pending.
        do {
            let requeued = try store.requeueClaims(worker: nil, crashed: false, policy: FailurePolicy.immediate(config.policy), now: nowSeconds())
            if !requeued.isEmpty { say("put \(requeued.joined(separator: " ")) back to pending") }
        } catch { reporter.error("store \(paths.database): \(error.message)") }
        ProcessTree(signals: signals).end(grace: config.killGraceSeconds, onReap: { _, _ in })
        // Devices whose worker could not run its own stop command.
        for slot in slots where !slot.stoppedCleanly && !slot.scheduler {
            guard let command = slot.device.stopCommand else { continue }
            let runner = StepRunner(signals: signals, reporter: reporter, captureFile: "\(paths.run)/orchestrator.out",
                                    killGrace: config.killGraceSeconds, stopGrace: 0, environment: Spawn.currentEnvironment())
            _ = runner.run(["/bin/sh", "-c", command], timeout: 60, memoryLimitMegabytes: nil, label: "device \(slot.device.name) stop")
        }
        try? store.addEvent(Event(at: nowSeconds(), kind: "orchestrator-stop", message: "pid \(Processes.currentPid) stopped"))
        for slot in slots where !slot.scheduler {
            try? store.updateWorker(index: slot.index, state: "stopped", job: nil, bootSeconds: Clock.secondsSinceBoot())
        }
        say("stopped")
        return 0
    }

    /// Processes reparented to this orchestrator that are not workers, and their trees.
    func orphans(of slots: [Slot]) -> [ProcessIdentity] {
        let me = Processes.currentPid
        let workers = Set(slots.compactMap { $0.process?.pid })
        let table = Processes.all()
        let roots = table.filter { $0.parent == me && !workers.contains($0.pid) && $0.state != "Z" }
        let below = Processes.descendants(of: Set(roots.map(\.pid)), in: table)
        return (below + roots).map(\.identity)
    }

    /// Starts worker `slot.index`: this executable's hidden `worker` command, its output in
    /// its log, the lock's owner descriptor inherited (the lock lives while any worker does).
    func spawn(_ slot: inout Slot) {
        let executable = (try? FileSystem.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        let argv = slot.scheduler
            ? [executable, "--db", paths.database, "--config", paths.config, "scheduler", "--parent", String(Processes.currentPid)]
            : [executable, "--db", paths.database, "--config", paths.config, "worker",
               "--index", String(slot.index), "--device", slot.device.name, "--parent", String(Processes.currentPid)]
        let logPath = slot.scheduler ? paths.schedulerLog : paths.log(worker: slot.index)
        let log: FileDescriptor
        do {
            log = try FileSystem.open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o644)
        } catch {
            reporter.error("cannot open \(logPath): \(error); \(slot.scheduler ? "the scheduler" : "worker \(slot.index)") not started")
            slot.restartAt = Clock.monotonicNanoseconds() + Int64(max(config.restartDelaySeconds, 1) * 1e9)
            return
        }
        defer { log.close() }
        let input = try? FileSystem.open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { input?.close() }
        var environment = Spawn.currentEnvironment()
        environment.removeAll { $0.hasPrefix("SEQPIPE_WORKER=") }
        environment.append("SEQPIPE_WORKER=\(slot.index)")
        do {
            let pid = try Spawn.spawn(argv, environment: environment, resetSignals: signals.signalsToReset(), input: input, output: log)
            let identity = ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
            slot.process = identity
            slot.startedAt = Clock.monotonicNanoseconds()
            slot.stoppedCleanly = false
            if slot.scheduler { return }
            try? store.setWorker(WorkerRecord(
                index: slot.index, pid: pid, startTime: identity.startTime, device: slot.device.name, state: "starting",
                job: nil, restarts: slot.restarts, heartbeatBootSeconds: Clock.secondsSinceBoot()))
            if slot.restarts > 0 {
                try? store.addEvent(Event(at: nowSeconds(), kind: "worker-restart", device: slot.device.name, worker: slot.index, message: "restart \(slot.restarts): pid \(pid)"))
            }
        } catch {
            reporter.error("cannot start worker \(slot.index) (\(executable)): \(error)")
            slot.restartAt = Clock.monotonicNanoseconds() + Int64(max(config.restartDelaySeconds, 1) * 1e9)
        }
    }
}

extension FailurePolicy {
    /// The same policy with no requeue spread: for claims given back at a clean stop.
    static func immediate(_ policy: FailurePolicy) -> FailurePolicy {
        var copy = policy
        copy.requeueSpreadSeconds = 0
        return copy
    }
}
