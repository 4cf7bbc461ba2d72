import PipelineStore
import PipelineModel
import SeqDatabase
import PipelineRuntime
import SeqGuard
import SeqSystem

// The commands that run: run and the members it starts (worker, device-server, scheduler,
// recurring-run), serve, bench-claims and stop-all.

extension Invocation {
    func runCommand() {
        // `run --seed-only`, the original's spelling of seed.
        if options.has("--seed-only") { return seedCommand() }
        expect(0, "options only: seqpipe run [--workers N] [--once]")
        let signals: SignalReceiver
        do { signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup, .child]) } catch {
            fail("cannot set up signal handling: \(error)")
        }
        let store = openStore(waitingWith: signals)
        let config = runConfig(store)
        // One worker per device unless told otherwise.
        let devices = storeCall { () throws(StoreError) in try store.devices() }.filter { $0.host == store.host || $0.host.isEmpty }.count
        let orchestrator = Orchestrator(
            store: store, config: config, paths: paths, workerCount: number("--workers", default: max(devices, 1), minimum: 1),
            once: options.has("--once"), signals: signals, reporter: reporter)
        do { ProcessExit.now(try orchestrator.run()) } catch { fail(error.message, error.exitCode) }
    }

    func workerCommand() {
        let (orders, member) = runMember(.worker, "worker")
        let (index, device) = (orders.index ?? 0, orders.device ?? "")
        let store = openStore(waitingWith: member.signals, lifeline: member.lifeline)
        var worker = Worker(
            store: store, config: loadConfig(store: store, version: orders.configVersion), index: index, deviceName: device, signals: member.signals,
            reporter: Reporter(toolName: "seqpipe worker \(index)"), captureFile: "\(paths.run)/worker_\(index).out")
        worker.lifeline = member.lifeline
        worker.locks = member.locks
        worker.paths = paths
        ProcessExit.now(worker.run())
    }

    func deviceServerCommand() {
        let (orders, member) = runMember(.deviceServer, "device server")
        ProcessExit.now(DeviceServerMember.run(
            orders.server, member: member, device: orders.device ?? "", deviceLock: orders.deviceLockDescriptor,
            config: loadConfig(version: orders.configVersion), reporter: Reporter(toolName: "seqpipe device-server \(orders.index ?? 0)")))
    }

    func schedulerCommand() {
        let (orders, member) = runMember(.scheduler, "scheduler")
        let store = openStore(waitingWith: member.signals, lifeline: member.lifeline)
        var scheduler = Scheduler(
            store: store, config: loadConfig(store: store, version: orders.configVersion), paths: paths, signals: member.signals,
            reporter: Reporter(toolName: "seqpipe scheduler"))
        scheduler.lifeline = member.lifeline
        scheduler.lockDescriptor = member.locks?.inherited?.rawValue
        ProcessExit.now(scheduler.run())
    }

    func recurringRunCommand() {
        let (orders, member) = runMember(.recurringRun, "recurring-run")
        let store = openStore(waitingWith: member.signals, lifeline: member.lifeline)
        let config = loadConfig(store: store, version: orders.configVersion)
        guard let job = config.recurring.first(where: { $0.name == orders.job }) else {
            fail("no recurring job '\(orders.job ?? "")' in the config; see 'seqpipe schedule'", 1)
        }
        let run = RecurringRun(
            store: store, config: config, job: job, signals: member.signals,
            captureFile: "\(paths.run)/recurring_\(job.name).out",
            lifeline: member.lifeline)
        ProcessExit.now(storeCall { () throws(StoreError) in try run.run() })
    }

    func serveCommand() {
        expect(0, "options only: seqpipe serve [--listen HOST:PORT] [--allow-actions] [--token-file FILE]")
        do {
            let store = openStore()
            var dashboard = Dashboard(store: store, config: loadConfig(store: store), paths: paths)
            try dashboard.configure(listen: options.value("--listen") ?? "127.0.0.1:8080", allowActions: options.has("--allow-actions"),
                                    tokenFile: options.value("--token-file"))
            try dashboard.serve { printOut($0 + "\n") }
        } catch { fail("serve: \(error.message)", error.exitCode) }
    }

    func benchClaimsCommand() {
        if let member = options.value("--member").flatMap({ Int($0) }) {
            printOut("\(storeCall { () throws(StoreError) in try ClaimBench.member(store: openStore(), index: member) })\n")
            ProcessExit.now(0)
        }
        let executable = (try? FileSystem.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        let member = paths.memberStore(Spawn.currentEnvironment(), host: hostName)
        do {
            let (claims, seconds) = try ClaimBench.run(
                claimers: number("--claimers", default: 8, minimum: 1), argv: [executable] + member.arguments + ["bench-claims", "--member"],
                environment: member.environment)
            printOut("\(claims) claims in \(seconds) s\n")
        } catch { fail(error.message) }
    }

    func stopAllCommand() {
        expect(0, "no arguments")
        let outcome = paths.stopAll(config: loadConfig()) { pid in
            printOut("asking the orchestrator (pid \(pid)) to stop; waiting for its workers\n")
        }
        let (text, failure) = outcome.report(store: paths.storeName)
        printOut(text)
        if let failure { fail(failure, 1) }
    }
}
