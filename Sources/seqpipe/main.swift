// seqpipe: each command's options, and one case per command that reads its arguments and
// calls SeqPipeline (the help text is SeqPipelineHelp). Nothing else lives here; it is past
// 400 lines for the argument handling of twenty-four commands (five of them hidden, started
// by a run or a script), which is its job.

import SeqGuard
import SeqPipeline
import SeqSystem

let version = "0.1.0"

let help = SeqPipelineHelp.text

// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run.
// Standard descriptors a caller closed are /dev/null before anything is opened.
FileDescriptor.makeStandardDescriptorsValid()
BrokenPipe.ignore()

let reporter = Reporter(toolName: "seqpipe")

func fail(_ message: String, _ code: Int32 = ExitCode.toolFailure) -> Never {
    reporter.error(message)
    ProcessExit.now(code)
}

func printOut(_ text: String) { try? FileDescriptor.standardOutput.writeAll(text) }

/// Options every command takes, before or after its name.
let globalOptions = [OptionSpec("--db", kind: .value), OptionSpec("--config", kind: .value), OptionSpec("-h", "--help"), OptionSpec("--version")]

/// What seeding takes: folders (each file a job over the accounts in turn) and CSVs.
let seedOptions = [OptionSpec("--folder", kind: .value), OptionSpec("--accounts", kind: .values), OptionSpec("--csv", kind: .value),
                   OptionSpec("--export", kind: .value), OptionSpec("--priority", kind: .value), OptionSpec("--max-attempts", kind: .value)]

/// Each command's own options. worker, device-server, scheduler and recurring-run are
/// started by 'seqpipe run' only; bench-claims by scripts/bench-pipeline.
let commandOptions: [String: [OptionSpec]] = [
    "init": [], "import-csv": [], "export-csv": [], "show-config": [], "stop-all": [], "retry": [], "cancel": [],
    "device": [OptionSpec("--url", kind: .value), OptionSpec("--health", kind: .value), OptionSpec("--server", kind: .value),
               OptionSpec("--server-restart", kind: .value),
               OptionSpec("--restart", kind: .value), OptionSpec("--stop", kind: .value), OptionSpec("--host", kind: .value),
               OptionSpec("--force")],
    "account": [OptionSpec("--daily-limit", kind: .value)],
    "add-job": [OptionSpec("--account", kind: .value), OptionSpec("--id", kind: .value), OptionSpec("--video", kind: .value),
                OptionSpec("--caption", kind: .value), OptionSpec("--priority", kind: .value), OptionSpec("--max-attempts", kind: .value),
                OptionSpec("--field", kind: .value)],
    "add-folder": [OptionSpec("--accounts", kind: .values), OptionSpec("--priority", kind: .value), OptionSpec("--max-attempts", kind: .value)],
    "run": [OptionSpec("--workers", kind: .value), OptionSpec("--once"), OptionSpec("--seed-only"), OptionSpec("--host", kind: .value)] + seedOptions,
    "seed": seedOptions,
    "status": [OptionSpec("--json"), OptionSpec("--watch")],
    "jobs": [OptionSpec("--status", kind: .value), OptionSpec("--account", kind: .value), OptionSpec("--device", kind: .value),
             OptionSpec("--error", kind: .value), OptionSpec("--search", kind: .value), OptionSpec("--json")],
    "show": [OptionSpec("--json")],
    "events": [OptionSpec("--limit", kind: .value), OptionSpec("--since", kind: .value), OptionSpec("--json")],
    "schedule": [OptionSpec("--minutes", kind: .value)],
    "worker": [OptionSpec("--index", kind: .value), OptionSpec("--device", kind: .value), OptionSpec("--parent", kind: .value), OptionSpec("--lock-fd", kind: .value)],
    "device-server": [OptionSpec("--index", kind: .value), OptionSpec("--device", kind: .value), OptionSpec("--parent", kind: .value),
                      OptionSpec("--lock-fd", kind: .value), OptionSpec("--device-lock-fd", kind: .value)],
    "scheduler": [OptionSpec("--parent", kind: .value), OptionSpec("--lock-fd", kind: .value)],
    "recurring-run": [OptionSpec("--parent", kind: .value), OptionSpec("--lock-fd", kind: .value)],
    "bench-claims": [OptionSpec("--claimers", kind: .value), OptionSpec("--member", kind: .value)],
    "serve": [OptionSpec("--listen", kind: .value), OptionSpec("--allow-actions"), OptionSpec("--token-file", kind: .value)],
]

// Global options, then the command, then its words and options (global ones too) in any order.
let leading: ScannedArguments
do { leading = try ArgumentScanner.scan(Array(CommandLine.arguments.dropFirst()), options: globalOptions, stopAtFirstPositional: true) } catch {
    fail("\(error.message); see 'seqpipe --help'", 2)
}
leading.answerHelpAndVersion(tool: "seqpipe", version: version, help: help)
guard let command = leading.positional.first else { fail("no command given; see 'seqpipe --help'", 2) }
guard let ownOptions = commandOptions[command] else { fail("unknown command '\(command)'; see 'seqpipe --help'", 2) }

func usage(_ message: String) -> Never { fail("\(label): \(message); see 'seqpipe --help'", 2) }

let options: ScannedArguments
do { options = try ArgumentScanner.scan(Array(leading.positional.dropFirst()), options: globalOptions + ownOptions) } catch {
    fail("\(command): \(error.message); see 'seqpipe \(command) --help'", 2)
}
options.answerHelpAndVersion(tool: "seqpipe", version: version, help: HelpText.command(command, of: help, tool: "seqpipe")
    ?? "seqpipe \(command): started by 'seqpipe run' only; see 'seqpipe --help'\n")
let words = options.positional
/// What the messages call the command: "device add", "status".
let label = ["device", "account"].contains(command) && !words.isEmpty ? "\(command) \(words[0])" : command

func number(_ name: String, default fallback: Int, minimum: Int = 0) -> Int {
    guard let text = options.value(name) else { return fallback }
    guard let number = Int(text), number >= minimum else { usage("\(name) '\(text)' must be a whole number ≥ \(minimum)") }
    return number
}

/// --priority: P0 to P3, high, normal, low, or a whole number.
func priority() -> Int {
    guard let text = options.value("--priority") else { return 0 }
    guard let value = Priority.jobNumber(text) else { usage("--priority '\(text)' must be \(Priority.jobVocabulary)") }
    return value
}

func expect(_ count: Int, _ what: String) {
    if words.count != count { usage("expected \(what)") }
}

func path(_ name: String, environment: String) -> String? {
    if let value = options.value(name) ?? leading.value(name) {
        if value.isEmpty { usage("\(name) needs a path") }
        return value
    }
    return Spawn.environmentValue(environment).flatMap { $0.isEmpty ? nil : $0 }
}

func absolute(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    let here = (try? FileSystem.currentDirectory()) ?? "."
    return here + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
}

/// The config named by --config or SEQPIPE_CONFIG, which must exist (the default may not).
let namedConfig = path("--config", environment: "SEQPIPE_CONFIG")
let location = path("--db", environment: "SEQPIPE_DB") ?? ".seqpipe/pipeline.db"
if let problem = PipelinePaths.problem(with: location) { problem.usage ? usage(problem.message) : fail(problem.message) }
let paths = PipelinePaths(database: SQLJobStore.isURL(location) ? location : absolute(location), config: namedConfig.map(absolute))

func loadConfig() -> PipelineConfig {
    // The default file may be missing (the defaults apply); one named by hand may not.
    if let namedConfig, !FileSystem.exists(paths.config) {
        fail("no config at \(namedConfig); create it (seqpipe init writes one with every default) or drop --config")
    }
    do { return try PipelineConfig.load(path: paths.config) } catch { fail(error.message) }
}

/// The host this process works for: `run --host`, else SEQPIPE_HOST (how a run's members
/// hear it), else the machine's name.
let hostName: String = {
    if command == "run", let name = options.value("--host") {
        if name.isEmpty { usage("--host needs a name") }
        return name
    }
    return Spawn.environmentValue("SEQPIPE_HOST").flatMap { $0.isEmpty ? nil : $0 } ?? Processes.hostName()
}()

/// The store; commands that only read it (status, jobs, show, events, export-csv, serve)
/// read one that cannot be written (a read-only mount) rather than refuse it. A run and its
/// members (given their signals, and a member its lifeline) wait for a server's store that
/// cannot be reached yet, until a stop signal or their parent's end.
func openStore(waitingWith signals: SignalReceiver? = nil, lifeline: FileDescriptor? = nil) -> SQLJobStore {
    let reading = ["status", "jobs", "show", "events", "export-csv", "serve", "show-config"].contains(command)
    if !paths.isURL && !FileSystem.exists(paths.database) {
        fail("no store at \(paths.storeName); create it with 'seqpipe init' (or pass --db PATH)")
    }
    let waiting: ((StoreError, Bool) -> Bool)? = signals.map { signals in { error, first in
        if first { reporter.error("\(error.message); waiting for it") }
        return signals.sleep(seconds: 0.5, wakingOn: lifeline.map { [$0] } ?? [], stopsOn: { [.terminate, .interrupt, .hangup].contains($0.signal) }) == .elapsed
    } }
    do {
        return try SQLJobStore.openForUse(paths.database, host: hostName, readingOnly: reading, waiting: waiting)
    } catch where error.code == SQLJobStore.noSchema {
        fail("no seqpipe store in \(paths.storeName); create it with 'seqpipe init --db URL'")
    } catch {
        fail(error.message)
    }
}

func storeCall<T>(_ body: () throws(StoreError) -> T) -> T {
    do { return try body() } catch { fail("store \(paths.storeName): \(error.message)") }
}

/// The set-up of a process 'seqpipe run' starts.
func runMember(_ what: String) -> RunMember {
    do {
        return try RunMember.setUp(
            what, parent: Int32(number("--parent", default: 0)), lockDescriptor: options.value("--lock-fd").flatMap { Int32($0) }, paths: paths)
    } catch { fail(error.message) }
}

switch command {
case "init":
    expect(0, "no arguments")
    do {
        let (wroteConfig, _) = try paths.initialize()
        if wroteConfig { printOut("wrote \(paths.config)\n") }
    } catch { fail(error.message) }
    printOut("store \(paths.storeName) ready (schema \(openStore().schemaVersion))\n")

case "device":
    guard let sub = words.first else { usage("expected add, list or remove") }
    let store = openStore()
    switch sub {
    case "add":
        if words.count != 2 { usage("expected a device name: seqpipe device add NAME [--url URL] ...") }
        let device: Device
        do {
            // A store shared by hosts: the device is this machine's unless named otherwise; on
            // one host (SQLite) it is any host's, so a renamed machine still drives it.
            device = try Device.checked(
                name: words[1], url: options.value("--url"), health: options.value("--health"), server: options.value("--server"),
                serverRestart: options.value("--server-restart"), restart: options.value("--restart"), stop: options.value("--stop"),
                host: options.value("--host") ?? (paths.isURL ? Processes.hostName() : ""), config: loadConfig())
        } catch { usage(error.message) }
        storeCall { () throws(StoreError) in try store.addDevice(device) }
        printOut("device \(device.name) added\n")
    case "list":
        if words.count != 1 { usage("expected no arguments") }
        printOut(Listing.devices(storeCall { () throws(StoreError) in try store.devices() }, localHost: store.host))
    case "remove":
        if words.count != 2 { usage("expected a device name") }
        let name = words[1]
        guard storeCall({ () throws(StoreError) in try store.devices() }).contains(where: { $0.name == name }) else {
            fail("no device '\(name)'; see 'seqpipe device list'", 1)
        }
        do { try paths.drainDevice(name, store: store, force: options.has("--force"), announce: printOut) } catch { fail(error.message, error.exitCode) }
        if !storeCall({ () throws(StoreError) in try store.removeDevice(name) }) {
            fail("no device '\(name)'; see 'seqpipe device list'", 1)
        }
        printOut("device \(name) removed\n")
    default: usage("expected add, list or remove, not '\(sub)'")
    }

case "account":
    guard let sub = words.first else { usage("expected add, list or resume") }
    let store = openStore()
    switch sub {
    case "add":
        if words.count != 2 { usage("expected an account name: seqpipe account add NAME [--daily-limit N]") }
        let limit = number("--daily-limit", default: 0)
        storeCall { () throws(StoreError) in try store.addAccount(words[1], dailyLimit: limit) }
        printOut("account \(words[1]) added\(limit > 0 ? " (\(limit) a day)" : "")\n")
    case "list":
        if words.count != 1 { usage("expected no arguments") }
        let today = ZoneCalendar.day(of: nowSeconds(), zone: loadConfig().dayZone)
        let done = storeCall { () throws(StoreError) in try store.successes(on: today) }
        printOut(Listing.accounts(storeCall { () throws(StoreError) in try store.accounts() }, successesToday: done, now: nowSeconds()))
    case "resume":
        if words.count != 2 { usage("expected an account name") }
        if !storeCall({ () throws(StoreError) in try store.resumeAccount(words[1]) }) {
            fail("no account '\(words[1])'; see 'seqpipe account list'", 1)
        }
        printOut("account \(words[1]) resumed\n")
    default: usage("expected add, list or resume, not '\(sub)'")
    }

case "add-job":
    expect(0, "options only: seqpipe add-job --account A [--video PATH] ...")
    guard let account = options.value("--account"), !account.isEmpty else { usage("--account is required") }
    let config = loadConfig()
    var job = Job(id: options.value("--id") ?? "", account: account)
    job.priority = priority()
    job.maxAttempts = number("--max-attempts", default: config.maxAttempts, minimum: 1)
    if let video = options.value("--video") { job.payload.append(("video", video)) }
    if let caption = options.value("--caption") { job.payload.append(("caption", caption)) }
    for field in options.values("--field") {
        guard let equals = field.firstIndex(of: "="), equals != field.startIndex else { usage("--field '\(field)' must be KEY=VALUE") }
        job.payload.append((String(field[..<equals]), String(field[field.index(after: equals)...])))
    }
    let store = openStore()
    if let missing = Placeholders.missing(for: job, config: config) { fail("job \(job.id.isEmpty ? "to add" : job.id): \(missing)", 1) }
    let ids = storeCall { () throws(StoreError) in try store.addJobs([job]) }
    printOut("\(ids[0])\n")

case "add-folder":
    expect(1, "a folder: seqpipe add-folder DIR --accounts A B C")
    let accounts = options.values("--accounts")
    guard !accounts.isEmpty else { usage("--accounts A [B...] is required") }
    let config = loadConfig()
    let store = openStore()
    let existing = Set(storeCall { () throws(StoreError) in try store.jobs() }.compactMap { $0.field("video") })
    let made: (jobs: [Job], skipped: Int)
    do {
        made = try JobSources.folder(
            words[0], accounts: accounts, priority: priority(),
            maxAttempts: number("--max-attempts", default: config.maxAttempts, minimum: 1), existingVideos: existing)
    } catch { fail(error.message, 1) }
    if let job = made.jobs.first, let missing = Placeholders.missing(for: job, config: config) { fail("\(words[0]): \(missing)", 1) }
    let ids = storeCall { () throws(StoreError) in try store.addJobs(made.jobs) }
    printOut("added \(ids.count) job\(ids.count == 1 ? "" : "s") over \(min(accounts.count, max(ids.count, 1))) account\(accounts.count == 1 ? "" : "s")\(made.skipped > 0 ? "; \(made.skipped) file(s) already queued" : "")\n")

case "import-csv":
    expect(1, "a CSV file")
    let bytes: [UInt8]
    do { bytes = try FileSystem.readFile(words[0]) } catch { fail("cannot read \(words[0]): \(error)", 1) }
    let config = loadConfig()
    let rows: [(job: Job, line: Int)]
    do { rows = try ProgressCSV.importRows(ProgressCSV.text(bytes, file: words[0]), file: words[0], defaultMaxAttempts: config.maxAttempts) } catch {
        fail(error.message, 1)
    }
    let store = openStore()
    let known = Set(storeCall { () throws(StoreError) in try store.jobs() }.map(\.id))
    for (job, line) in rows {
        if known.contains(job.id) { fail("\(words[0]):\(line): job '\(job.id)' is already in the store; give it another id, or drop the row", 1) }
        if let missing = Placeholders.missing(for: job, config: config) { fail("\(words[0]):\(line): job \(job.id): \(missing)", 1) }
    }
    let ids = storeCall { () throws(StoreError) in try store.addJobs(rows.map(\.job)) }
    printOut("imported \(ids.count) job\(ids.count == 1 ? "" : "s")\n")

case "export-csv":
    if words.count > 1 { usage("expected at most one file") }
    let store = openStore()
    let text = ProgressCSV.export(storeCall { () throws(StoreError) in try store.jobs() })
    guard let file = words.first else { printOut(text); ProcessExit.now(0) }
    do { try FileSystem.writeFile(file, text) } catch { fail("cannot write \(file): \(error)", 1) }

case "seed":
    seed()

case "run" where options.has("--seed-only"):
    seed()

case "run":
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

case "worker":
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

case "device-server":
    let member = runMember("device server")
    guard let device = options.value("--device") else { usage("--device is required") }
    ProcessExit.now(DeviceServerMember.run(
        words, member: member, device: device, deviceLock: options.value("--device-lock-fd").flatMap { Int32($0) }, config: loadConfig(),
        reporter: Reporter(toolName: "seqpipe device-server \(number("--index", default: 0))")))

case "scheduler":
    let member = runMember("scheduler")
    var scheduler = Scheduler(
        store: openStore(waitingWith: member.signals, lifeline: member.lifeline), config: loadConfig(), paths: paths, signals: member.signals,
        reporter: Reporter(toolName: "seqpipe scheduler"))
    scheduler.lifeline = member.lifeline
    scheduler.lockDescriptor = member.locks?.inherited?.rawValue
    ProcessExit.now(scheduler.run())

case "recurring-run":
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

case "serve":
    expect(0, "options only: seqpipe serve [--listen HOST:PORT] [--allow-actions] [--token-file FILE]")
    do {
        var dashboard = Dashboard(store: openStore(), config: loadConfig(), paths: paths)
        try dashboard.configure(listen: options.value("--listen") ?? "127.0.0.1:8080", allowActions: options.has("--allow-actions"),
                                tokenFile: options.value("--token-file"))
        try dashboard.serve { printOut($0 + "\n") }
    } catch { fail("serve: \(error.message)", error.exitCode) }

case "bench-claims":
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

case "schedule":
    expect(0, "no arguments but --minutes N")
    printOut(Listing.schedule(loadConfig(), paths: paths, minutes: number("--minutes", default: 60, minimum: 1)))

case "status":
    expect(0, "no arguments but --json or --watch")
    let config = loadConfig()
    let store = openStore()
    func read() -> PipelineStatus { storeCall { () throws(StoreError) in try PipelineStatus.read(store: store, config: config, paths: paths) } }
    guard options.has("--watch") else {
        let status = read()
        printOut(options.has("--json") ? status.json : status.text)
        ProcessExit.now(0)
    }
    if options.has("--json") { usage("--watch redraws the text; --json is for one reading") }
    do { try PipelineStatus.watch(FileDescriptor.standardOutput, every: 2, read: read) } catch { fail(error.message) }

case "jobs":
    expect(0, "options only: seqpipe jobs [--status S] [--account A] [--device D] [--error TYPE] [--search TEXT] [--json]")
    if let status = options.value("--status"), JobStatus(rawValue: status) == nil {
        usage("--status '\(status)' must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    let query = JobQuery(status: options.value("--status"), account: options.value("--account"), device: options.value("--device"),
                         errorType: options.value("--error"), search: options.value("--search"))
    let jobs = storeCall { () throws(StoreError) in try openStore().jobs() }.filter(query.matches)
    printOut(options.has("--json") ? JSON.encode(.object([("total", .integer(Int64(jobs.count))), ("jobs", .array(jobs.map(Dashboard.jobJSON)))])) + "\n"
             : Listing.jobs(jobs))

case "show":
    expect(1, "a job id: seqpipe show JOB [--json]")
    let store = openStore()
    guard let job = storeCall({ () throws(StoreError) in try store.job(words[0]) }) else { fail("no job '\(words[0])'; see 'seqpipe jobs'", 1) }
    let detail = storeCall { () throws(StoreError) in try Dashboard.jobDetail(job, store: store, config: loadConfig(), paths: paths) }
    printOut(options.has("--json") ? JSON.encode(detail) + "\n" : Listing.job(detail))

case "events":
    expect(0, "no arguments but --limit N, --since T and --json")
    var since: Double?
    if let text = options.value("--since") {
        guard let moment = Listing.parseSince(text, now: nowSeconds()) else {
            usage("--since '\(text)' must be a time such as 2026-11-23T10:00:00Z, seconds since the epoch, or an age such as 90s, 15m, 2h, 1d")
        }
        since = moment
    }
    let store = openStore()
    let limit = number("--limit", default: since == nil ? 50 : 10_000, minimum: 1)
    printOut(Listing.events(storeCall { () throws(StoreError) in try store.events(since: since, limit: limit) }, json: options.has("--json")))

case "show-config":
    expect(0, "no arguments")
    let config = loadConfig()
    let devices = paths.isURL || FileSystem.exists(paths.database) ? storeCall { () throws(StoreError) in try openStore().devices() } : []
    printOut(Listing.configuration(config, devices: devices, paths: paths))

case "stop-all":
    expect(0, "no arguments")
    let outcome = paths.stopAll(config: loadConfig()) { pid in
        printOut("asking the orchestrator (pid \(pid)) to stop; waiting for its workers\n")
    }
    let (text, failure) = outcome.report(store: paths.storeName)
    printOut(text)
    if let failure { fail(failure, 1) }

default:  // retry, cancel
    expect(1, "a job id")
    let id = words[0]
    let store = openStore()
    let changed = storeCall { () throws(StoreError) in command == "retry" ? try store.retry(id) : try store.cancel(id) }
    if !changed {
        guard let job = storeCall({ () throws(StoreError) in try store.job(id) }) else { fail("no job '\(id)'; see 'seqpipe status'", 1) }
        fail("job \(id) is \(job.status.rawValue); \(command == "retry" ? "only a failed, cancelled or retrying job can be retried" : "a claimed or running job cannot be cancelled; stop it first, a finished one need not be")", 1)
    }
    printOut("job \(id) \(command == "retry" ? "back to pending" : "cancelled")\n")
}

/// `seqpipe seed` and `run --seed-only`: the store filled from folders and CSVs, the
/// progress CSV written with --export; no worker starts.
func seed() {
    expect(0, "options only: seqpipe seed [--folder DIR --accounts A B] [--csv FILE] [--export FILE]")
    let folders = options.values("--folder")
    let accounts = options.values("--accounts")
    if !folders.isEmpty && accounts.isEmpty { usage("--folder needs --accounts A [B...] to post the files to") }
    let store: SQLJobStore
    do { store = try paths.initialize().store } catch { fail(error.message) }
    let config = loadConfig()
    do {
        printOut(try JobSources.seed(
            store: store, folders: folders, accounts: accounts, csvFiles: options.values("--csv"),
            priority: priority(), maxAttempts: number("--max-attempts", default: config.maxAttempts, minimum: 1),
            export: options.value("--export"), config: config))
    } catch { fail(error.message, 1) }
}
