import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

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
        /// Its worker died and the fence of what it left is not complete yet.
        var fencePending = false
        /// The scheduler of recurring jobs, not a worker: no device, no claims.
        var scheduler = false
        /// Its device was removed: it is not started again.
        var retired = false
    }

    func say(_ message: String) {
        reporter.notice(message)
    }

    /// Exit status: 0 after a clean stop; 75 when another orchestrator holds the store.
    @available(*, noasync)
    public func run() throws(GuardFailure) -> Int32 {
        let locks = try paths.locks()
        defer { locks.directory.close() }
        var held = try acquire(locks)
        let lock = locks.instance
        defer { lock.release(held) }
        var storeFile = try holdTheStoreFile()

        let devices = try thisHostsDevices()
        try prepareToRunMembers(&held)
        let fencer = Fencer(locks: locks, store: store, config: config, say: say)
        try takeBackAnEarlierRunsClaims(fencer: fencer)

        var reaped: [(Int32, TerminationStatus)] = []
        let reapAll = { while let ended = (try? Spawn.reapAny()) ?? nil { reaped.append(ended) } }
        let (members, leading) = startMembers(devices, lock: held, fencer: fencer, reap: reapAll)
        var slots = members
        var beat = HostBeat(leading: leading, lastRenewal: Clock.monotonicNanoseconds())
        let recurring = config.recurring.isEmpty ? "" : " and the scheduler of \(config.recurring.count) recurring job\(config.recurring.count == 1 ? "" : "s")"
        say("running \(workerCount) worker\(workerCount == 1 ? "" : "s")\(recurring) on \(paths.storeName); logs in \(paths.logs)")

        var stopping = false
        var nextBeat = Clock.monotonicNanoseconds() + Int64(config.heartbeatSeconds * 1e9)
        var nextCheck = Clock.monotonicNanoseconds()
        let notifier = makeNotifier()
        var nextNotify = Clock.monotonicNanoseconds()
        var failure: String?
        while !stopping {
            reapAll()
            // Checked every pass (at least once a second): a store deleted, renamed or
            // replaced under the run stops it at once, claims first.
            if let change = storeFile?.change() {
                failure = change
                storeChanged(change, slots: slots)
                break
            }
            // (What reaping finds meanwhile, while it fences, is for the next pass.)
            let ended = reaped
            reaped.removeAll()
            restartTheDead(&slots, ended: ended, fencer: fencer, reap: reapAll)

            let now = Clock.monotonicNanoseconds()
            restartWhatIsDue(&slots, now: now, beat: beat, lock: held, fencer: fencer, reap: reapAll)
            if let notifier, nextNotify <= now {
                notifier.deliverDue(now: Moment.now())
                nextNotify = Clock.monotonicNanoseconds() + 500_000_000
            }
            if nextBeat <= now {
                lock.beat(&held)
                nextBeat = now + Int64(config.heartbeatSeconds * 1e9)
                beatInStore(&slots, &beat, reap: reapAll)
            }
            if once && nextCheck <= now {
                nextCheck = now + Int64(config.idlePollSeconds * 1e9)
                if nothingLeftToDo(&beat) {
                    say("--once: nothing left to do: stopping \(slots.filter { $0.process != nil }.count) worker(s)")
                    stopping = true
                    break
                }
            }
            var wake = nextBeat
            if once { wake = min(wake, nextCheck) }
            if notifier != nil { wake = min(wake, nextNotify) }
            for slot in slots { if let at = slot.restartAt { wake = min(wake, at) } }
            let wait = Int32(clamping: max(0, wake - Clock.monotonicNanoseconds()) / 1_000_000 + 1)
            guard !Poll.readable([signals.descriptor], timeoutMilliseconds: min(wait, 1000)).isEmpty else { continue }
            for received in signals.drain() where received.signal != .child {
                say("\(received.signal.name): stopping \(slots.filter { $0.process != nil }.count) worker(s)")
                stopping = true
            }
        }

        stop(&slots, fencer: fencer, reaped: { reaped }, reap: reapAll)
        if let failure {
            throw GuardFailure(exitCode: ExitCode.toolFailure, "stopped: \(failure); find the file, or start again on a store that can be opened ('seqpipe init')")
        }
        say("stopped")
        return 0
    }

    /// A worker for each device, and the scheduler (recurring jobs, the watchdog) when this
    /// host leads it: it runs once per farm. Whether this host leads.
    func startMembers(_ devices: [Device], lock held: HeldClaim, fencer: Fencer, reap: () -> Void) -> ([Slot], leading: Bool) {
        var slots = (0..<workerCount).map { Slot(index: $0, device: devices[$0]) }
        if !config.recurring.isEmpty {
            slots.append(Slot(index: workerCount, device: Device(name: "-"), scheduler: true))
        }
        let leading = !config.recurring.isEmpty && ((try? store.lead("scheduler", leaseSeconds: config.hostLeaseSeconds, now: Moment.now())) ?? false)
        for index in slots.indices where !slots[index].scheduler || leading { start(&slots[index], lock: held, fencer: fencer, reap: reap) }
        if !config.recurring.isEmpty && !leading { say("another host leads the scheduler; this one runs workers only") }
        return (slots, leading)
    }

    /// The store's file was deleted, renamed or replaced under the run: the members are
    /// told to stop, and an alert and an event say why.
    func storeChanged(_ change: String, slots: [Slot]) {
        reporter.error("\(change); stopping the run")
        for process in slots.compactMap(\.process) { Processes.signal(process, .terminate) }
        _ = try? store.raiseAlert("store", kind: .store, message: change, now: Moment.now())
        try? store.addEvent(Event(at: Moment.now(), kind: .storeChanged, message: change))
    }

    /// With --once: whether the store has no work left for today.
    func nothingLeftToDo(_ beat: inout HostBeat) -> Bool {
        let left = try? store.remainingWork(today: ZoneCalendar.day(of: Moment.now(), zone: config.dayZone))
        noteStore(&beat)
        return left == 0
    }

    /// A file store is its inode: held for the run, whatever name another caller uses. Nil
    /// for a PostgreSQL store.
    func holdTheStoreFile() throws(GuardFailure) -> StoreFile? {
        guard !paths.isURL else { return nil }
        switch try StoreFile.hold(paths.database) {
        case .held(let file): return file
        case .taken(let holders):
            let who = holders.map { "pid \($0.pid)" }.joined(separator: ", ")
            throw GuardFailure(
                exitCode: ExitCode.gaveUpWaiting,
                "another orchestrator (\(who.isEmpty ? "a process" : who)) runs on the store file \(paths.storeName) under another name (a hard link or another mount of it); stop it with 'seqpipe stop-all' there, or wait for it")
        }
    }

    /// This process becomes the members' subreaper, the instance lock's descriptor one they
    /// inherit, and the log and run directories exist.
    func prepareToRunMembers(_ held: inout HeldClaim) throws(GuardFailure) {
        do {
            try Processes.becomeChildSubreaper()
            // Every process of the run holds the store: workers get this descriptor, and the
            // commands they start inherit it.
            // Numbered high, so a step's `exec 8>file` cannot close it by landing on its number.
            held.owner = held.owner.movedUp()
            try held.owner.clearCloseOnExec()
            try FileSystem.makeDirectories(paths.logs)
            try FileSystem.makeDirectories(paths.run, mode: 0o700)
        } catch {
            throw GuardFailure("cannot prepare to run workers: \(error)", errno: error)
        }
    }

    /// Alerts raised anywhere in the run go out from here (a file relative to the store's
    /// directory); nil when no outlet is configured.
    func makeNotifier() -> Notifier? {
        var outlet = config.alerts
        if let file = outlet.file, !file.hasPrefix("/") { outlet.file = paths.directory + "/" + file }
        guard outlet.isConfigured else { return nil }
        return Notifier(store: store, outlet: outlet, runner: StepRunner(
            signals: signals, reporter: reporter, captureFile: "\(paths.run)/notify.out", killGrace: config.killGraceSeconds,
            stopGrace: 0, environment: Spawn.currentEnvironment()))
    }

    /// Starts again the members whose restart time has come. A host fenced off the store, or
    /// a scheduler this host does not lead, waits. A fence that could not complete (a process
    /// stuck in the kernel) is tried again before the device gets a new worker; its job waits
    /// claimed till then.
    func restartWhatIsDue(_ slots: inout [Slot], now: Int64, beat: HostBeat, lock held: HeldClaim, fencer: Fencer, reap: () -> Void) {
        for index in slots.indices {
            if beat.selfFenced || (slots[index].scheduler && !beat.leading) { continue }
            guard let at = slots[index].restartAt, at <= now else { continue }
            slots[index].restartAt = nil
            if slots[index].fencePending {
                slots[index].fencePending = !fenceWorker(slots[index], fencer: fencer, sparing: Set(slots.compactMap(\.process)), reap: reap)
                if slots[index].fencePending {
                    slots[index].restartAt = Clock.monotonicNanoseconds() + Int64(max(config.restartDelaySeconds, 1) * 1e9)
                    continue
                }
            }
            slots[index].restarts += 1
            start(&slots[index], lock: held, fencer: fencer, reap: reap)
        }
    }

    /// Members that ended since the last pass: each is said and recorded; what it left
    /// behind (steps still posting, reparented here) is ended and its locks are free before
    /// its job goes back to the queue or its device gets a new worker, which starts after a
    /// delay that doubles while members die quickly. A worker whose device was removed from
    /// the store is not started again.
    @available(*, noasync)
    func restartTheDead(_ slots: inout [Slot], ended: [(Int32, TerminationStatus)], fencer: Fencer, reap reapAll: () -> Void) {
        var died: [Int] = []
        for (pid, status) in ended {
            guard let index = slots.firstIndex(where: { $0.process?.pid == pid }) else { continue }
            slots[index].process = nil
            let how = GuardedCommand.describe(status)
            if slots[index].scheduler {
                say("the scheduler (pid \(pid)) ended (\(how))")
                try? store.addEvent(Event(at: Moment.now(), kind: .schedulerDied, message: "pid \(pid) ended (\(how))"))
            } else {
                say("worker \(index) (pid \(pid)) ended (\(how))")
                try? store.addEvent(Event(at: Moment.now(), kind: .workerDied, device: slots[index].device.name, worker: index, message: "pid \(pid) ended (\(how))"))
            }
            died.append(index)
        }
        if !died.isEmpty {
            // What the dead left behind (steps still posting, reparented here) is ended and
            // its locks are free before its job goes back to the queue or its device gets
            // a new worker.
            let workers = Set(slots.compactMap(\.process))
            for index in died where !slots[index].scheduler { slots[index].fencePending = true }
            for index in slots.indices where slots[index].fencePending {
                slots[index].fencePending = !fenceWorker(slots[index], fencer: fencer, sparing: workers, reap: reapAll)
            }
            let orphans = orphans(of: slots)
            if !orphans.isEmpty {
                Teardown.graceful(config.killGraceSeconds).run(find: Teardown.TreeFinder(roots: orphans).find, reap: reapAll)
            }
            let known = (try? store.devices()).map { Set($0.map(\.name)) }
            for index in died {
                // A device removed from the store ('device remove --force') retires its
                // worker's slot: it is not started again.
                if !slots[index].scheduler, let known, !known.contains(slots[index].device.name) {
                    slots[index].retired = true
                    say("worker \(index): its device \(slots[index].device.name) was removed from the store; not restarted")
                    continue
                }
                let (quickDeaths, delay) = Self.restartDelay(
                    lived: Clock.monotonicNanoseconds() - slots[index].startedAt, quickDeaths: slots[index].quickDeaths, base: config.restartDelaySeconds)
                slots[index].quickDeaths = quickDeaths
                slots[index].restartAt = Clock.monotonicNanoseconds() + Int64(delay * 1e9)
            }
        }
    }

    /// When a member that died after living `lived` ns starts again: after `base` seconds,
    /// doubled for each death in a row that came within 5 s of its start (up to 64 times), so
    /// a member that cannot start does not spin; one that lived longer starts the count again.
    static func restartDelay(lived: Int64, quickDeaths: Int, base: Double) -> (quickDeaths: Int, delay: Double) {
        let deaths = lived < 5_000_000_000 ? quickDeaths + 1 : 0
        return (deaths, base * Double(1 << min(deaths, 6)))
    }

    /// The devices this run drives (this host's, and those of no particular host), read
    /// once the store answers; a store SQLite finds damaged, no device, or fewer devices than
    /// workers, is refused with the fix.
    @available(*, noasync)
    func thisHostsDevices() throws(GuardFailure) -> [Device] {
        let all: [Device] = try waitingOutTheStore { () throws -> [Device] in
            if let sqlStore = store as? SQLJobStore, let damage = try sqlStore.damage() {
                throw StoreError("the store is damaged (SQLite's quick_check: \(damage)); restore it from a copy, or export what it still reads ('seqpipe export-csv') into a new one")
            }
            return try store.devices()
        }
        guard !all.isEmpty else {
            throw GuardFailure("\(paths.storeName) has no device; add one with 'seqpipe device add NAME --url URL'")
        }
        // This host's devices (and those of no particular host).
        let devices = all.filter { $0.host == store.host || $0.host.isEmpty }
        guard !devices.isEmpty else {
            let owners = Set(all.map(\.host)).sorted().joined(separator: ", ")
            throw GuardFailure("\(paths.storeName) has no device for host \(store.host) (its devices belong to \(owners)); add one with 'seqpipe device add NAME --url URL --host \(store.host)' or run with --host NAME")
        }
        guard devices.count >= workerCount else {
            throw GuardFailure(
                "\(workerCount) worker\(workerCount == 1 ? "" : "s") need as many devices; \(paths.storeName) has \(devices.count); add one with 'seqpipe device add NAME --url URL' or run with --workers \(devices.count)")
        }
        return devices
    }

    /// Claims of an earlier run: the lock proves that run is gone; its attempts' leftovers
    /// (a step that let go of the store's lock) are ended before the claims are taken back.
    /// Then this host registers, and the run's start is an event.
    @available(*, noasync)
    func takeBackAnEarlierRunsClaims(fencer: Fencer) throws(GuardFailure) {
        try waitingOutTheStore { () throws in
            let claimed = try store.claimedJobs().filter { $0.host == nil || $0.host == store.host }
            for job in claimed where !fencer.fence(device: job.device, jobs: [job], worker: job.worker) {
                throw GuardFailure("job \(job.id): a process of its earlier attempt did not end; see 'seqpipe events' and end it by hand")
            }
            let orphans = try store.requeueClaims(worker: nil, crashed: false, policy: config.policy, now: Moment.now())
            fencer.forget(claimed)
            if !orphans.isEmpty { say("requeued \(orphans.count) orphaned claim\(orphans.count == 1 ? "" : "s") of an earlier run: \(orphans.joined(separator: " "))") }
            try store.clearWorkers()
            if try store.registerHost(pid: Processes.currentPid, leaseSeconds: config.hostLeaseSeconds, now: Moment.now(), configVersion: config.version) == "lost" {
                say("host \(store.host) was taken over while it was away (its claims went back to the queue); registered again")
            }
            try store.addEvent(Event(at: Moment.now(), kind: .orchestratorStart, message: "pid \(Processes.currentPid), \(workerCount) workers\(once ? ", --once" : "")"))
        }
    }

    /// The stop: workers and the scheduler get SIGTERM and the grace to finish their step;
    /// then everything still under this process is killed, claims a killed worker held go
    /// back to pending, devices whose worker could not stop its phone are stopped here, and
    /// the store hears that the run and its host stopped.
    @available(*, noasync)
    func stop(_ slots: inout [Slot], fencer: Fencer, reaped: () -> [(Int32, TerminationStatus)], reap reapAll: () -> Void) {
        let members = slots.compactMap(\.process)
        let finder = Teardown.TreeFinder(roots: members, rootsOnlyFor: [.terminate], extra: {
            Processes.descendants(of: [Processes.currentPid]).map { Teardown.Target($0.identity, command: $0.command) }
        })
        let report = Teardown([.send(.terminate, grace: config.workerStopSeconds)]).run(find: finder.find, reap: reapAll)
        for process in report.killed where members.contains(process) {
            let index = slots.firstIndex { $0.process == process }!
            reporter.error("\(slots[index].scheduler ? "the scheduler" : "worker \(index)") (pid \(process.pid)) did not stop within the grace; killed it")
        }
        for (pid, status) in reaped() {
            guard let index = slots.firstIndex(where: { $0.process?.pid == pid }) else { continue }
            slots[index].stoppedCleanly = status == .exited(0)
        }
        // Every process of the run but this one is gone. Claims a killed worker still held
        // go back to pending.
        do {
            let claimed = try store.claimedJobs()
            let requeued = try store.requeueClaims(worker: nil, crashed: false, policy: FailurePolicy.immediate(config.policy), now: Moment.now())
            fencer.forget(claimed)
            if !requeued.isEmpty { say("put \(requeued.joined(separator: " ")) back to pending") }
        } catch { reporter.error("store \(paths.storeName): \(error.message)") }
        // Devices whose worker could not run its own stop command. A worker killed after it
        // ran it (its record says stopped, under its own pid) is not stopped twice.
        let stoppedThemselves = Set(((try? store.workers()) ?? []).filter { $0.state == .stopped && $0.host == store.host }.map(\.pid))
        for slot in slots where !slot.stoppedCleanly && !slot.scheduler && !slot.retired {
            if let pid = slot.process?.pid, stoppedThemselves.contains(pid) { continue }
            guard let command = slot.device.stopCommand else { continue }
            let runner = StepRunner(signals: signals, reporter: reporter, captureFile: "\(paths.run)/orchestrator.out",
                                    killGrace: config.killGraceSeconds, stopGrace: 0, environment: Spawn.currentEnvironment())
            let result = runner.run(["/bin/sh", "-c", command], timeout: 60, memoryLimitMegabytes: nil, label: "device \(slot.device.name) stop")
            try? store.recordPhone(device: slot.device.name, state: result.succeeded ? .stopped : .stopFailed, now: Moment.now())
        }
        try? store.addEvent(Event(at: Moment.now(), kind: .orchestratorStop, message: "pid \(Processes.currentPid) stopped"))
        try? store.releaseHost(now: Moment.now())
        for slot in slots where !slot.scheduler {
            try? store.updateWorker(index: slot.index, state: .stopped, job: nil, bootSeconds: Clock.secondsSinceBoot())
        }
    }

    /// Takes the store's single-instance lock. A lock still held by the processes of a run
    /// whose orchestrator is gone (its workers, their steps) is theirs no longer: they are
    /// ended, one line each, and the lock taken once the kernel says it is free.
    @available(*, noasync)
    func acquire(_ locks: PipelineLocks) throws(GuardFailure) -> HeldClaim {
        let lock = locks.instance
        for _ in 0..<3 {
            switch try lock.tryAcquire(command: "seqpipe run --workers \(workerCount)") {
            case .acquired(let claim):
                return claim
            case .held(let record, let draining):
                guard draining else {
                    let who = record.map { "pid \($0.holder.pid), since \(Clock.localDateTime($0.since))" } ?? "a process"
                    throw GuardFailure(
                        exitCode: ExitCode.gaveUpWaiting,
                        "another orchestrator (\(who)) runs on \(paths.storeName); stop it with 'seqpipe stop-all' or wait for it")
                }
                let roles = locks.roles(devices: (try? store.devices().map(\.name)) ?? [],
                                        jobs: (try? store.claimedJobs()) ?? [])
                let fence = LockFile.fence([locks.store], teardown: .graceful(config.killGraceSeconds), seconds: config.killGraceSeconds + 5)
                for target in fence.report.ended {
                    say("ended pid \(target.process.pid) (\(target.command)) left by the dead run (orchestrator pid \(record?.holder.pid ?? 0))\(roles[target.process].map { ": \($0)" } ?? "")")
                }
                if !fence.free {
                    throw GuardFailure("the store is still held by pid \(fence.report.survivors.map { "\($0.process.pid)" }.joined(separator: ", ")) of a dead run; end it by hand")
                }
            }
        }
        throw GuardFailure(exitCode: ExitCode.gaveUpWaiting, "the store \(paths.storeName) is taken again each time; is another 'seqpipe run' starting?")
    }

    /// A dead worker's fence: every process still holding its device's lock or its job's
    /// is ended and the locks are free; then its claims go back to the queue. False while a
    /// lock is still held (it is tried again after the next death or before a restart).
    @available(*, noasync)
    func fenceWorker(_ slot: Slot, fencer: Fencer, sparing: Set<ProcessIdentity>, reap: () -> Void) -> Bool {
        let claims = ((try? store.claimedJobs()) ?? []).filter { $0.worker == slot.index }
        guard fencer.fence(device: slot.device.name, jobs: claims, worker: slot.index, sparing: sparing, reap: reap) else { return false }
        // Its claims go back only through the store: while it cannot be reached the fence
        // stays pending and the device gets no new worker (which would find its claim).
        guard (try? store.ping()) != nil else { return false }
        // Its device server held the device's lock too: the fence ended it.
        if let device = try? store.device(slot.device.name), device.server != nil,
           device.serverState?.hasProcess == true {
            try? store.recordServer(device: device.name, state: .stopped, process: nil, port: device.serverPort,
                                    note: "its worker died; the fence of the device ended it", now: Moment.now())
        }
        do {
            let requeued = try store.requeueClaims(worker: slot.index, crashed: true, policy: config.policy, now: Moment.now())
            fencer.forget(claims)
            if !requeued.isEmpty {
                say("worker \(slot.index): its job \(requeued.joined(separator: " ")) is back in the queue")
                try store.addEvent(Event(at: Moment.now(), kind: .workerRequeue, job: requeued.first, device: slot.device.name, worker: slot.index,
                                         message: "requeued \(requeued.joined(separator: " ")) once its attempt's locks were free"))
            }
        } catch {
            reporter.error("store \(paths.storeName): \(error.message)")
            if error.isUnreachable { return false }
        }
        return true
    }

    /// Processes reparented to this orchestrator that are neither workers nor the scheduler.
    func orphans(of slots: [Slot]) -> [ProcessIdentity] {
        let me = Processes.currentPid
        let members = Set(slots.compactMap { $0.process?.pid })
        return Processes.all().filter { $0.parent == me && !members.contains($0.pid) && $0.state != "Z" }.map(\.identity)
    }

    /// Starts a slot's process once its device is free: a device whose lock is still held
    /// (a step of its last worker) gets no new worker until that is ended.
    @available(*, noasync)
    func start(_ slot: inout Slot, lock: HeldClaim, fencer: Fencer, reap: () -> Void) {
        if !slot.scheduler {
            let members = Set([slot.process].compactMap { $0 })
            if fencer.locks.device(slot.device.name).isHeld,
               !fencer.fence(device: slot.device.name, jobs: [], worker: slot.index, sparing: members, reap: reap) {
                say("device \(slot.device.name) is still held by an earlier process; worker \(slot.index) waits")
                slot.restartAt = Clock.monotonicNanoseconds() + Int64(max(config.restartDelaySeconds, 1) * 1e9)
                return
            }
        }
        spawn(&slot, lock: lock)
    }

    /// Starts worker `slot.index`: this executable's hidden `worker` command, its output in
    /// its log, the lock's owner descriptor inherited (the lock lives while any worker does).
    func spawn(_ slot: inout Slot, lock: HeldClaim) {
        let executable = (try? FileSystem.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        var orders = MemberOrders(slot.scheduler ? .scheduler : .worker, parent: Processes.currentPid, lockDescriptor: lock.owner.rawValue,
                                  configVersion: config.version)
        if !slot.scheduler { (orders.index, orders.device) = (slot.index, slot.device.name) }
        let argv = orders.command(executable: executable, paths: paths)
        let logPath = slot.scheduler ? paths.schedulerLog : paths.log(worker: slot.index)
        let log: FileDescriptor
        do {
            log = try FileSystem.open(logPath, [.writeOnly, .create, .append], mode: 0o644)
        } catch {
            reporter.error("cannot open \(logPath): \(error); \(slot.scheduler ? "the scheduler" : "worker \(slot.index)") not started")
            slot.restartAt = Clock.monotonicNanoseconds() + Int64(max(config.restartDelaySeconds, 1) * 1e9)
            return
        }
        defer { log.close() }
        let input = try? FileSystem.open("/dev/null", [.readOnly])
        defer { input?.close() }
        var environment = Spawn.currentEnvironment()
        environment.removeAll { $0.hasPrefix("SEQPIPE_WORKER=") }
        environment.append("SEQPIPE_WORKER=\(slot.index)")
        environment = paths.memberStore(environment, host: store.host).environment
        do {
            let pid = try Spawn.spawn(argv, environment: environment, resetSignals: signals.signalsToReset(), input: input, output: log)
            let identity = ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
            slot.process = identity
            slot.startedAt = Clock.monotonicNanoseconds()
            slot.stoppedCleanly = false
            if slot.scheduler { return }
            try? store.setWorker(WorkerRecord(
                index: slot.index, pid: pid, startTime: identity.startTime, device: slot.device.name, state: .starting,
                job: nil, restarts: slot.restarts, heartbeatBootSeconds: Clock.secondsSinceBoot()))
            if slot.restarts > 0 {
                try? store.addEvent(Event(at: Moment.now(), kind: .workerRestart, device: slot.device.name, worker: slot.index, message: "restart \(slot.restarts): pid \(pid)"))
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
