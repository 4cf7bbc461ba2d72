import PipelineStore
import PipelineModel
import SeqDatabase
import PipelineRuntime
import SeqGuard
import SeqSystem

/// One `seqpipe` command line, read: the command, its words and options, the store and config
/// it names, and what every command needs to report and to reach the store. A command is a
/// method on it (Commands+*.swift), declared in `PipelineCommand.all`.
public struct Invocation: Sendable {
    public let command: PipelineCommand
    /// The options before the command (global ones), and the command's words and options.
    let leading: ScannedArguments
    let options: ScannedArguments
    let words: [String]
    /// What the messages call the command: "device add", "status".
    let label: String
    /// The config named by --config or SEQPIPE_CONFIG, which must exist (the default may not).
    private(set) var namedConfig: String?
    private(set) var paths: PipelinePaths
    let reporter = Reporter(toolName: "seqpipe")

    /// Reads `arguments` (without the program's name), answering --help and --version and
    /// ending with 2 on bad usage.
    public static func read(_ arguments: [String], version: String) -> Invocation {
        let reporter = Reporter(toolName: "seqpipe")
        func bad(_ message: String) -> Never {
            reporter.error(message)
            ProcessExit.now(2)
        }
        // Global options, then the command, then its words and options (global ones too) in any order.
        let leading: ScannedArguments
        do { leading = try ArgumentScanner.scan(arguments, options: PipelineCommand.globalOptions, stopAtFirstPositional: true) } catch {
            bad("\(error.message); see 'seqpipe --help'")
        }
        leading.answerHelpAndVersion(tool: "seqpipe", version: version, help: SeqPipelineHelp.text)
        guard let name = leading.positional.first else { bad("no command given; see 'seqpipe --help'") }
        guard let command = PipelineCommand.named(name) else { bad("unknown command '\(name)'; see 'seqpipe --help'") }
        let options: ScannedArguments
        do { options = try ArgumentScanner.scan(Array(leading.positional.dropFirst()), options: PipelineCommand.globalOptions + command.options) } catch {
            bad("\(name): \(error.message); see 'seqpipe \(name) --help'")
        }
        options.answerHelpAndVersion(tool: "seqpipe", version: version, help: HelpText.command(name, of: SeqPipelineHelp.text, tool: "seqpipe", details: command.details)
            ?? "seqpipe \(name): started by 'seqpipe run' only; see 'seqpipe --help'\n")
        return Invocation(command: command, leading: leading, options: options)
    }

    init(command: PipelineCommand, leading: ScannedArguments, options: ScannedArguments) {
        self.command = command
        self.leading = leading
        self.options = options
        words = options.positional
        label = ["device", "account"].contains(command.name) && !words.isEmpty ? "\(command.name) \(words[0])" : command.name
        // A placeholder until the paths are read: `path` below reports with `label`.
        namedConfig = nil
        paths = PipelinePaths(database: "", config: nil)
        let named = path("--config", environment: "SEQPIPE_CONFIG")
        let location = path("--db", environment: "SEQPIPE_DB") ?? ".seqpipe/pipeline.db"
        if let problem = PipelinePaths.problem(with: location) { problem.usage ? usage(problem.message) : fail(problem.message) }
        namedConfig = named
        paths = PipelinePaths(database: SQLJobStore.isURL(location) ? location : Self.absolute(location), config: named.map(Self.absolute))
    }

    /// Runs the command; returns when it is done (exit 0). A failure ends the process.
    public func run() { command.run(self) }

    func fail(_ message: String, _ code: Int32 = ExitCode.toolFailure) -> Never {
        reporter.error(message)
        ProcessExit.now(code)
    }

    func usage(_ message: String) -> Never { fail("\(label): \(message); see 'seqpipe --help'", 2) }

    func printOut(_ text: String) { try? FileDescriptor.standardOutput.writeAll(text) }

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

    /// The job filters of `jobs`, `retry` and `cancel`: --status, --account, --device, --error, --search.
    func jobQuery() -> JobQuery {
        if let status = options.value("--status"), JobStatus(rawValue: status) == nil {
            usage("--status '\(status)' must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return JobQuery(status: options.value("--status"), account: options.value("--account"), device: options.value("--device"),
                        errorType: options.value("--error"), search: options.value("--search"))
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

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let here = (try? FileSystem.currentDirectory()) ?? "."
        return here + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
    }

    /// The host this process works for: `run --host`, else SEQPIPE_HOST (how a run's members
    /// hear it), else the machine's name.
    var hostName: String {
        if command.name == "run", let name = options.value("--host") {
            if name.isEmpty { usage("--host needs a name") }
            return name
        }
        return Spawn.environmentValue("SEQPIPE_HOST").flatMap { $0.isEmpty ? nil : $0 } ?? Processes.hostName()
    }

    /// The store; commands that only read it (status, jobs, show, events, export-csv, serve)
    /// read one that cannot be written (a read-only mount) rather than refuse it. A run and its
    /// members (given their signals, and a member its lifeline) wait for a server's store that
    /// cannot be reached yet, until a stop signal or their parent's end.
    func openStore(waitingWith signals: SignalReceiver? = nil, lifeline: FileDescriptor? = nil) -> SQLJobStore {
        let reading = readsOnly
        if !paths.isURL && !FileSystem.exists(paths.database) {
            fail("no store at \(paths.storeName); create it with 'seqpipe init' (or pass --db PATH)")
        }
        let reporter = reporter
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

    /// The orders a process of 'seqpipe run' was started with, and its set-up.
    func runMember(_ role: MemberOrders.Role, _ what: String) -> (MemberOrders, RunMember) {
        do {
            let orders = try MemberOrders(role: role, options: options, words: words)
            return (orders, try RunMember.setUp(what, parent: orders.parent, lockDescriptor: orders.lockDescriptor, paths: paths))
        } catch { fail(error.message) }
    }
}
