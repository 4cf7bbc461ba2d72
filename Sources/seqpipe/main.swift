import SeqGuard
import SeqPipeline
import SeqSystem

let version = "0.1.0"

let help = """
    OVERVIEW: seqpipe - a device-automation pipeline on the seqguard guards

    Jobs ("post video X with caption Y to account Z") wait in one SQLite store. 'seqpipe run'
    holds the store's single-instance lock and runs N workers, each with its own device and
    ports; every step a job runs goes through the guard (time limit, memory limit, whole
    process tree ended). Failures are classed permanent, infrastructure or retryable; nothing
    is lost and nothing is posted twice when any process is killed: each attempt holds locks
    (beside the store) that its processes inherit, and a job is taken back only once they
    are free.

    USAGE: seqpipe [--db PATH] [--config PATH] COMMAND [ARGS...]

    COMMANDS:
      init                          Create the store and a default pipeline.json.
      device add NAME [--url URL] [--health CMD] [--server-restart CMD] [--restart CMD]
                 [--stop CMD]
      device list | device remove NAME
      account add NAME [--daily-limit N]
      account list | account resume NAME
      add-job --account A [--id ID] [--video PATH] [--caption TEXT] [--field KEY=VALUE]...
              [--priority N] [--max-attempts N]
      add-folder DIR --accounts A [B...] [--priority N] [--max-attempts N]
      import-csv FILE | export-csv [FILE]
      run [--workers N] [--once]    Run N workers (default: one per device); --once: exit
                                    when nothing is left to do.
      status [--json]               Counts, workers, accounts, devices, and why jobs wait.
      events [--since T] [--limit N] [--json]
                                    What happened: the latest N (default 50), or all
                                    since T (2026-11-23T10:00:00Z, epoch seconds, or an
                                    age: 90s, 15m, 2h, 1d).
      show-config                   Ports per worker, steps and policies.
      schedule [--minutes N]        The recurring jobs' first runs after start, in order.
      stop-all                      Stop the running orchestrator and its workers cleanly.
      retry JOB | cancel JOB

    OPTIONS:
      --db PATH           The store (default: .seqpipe/pipeline.db).
      --config PATH       The pipeline definition (default: pipeline.json beside the store).
      -h, --help          Show this help.
      --version           Show the version.

    ENVIRONMENT:
      SEQPIPE_DB          The store, when --db is not given.
      SEQPIPE_CONFIG      The pipeline definition, when --config is not given.

    EXIT STATUS:
      0    Done.
      1    The command could not do what was asked (no such job, job running, ...).
      2    Bad usage.
      75   Another orchestrator holds the store.
      125  seqpipe itself failed: bad config, unreadable store, missing device.

    """

// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run.
BrokenPipe.ignore()

let reporter = Reporter(toolName: "seqpipe")

func fail(_ message: String, _ code: Int32 = ExitCode.toolFailure) -> Never {
    reporter.error(message)
    ProcessExit.now(code)
}

func usage(_ message: String) -> Never { fail("\(message); see 'seqpipe --help'", 2) }

func printOut(_ text: String) { try? FileDescriptor.standardOutput.writeAll(text) }

// Options before the command.
var arguments = Array(CommandLine.arguments.dropFirst())
var databaseOption = Spawn.environmentValue("SEQPIPE_DB").flatMap { $0.isEmpty ? nil : $0 }
var configOption = Spawn.environmentValue("SEQPIPE_CONFIG").flatMap { $0.isEmpty ? nil : $0 }
while let first = arguments.first, first.hasPrefix("-") {
    arguments.removeFirst()
    switch first {
    case "-h", "--help": printOut(help); ProcessExit.now(0)
    case "--version": printOut("seqpipe \(version)\n"); ProcessExit.now(0)
    case "--db", "--config":
        guard let value = arguments.first, !value.isEmpty else { usage("\(first) needs a path") }
        arguments.removeFirst()
        if first == "--db" { databaseOption = value } else { configOption = value }
    default:
        if first.hasPrefix("--db=") { databaseOption = String(first.dropFirst(5)); continue }
        if first.hasPrefix("--config=") { configOption = String(first.dropFirst(9)); continue }
        usage("unknown option '\(first)'")
    }
}
guard let command = arguments.first else { usage("no command given") }
arguments.removeFirst()

func absolute(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    let here = (try? FileSystem.currentDirectory()) ?? "."
    return here + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
}

let paths = PipelinePaths(
    database: absolute(databaseOption ?? ".seqpipe/pipeline.db"), config: configOption.map(absolute))
/// The config named by --config or SEQPIPE_CONFIG, which must exist (the default may not).
let namedConfig = configOption

func loadConfig() -> PipelineConfig {
    // The default file may be missing (the defaults apply); one named by hand may not.
    if let namedConfig, !FileSystem.exists(paths.config) {
        fail("no config at \(namedConfig); create it (seqpipe init writes one with every default) or drop --config")
    }
    do { return try PipelineConfig.load(path: paths.config) } catch { fail(error.message) }
}

func openStore(creating: Bool = false) -> SQLiteJobStore {
    if !creating && !FileSystem.exists(paths.database) {
        fail("no store at \(paths.database); create it with 'seqpipe init' (or pass --db PATH)")
    }
    do {
        let store = try SQLiteJobStore(path: paths.database)
        try store.migrate()
        return store
    } catch {
        fail(error.message)
    }
}

/// `--name value` options and positional words, for one command.
struct Options {
    var command: String
    var values: [String: [String]] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    init(_ command: String, _ words: [String], valued: Set<String>, flags allowed: Set<String> = [], multi: Set<String> = []) {
        self.command = command
        var index = 0
        while index < words.count {
            let word = words[index]
            index += 1
            if word == "--" { positional += words[index...]; break }
            guard word.hasPrefix("--") else { positional.append(word); continue }
            var name = word
            var inline: String?
            if let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                inline = String(word[word.index(after: equals)...])
            }
            if allowed.contains(name) { flags.insert(name); continue }
            guard valued.contains(name) || multi.contains(name) else { usage("\(command): unknown option '\(word)'") }
            if multi.contains(name) {
                // Takes every word up to the next option.
                var taken: [String] = inline.map { [$0] } ?? []
                while index < words.count, !words[index].hasPrefix("--") { taken.append(words[index]); index += 1 }
                guard !taken.isEmpty else { usage("\(command): \(name) needs at least one value") }
                values[name, default: []] += taken
                continue
            }
            if let inline { values[name, default: []].append(inline); continue }
            guard index < words.count else { usage("\(command): \(name) needs a value") }
            values[name, default: []].append(words[index])
            index += 1
        }
    }

    func value(_ name: String) -> String? { values[name]?.last }

    func number(_ name: String, default fallback: Int, minimum: Int = 0) -> Int {
        guard let text = value(name) else { return fallback }
        guard let number = Int(text), number >= minimum else { usage("\(command): \(name) '\(text)' must be a whole number ≥ \(minimum)") }
        return number
    }

    func expect(_ count: Int, _ what: String) {
        if positional.count != count { usage("\(command): expected \(what)") }
    }
}

func storeCall<T>(_ body: () throws(StoreError) -> T) -> T {
    do { return try body() } catch { fail("store \(paths.database): \(error.message)") }
}


switch command {
case "init":
    Options(command, arguments, valued: []).expect(0, "no arguments")
    do { try FileSystem.makeDirectories(paths.directory) } catch { fail("cannot create \(paths.directory): \(error)") }
    _ = openStore(creating: true)
    if !FileSystem.exists(paths.config) {
        do {
            let fd = try FileSystem.open(paths.config, [.writeOnly, .create, .exclusive], mode: 0o644)
            defer { fd.close() }
            try fd.writeAll(PipelineConfig.defaultText)
        } catch { fail("cannot write \(paths.config): \(error)") }
        printOut("wrote \(paths.config)\n")
    }
    printOut("store \(paths.database) ready (schema \(SQLiteJobStore.schemaVersion))\n")

case "device":
    guard let sub = arguments.first else { usage("device: expected add, list or remove") }
    let options = Options(command, Array(arguments.dropFirst()), valued: ["--url", "--health", "--server-restart", "--restart", "--stop"])
    let store = openStore()
    switch sub {
    case "add":
        options.expect(1, "a device name: seqpipe device add NAME [--url URL] ...")
        var device = Device(name: options.positional[0])
        device.statusURL = options.value("--url")
        if let url = device.statusURL, HTTPProbe.parse(url) == nil { usage("device add: --url '\(url)' must look like http://HOST:PORT/PATH") }
        device.healthCommand = options.value("--health")
        device.restartCommand = options.value("--restart")
        device.serverRestartCommand = options.value("--server-restart")
        device.stopCommand = options.value("--stop")
        storeCall { () throws(StoreError) in try store.addDevice(device) }
        printOut("device \(device.name) added\n")
    case "list":
        options.expect(0, "no arguments")
        var rows = [["NAME", "HEALTH", "RESPONSE", "STATUS URL / HEALTH COMMAND"]]
        for device in storeCall({ () throws(StoreError) in try store.devices() }) {
            rows.append([device.name, device.healthy ? "healthy" : "unhealthy", device.responseMilliseconds.map { "\($0) ms" } ?? "-",
                         device.statusURL ?? device.healthCommand ?? "-"])
        }
        printOut(TextTable.render(rows))
    case "remove":
        options.expect(1, "a device name")
        if !storeCall({ () throws(StoreError) in try store.removeDevice(options.positional[0]) }) {
            fail("no device '\(options.positional[0])'; see 'seqpipe device list'", 1)
        }
        printOut("device \(options.positional[0]) removed\n")
    default: usage("device: expected add, list or remove, not '\(sub)'")
    }

case "account":
    guard let sub = arguments.first else { usage("account: expected add, list or resume") }
    let options = Options(command, Array(arguments.dropFirst()), valued: ["--daily-limit"])
    let store = openStore()
    switch sub {
    case "add":
        options.expect(1, "an account name: seqpipe account add NAME [--daily-limit N]")
        let limit = options.number("--daily-limit", default: 0)
        storeCall { () throws(StoreError) in try store.addAccount(options.positional[0], dailyLimit: limit) }
        printOut("account \(options.positional[0]) added\(limit > 0 ? " (\(limit) a day)" : "")\n")
    case "list":
        options.expect(0, "no arguments")
        let config = loadConfig()
        let today = ZoneCalendar.day(of: nowSeconds(), zone: config.dayZone)
        let done = storeCall { () throws(StoreError) in try store.successes(on: today) }
        var rows = [["NAME", "TODAY", "LIMIT", "STATE"]]
        for account in storeCall({ () throws(StoreError) in try store.accounts() }) {
            var state = "ok"
            if account.paused { state = "paused: \(account.pausedReason ?? "")" } else if let until = account.cooldownUntil, until > nowSeconds() {
                state = "cooldown until \(isoTime(until))"
            }
            rows.append([account.name, String(done[account.name] ?? 0), account.dailyLimit == 0 ? "-" : String(account.dailyLimit), state])
        }
        printOut(TextTable.render(rows))
    case "resume":
        options.expect(1, "an account name")
        if !storeCall({ () throws(StoreError) in try store.resumeAccount(options.positional[0]) }) {
            fail("no account '\(options.positional[0])'; see 'seqpipe account list'", 1)
        }
        printOut("account \(options.positional[0]) resumed\n")
    default: usage("account: expected add, list or resume, not '\(sub)'")
    }

case "add-job":
    let options = Options(command, arguments, valued: ["--account", "--id", "--video", "--caption", "--priority", "--max-attempts", "--field"])
    options.expect(0, "options only: seqpipe add-job --account A [--video PATH] ...")
    guard let account = options.value("--account"), !account.isEmpty else { usage("add-job: --account is required") }
    let config = loadConfig()
    var job = Job(id: options.value("--id") ?? "", account: account)
    job.priority = options.number("--priority", default: 0, minimum: Int.min)
    job.maxAttempts = options.number("--max-attempts", default: config.maxAttempts, minimum: 1)
    if let video = options.value("--video") { job.payload.append(("video", video)) }
    if let caption = options.value("--caption") { job.payload.append(("caption", caption)) }
    for field in options.values["--field"] ?? [] {
        guard let equals = field.firstIndex(of: "="), equals != field.startIndex else { usage("add-job: --field '\(field)' must be KEY=VALUE") }
        job.payload.append((String(field[..<equals]), String(field[field.index(after: equals)...])))
    }
    let store = openStore()
    let ids = storeCall { () throws(StoreError) in try store.addJobs([job]) }
    printOut("\(ids[0])\n")

case "add-folder":
    let options = Options(command, arguments, valued: ["--priority", "--max-attempts"], multi: ["--accounts"])
    options.expect(1, "a folder: seqpipe add-folder DIR --accounts A B C")
    guard let accounts = options.values["--accounts"], !accounts.isEmpty else { usage("add-folder: --accounts A [B...] is required") }
    let config = loadConfig()
    let store = openStore()
    let existing = Set(storeCall { () throws(StoreError) in try store.jobs() }.compactMap { $0.field("video") })
    let made: (jobs: [Job], skipped: Int)
    do {
        made = try JobSources.folder(
            options.positional[0], accounts: accounts, priority: options.number("--priority", default: 0, minimum: Int.min),
            maxAttempts: options.number("--max-attempts", default: config.maxAttempts, minimum: 1), existingVideos: existing)
    } catch { fail(error.message, 1) }
    let ids = storeCall { () throws(StoreError) in try store.addJobs(made.jobs) }
    printOut("added \(ids.count) job\(ids.count == 1 ? "" : "s") over \(min(accounts.count, max(ids.count, 1))) account\(accounts.count == 1 ? "" : "s")\(made.skipped > 0 ? "; \(made.skipped) file(s) already queued" : "")\n")

case "import-csv":
    let options = Options(command, arguments, valued: [])
    options.expect(1, "a CSV file")
    let file = options.positional[0]
    let bytes: [UInt8]
    do { bytes = try FileSystem.readFile(file) } catch { fail("cannot read \(file): \(error)", 1) }
    let config = loadConfig()
    let jobs: [Job]
    do { jobs = try ProgressCSV.importJobs(String(decoding: bytes, as: UTF8.self), file: file, defaultMaxAttempts: config.maxAttempts) } catch {
        fail(error.message, 1)
    }
    let store = openStore()
    let ids = storeCall { () throws(StoreError) in try store.addJobs(jobs) }
    printOut("imported \(ids.count) job\(ids.count == 1 ? "" : "s")\n")

case "export-csv":
    let options = Options(command, arguments, valued: [])
    if options.positional.count > 1 { usage("export-csv: expected at most one file") }
    let store = openStore()
    let text = ProgressCSV.export(storeCall { () throws(StoreError) in try store.jobs() })
    if let file = options.positional.first {
        do {
            let fd = try FileSystem.open(file, [.writeOnly, .create, .truncate], mode: 0o644)
            defer { fd.close() }
            try fd.writeAll(text)
        } catch { fail("cannot write \(file): \(error)", 1) }
    } else {
        printOut(text)
    }

case "run":
    let options = Options(command, arguments, valued: ["--workers"], flags: ["--once"])
    options.expect(0, "options only: seqpipe run [--workers N] [--once]")
    let signals: SignalReceiver
    do { signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup, .child]) } catch {
        fail("cannot set up signal handling: \(error)")
    }
    let config = loadConfig()
    let store = openStore()
    // One worker per device unless told otherwise.
    let devices = storeCall { () throws(StoreError) in try store.devices() }.count
    let workers = options.number("--workers", default: max(devices, 1), minimum: 1)
    let orchestrator = Orchestrator(
        store: store, config: config, paths: paths, workerCount: workers, once: options.flags.contains("--once"),
        signals: signals, reporter: reporter)
    do { ProcessExit.now(try orchestrator.run()) } catch { fail(error.message, error.exitCode) }

case "worker":
    // Started by 'seqpipe run' only: one worker process.
    let options = Options(command, arguments, valued: ["--index", "--device", "--parent", "--lock-fd"])
    let member = runMemberSetUp("worker", options)
    guard let device = options.value("--device") else { usage("worker: --device is required") }
    let index = options.number("--index", default: 0)
    let config = loadConfig()
    let store = openStore()
    var worker = Worker(
        store: store, config: config, index: index, deviceName: device, signals: member.signals,
        reporter: Reporter(toolName: "seqpipe worker \(index)"), captureFile: "\(paths.run)/worker_\(index).out")
    worker.lifeline = member.lifeline
    worker.locks = member.locks
    ProcessExit.now(worker.run())

case "scheduler":
    // Started by 'seqpipe run' only, when the config has recurring jobs.
    let options = Options(command, arguments, valued: ["--parent", "--lock-fd"])
    let member = runMemberSetUp("scheduler", options)
    let config = loadConfig()
    let store = openStore()
    var scheduler = Scheduler(store: store, config: config, paths: paths, signals: member.signals, reporter: Reporter(toolName: "seqpipe scheduler"))
    scheduler.lifeline = member.lifeline
    scheduler.lockDescriptor = member.locks?.inherited?.rawValue
    ProcessExit.now(scheduler.run())

case "recurring-run":
    // Started by the scheduler only: one run of a recurring job.
    let options = Options(command, arguments, valued: ["--parent", "--lock-fd"])
    options.expect(1, "the name of a recurring job")
    let member = runMemberSetUp("recurring-run", options)
    let signals = member.signals
    let config = loadConfig()
    guard let job = config.recurring.first(where: { $0.name == options.positional[0] }) else {
        fail("no recurring job '\(options.positional[0])' in \(paths.config); see 'seqpipe schedule'", 1)
    }
    let store = openStore()
    let run = RecurringRun(store: store, config: config, job: job, signals: signals, captureFile: "\(paths.run)/recurring_\(job.name).out",
                           lifeline: member.lifeline)
    ProcessExit.now(storeCall { () throws(StoreError) in try run.run() })

case "schedule":
    let options = Options(command, arguments, valued: ["--minutes"])
    options.expect(0, "no arguments but --minutes N")
    let config = loadConfig()
    guard !config.recurring.isEmpty else {
        printOut("no recurring jobs in \(paths.config); add a \"recurring\" list (see 'man seqpipe')\n")
        ProcessExit.now(0)
    }
    let minutes = options.number("--minutes", default: 60, minimum: 1)
    var text = "the first \(minutes) minute\(minutes == 1 ? "" : "s") after 'seqpipe run' starts (a range interval at its shortest):\n"
    for (at, job) in Schedule.timeline(config.recurring, horizon: Double(minutes) * 60) {
        text += "\(Schedule.clock(at).leftPadded(to: 9))  \(job.name)  (P\(job.priority)\(job.critical ? ", critical" : ""), \(job.intervalText))\n"
    }
    printOut(text)

case "status":
    let options = Options(command, arguments, valued: [], flags: ["--json"])
    options.expect(0, "no arguments but --json")
    let config = loadConfig()
    let store = openStore()
    let status = storeCall { () throws(StoreError) in try PipelineStatus.read(store: store, config: config, paths: paths) }
    printOut(options.flags.contains("--json") ? status.json : status.text)

case "events":
    let options = Options(command, arguments, valued: ["--limit", "--since"], flags: ["--json"])
    options.expect(0, "no arguments but --limit N, --since T and --json")
    var since: Double?
    if let text = options.value("--since") {
        guard let moment = parseSince(text, now: nowSeconds()) else {
            usage("events: --since '\(text)' must be a time such as 2026-11-23T10:00:00Z, seconds since the epoch, or an age such as 90s, 15m, 2h, 1d")
        }
        since = moment
    }
    let store = openStore()
    let events = storeCall { () throws(StoreError) in
        try store.events(since: since, limit: options.number("--limit", default: since == nil ? 50 : 10_000, minimum: 1))
    }
    if options.flags.contains("--json") {
        printOut(JSON.encode(.array(events.map { event in
            var fields: [(String, JSON.Value)] = [("at", .string(isoTime(event.at))), ("at_seconds", .number(event.at)), ("kind", .string(event.kind))]
            if let job = event.job { fields.append(("job", .string(job))) }
            if let account = event.account { fields.append(("account", .string(account))) }
            if let device = event.device { fields.append(("device", .string(device))) }
            if let worker = event.worker { fields.append(("worker", .integer(Int64(worker)))) }
            fields.append(("message", .string(event.message)))
            return .object(fields)
        })) + "\n")
        ProcessExit.now(0)
    }
    for event in events {
        var subject: [String] = []
        if let job = event.job { subject.append("job \(job)") }
        if let account = event.account { subject.append("account \(account)") }
        if let device = event.device { subject.append("device \(device)") }
        if let worker = event.worker { subject.append("worker \(worker)") }
        printOut("\(isoTime(event.at))  \(event.kind)  \(subject.joined(separator: ", "))\(subject.isEmpty ? "" : ": ")\(event.message)\n")
    }

case "show-config":
    Options(command, arguments, valued: []).expect(0, "no arguments")
    let config = loadConfig()
    var text = "config: \(config.path ?? "\(paths.config) (missing: defaults)")\n"
    let store = FileSystem.exists(paths.database) ? openStore() : nil
    let devices = store.map { s in storeCall { () throws(StoreError) in try s.devices() } } ?? []
    text += "workers (one per device, in name order):\n"
    let shown = max(devices.count, 3)
    var rows = [["WORKER", "DEVICE", "APPIUM PORT", "SYSTEM PORTS", "LOG"]]
    for index in 0..<shown {
        rows.append([String(index), index < devices.count ? devices[index].name : "-", String(config.appiumPort(worker: index)),
                     "\(config.systemPort(worker: index))-\(config.systemPort(worker: index) + config.systemPortStride - 1)",
                     paths.log(worker: index)])
    }
    text += TextTable.render(rows)
    text += "steps:\n"
    for step in config.steps {
        text += "  \(step.name): \(GuardedCommand.displayCommand(step.run)) (timeout \(durationText(step.timeoutSeconds)), memory \(step.memoryLimitMegabytes) MB, \(step.attempts) attempts\(step.check.map { ", check \(GuardedCommand.displayCommand($0))" } ?? ""))\n"
    }
    if let reset = config.reset { text += "  reset between attempts: \(GuardedCommand.displayCommand(reset))\n" }
    let policy = config.policy
    text += """
        policies:
          job attempts \(config.maxAttempts), backoff \(durationText(policy.backoffBaseSeconds))·2^n up to \(durationText(policy.backoffCapSeconds)) (full jitter)
          step backoff \(durationText(config.stepBackoffBaseSeconds))·2^n up to \(durationText(config.stepBackoffCapSeconds)); infrastructure retry within \(durationText(policy.infraRetrySeconds))
          cooldown after \(policy.cooldownAfter) infrastructure failures in a row: \(durationText(policy.cooldownBaseSeconds)), doubling, up to \(durationText(policy.cooldownCapSeconds))
          poison after \(policy.poisonAfter) crashes; a job fails after \(policy.maxInfrastructureAttempts) infrastructure failures; requeues spread over \(durationText(policy.requeueSpreadSeconds))
          delays: pre \(durationText(config.preBaseSeconds)) + min(response × \(config.delayFactor), \(durationText(config.delayCapSeconds))), post \(durationText(config.postBaseSeconds)) + the same; unmeasured: \(durationText(config.preFallbackSeconds)) / \(durationText(config.postFallbackSeconds))
          health: \(durationText(config.healthTimeoutSeconds)) limit, restart after \(config.failuresBeforeRestart) failures, then wait \(durationText(config.restartWaitSeconds))
          stop grace \(durationText(config.stopGraceSeconds)), kill grace \(durationText(config.killGraceSeconds)); heartbeat every \(durationText(config.heartbeatSeconds)), hung after \(durationText(config.hungAfterSeconds))
          permanent: \(config.permanentPatterns.map { "\($0.type)=\"\($0.pattern)\"" }.joined(separator: " "))
          infrastructure: \(config.infrastructurePatterns.map { "\"\($0)\"" }.joined(separator: " "))
          days start at midnight \(config.dayZone)

        """
    if !config.recurring.isEmpty {
        let watchdog = config.watchdog
        text += """
            recurring: \(config.recurring.count) jobs (see 'seqpipe schedule'); missed runs: \(config.scheduler.missed.rawValue); memory critical below \(config.scheduler.memoryCriticalMegabytes) MB
              watchdog every \(durationText(watchdog.intervalSeconds)) (hung after \(durationText(watchdog.hungAfterSeconds)) unless a job says); health check every \(durationText(watchdog.healthIntervalSeconds)), first after \(durationText(watchdog.healthOffsetSeconds)): content within \(durationText(watchdog.contentMaxAgeSeconds)), claims within \(durationText(watchdog.claimMaxSeconds)), producer \(watchdog.producer ?? "none")
              pools: \(config.pools.isEmpty ? "none" : config.pools.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))

            """
    }
    printOut(text)

case "stop-all":
    Options(command, arguments, valued: []).expect(0, "no arguments")
    let config = loadConfig()
    guard FileSystem.exists(paths.database), let locks = try? paths.locks(create: false) else {
        printOut("no orchestrator runs on \(paths.database)\n")
        ProcessExit.now(0)
    }
    defer { locks.directory.close() }
    guard let holder = locks.instance.holder() else {
        printOut("no orchestrator runs on \(paths.database)\n")
        ProcessExit.now(0)
    }
    printOut("asking the orchestrator (pid \(holder.holder.pid)) to stop; waiting for its workers\n")
    guard let (_, report) = locks.stopRun(grace: config.stopGraceSeconds + config.killGraceSeconds + 10) else {
        printOut("stopped\n")
        ProcessExit.now(0)
    }
    if report.ended.isEmpty && holder.holder.isAlive {
        fail("cannot signal the orchestrator (pid \(holder.holder.pid)); is it another user's?", 1)
    }
    for target in report.ended where report.killed.contains(target.process) {
        printOut("killed pid \(target.process.pid) (\(target.command)): it did not stop within the grace\n")
    }
    if !report.isComplete || locks.store.isHeld {
        fail("the run has not stopped yet (pid \(report.survivors.map { "\($0.process.pid)" }.joined(separator: ", "))); see 'seqpipe status'", 1)
    }
    printOut("stopped\n")

case "retry", "cancel":
    let options = Options(command, arguments, valued: [])
    options.expect(1, "a job id")
    let id = options.positional[0]
    let store = openStore()
    let changed = storeCall { () throws(StoreError) in command == "retry" ? try store.retry(id) : try store.cancel(id) }
    if !changed {
        guard let job = storeCall({ () throws(StoreError) in try store.job(id) }) else { fail("no job '\(id)'; see 'seqpipe status'", 1) }
        fail("job \(id) is \(job.status.rawValue); \(command == "retry" ? "only a failed, cancelled or retrying job can be retried" : "a claimed or running job cannot be cancelled; stop it first, a finished one need not be")", 1)
    }
    printOut("job \(id) \(command == "retry" ? "back to pending" : "cancelled")\n")

default:
    usage("unknown command '\(command)'")
}

/// The set-up every process that `seqpipe run` starts shares: signals as a stop request,
/// orphans reparented here, a lifeline to its parent (readable once the parent is gone), and
/// the store's lock kept open in every command it starts, but no other inherited descriptor.
func runMemberSetUp(_ what: String, _ options: Options) -> (signals: SignalReceiver, lifeline: FileDescriptor?, locks: PipelineLocks?) {
    let parent = Int32(options.number("--parent", default: 0))
    FileDescriptor.closeInheritedOnExec()
    let signals: SignalReceiver
    do {
        signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup, .child])
        // Where pidfds are missing, the parent's death still arrives, as a stop request.
        try Processes.setParentDeathSignal(.terminate)
        try Processes.becomeChildSubreaper()
    } catch { fail("\(what): cannot set up: \(error)") }
    var lifeline: FileDescriptor?
    if parent != 0 {
        lifeline = Processes.parentPidfd(expected: parent)
        if Processes.parentPid != parent { fail("\(what): its parent (pid \(parent)) is already gone") }
    }
    var locks: PipelineLocks?
    if let raw = options.value("--lock-fd").flatMap({ Int32($0) }) {
        do {
            var opened = try paths.locks(create: false)
            try opened.inherit(descriptor: raw)
            locks = opened
        } catch { fail("\(what): \(error.message)") }
    }
    return (signals, lifeline, locks)
}

/// `--since`: an ISO time (UTC), seconds since the epoch, or an age (`90s`, `15m`, `2h`, `1d`).
func parseSince(_ text: String, now: Double) -> Double? {
    if let moment = ZoneCalendar.parseISO(text) { return moment }
    if let seconds = Double(text), seconds.isFinite, seconds >= 0 { return seconds }
    guard let unit = text.last, let scale = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][String(unit)],
          let amount = Double(text.dropLast()), amount.isFinite, amount >= 0 else { return nil }
    return now - amount * scale
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
