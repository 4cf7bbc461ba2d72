import PipelineStore
import PipelineModel
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
        let config = loadConfig()
        let store = openStore(waitingWith: signals)
        // One worker per device unless told otherwise.
        let devices = storeCall { () throws(StoreError) in try store.devices() }.filter { $0.host == store.host || $0.host.isEmpty }.count
        let orchestrator = Orchestrator(
            store: store, config: config, paths: paths, workerCount: number("--workers", default: max(devices, 1), minimum: 1),
            once: options.has("--once"), signals: signals, reporter: reporter)
        do { ProcessExit.now(try orchestrator.run()) } catch { fail(error.message, error.exitCode) }
    }

    func workerCommand() {
        let member = runMember("worker")
        guard let device = options.value("--device") else { usage("--device is required") }
        let index = number("--index", default: 0)
        var worker = Worker(
            store: openStore(waitingWith: member.signals, lifeline: member.lifeline), config: loadConfig(), index: index, deviceName: device, signals: member.signals,
            reporter: Reporter(toolName: "seqpipe worker \(index)"), captureFile: "\(paths.run)/worker_\(index).out")
        worker.lifeline = member.lifeline
        worker.locks = member.locks
        worker.paths = paths
        ProcessExit.now(worker.run())
    }

    func deviceServerCommand() {
        let member = runMember("device server")
        guard let device = options.value("--device") else { usage("--device is required") }
        ProcessExit.now(DeviceServerMember.run(
            words, member: member, device: device, deviceLock: options.value("--device-lock-fd").flatMap { Int32($0) }, config: loadConfig(),
            reporter: Reporter(toolName: "seqpipe device-server \(number("--index", default: 0))")))
    }

    func schedulerCommand() {
        let member = runMember("scheduler")
        var scheduler = Scheduler(
            store: openStore(waitingWith: member.signals, lifeline: member.lifeline), config: loadConfig(), paths: paths, signals: member.signals,
            reporter: Reporter(toolName: "seqpipe scheduler"))
        scheduler.lifeline = member.lifeline
        scheduler.lockDescriptor = member.locks?.inherited?.rawValue
        ProcessExit.now(scheduler.run())
    }

    func recurringRunCommand() {
        expect(1, "the name of a recurring job")
        let member = runMember("recurring-run")
        let config = loadConfig()
        guard let job = config.recurring.first(where: { $0.name == words[0] }) else {
            fail("no recurring job '\(words[0])' in \(paths.config); see 'seqpipe schedule'", 1)
        }
        let run = RecurringRun(
            store: openStore(waitingWith: member.signals, lifeline: member.lifeline), config: config, job: job, signals: member.signals,
            captureFile: "\(paths.run)/recurring_\(job.name).out",
            lifeline: member.lifeline)
        ProcessExit.now(storeCall { () throws(StoreError) in try run.run() })
    }

    func serveCommand() {
        expect(0, "options only: seqpipe serve [--listen HOST:PORT] [--allow-actions] [--token-file FILE]")
        do {
            var dashboard = Dashboard(store: openStore(), config: loadConfig(), paths: paths)
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
