import SeqGuard
import SeqSystem

// seqexec: parse flags and environment, then hand over to SeqGuard. Nothing else lives here.

enum Mode: Equatable { case run, status, killAll, history, submit, wait(String), runs, cancel(String), mcp, completion(String) }

func parse(_ arguments: [String]) throws(GuardFailure) -> (Mode, GuardConfiguration, json: Bool, lines: Int, tail: Bool, waitLimit: Double?) {
    var configuration = GuardConfiguration()
    var mode = Mode.run
    var json = false
    var lines = 20
    var linesGiven = false
    var tail = false
    var waitTimeoutGiven = false
    // Environment first; flags override below.
    try configuration.applyEnvironment(prefixes: ["SEQEXEC_"])

    let scanned: ScannedArguments
    do { scanned = try ArgumentScanner.scan(arguments, options: GuardOptions.seqexec.specs, stopAtFirstPositional: true) } catch {
        throw GuardFailure("\(error.message); see 'seqexec --help'")
    }
    scanned.answerHelpAndVersion(tool: "seqexec", version: GuardHelp.version, help: GuardHelp.seqexec)
    for option in scanned.options {
        // The settings set themselves (messages name the option as typed: "invalid -t 'x'").
        try configuration.apply(option)
        let value = option.value ?? ""
        switch option.name {
        case "--wait-timeout": waitTimeoutGiven = true
        case "--lines":
            lines = try Setting.wholeNumber(value, option.typed, minimum: 1)
            linesGiven = true
        case "--status": mode = .status
        case "--json": json = true
        case "--kill-all": mode = .killAll
        case "--history": mode = .history
        case "--submit": mode = .submit
        case "--wait": mode = .wait(value)
        case "--tail": tail = true
        case "--runs": mode = .runs
        case "--cancel": mode = .cancel(value)
        case "--mcp": mode = .mcp
        case "--completion": mode = .completion(value)
        default: break  // a setting, or --help and --version, answered above
        }
    }
    // One thing at a time: two of these cannot be meant together.
    let modes = scanned.options.map(\.typed).filter { ["--status", "--history", "--kill-all", "--submit", "--wait", "--runs", "--cancel", "--mcp", "--completion"].contains($0) }
    if let second = Set(modes).count > 1 ? modes.first(where: { $0 != modes[0] }) : nil {
        throw GuardFailure("\(modes[0]) and \(second) go alone; give one")
    }
    let index = scanned.restIndex
    configuration.arguments = Array(arguments[index...])
    // What runs is argv's own bytes: the Strings above are for display and decisions.
    configuration.rawArguments = Array(Spawn.rawArguments().dropFirst(1 + index))
    let runsCommand = mode == .run || mode == .submit
    if runsCommand && configuration.arguments.isEmpty {
        throw GuardFailure("no command given; usage: seqexec [OPTIONS] [--] COMMAND [ARG...]")
    }
    if !runsCommand && !configuration.arguments.isEmpty {
        throw GuardFailure("--status, --history, --runs, --wait, --cancel, --mcp, --kill-all and --completion take no command; got '\(configuration.arguments[0])'")
    }
    if json && ![.status, .history, .runs].contains(mode) { throw GuardFailure("--json goes with --status, --history or --runs") }
    if linesGiven && mode != .history { throw GuardFailure("-n/--lines goes with --history") }
    if tail, case .wait = mode {} else if tail { throw GuardFailure("--tail goes with --wait") }
    // -w limits --wait's following only when given here: SEQEXEC_WAIT_TIMEOUT is the queue's.
    return (mode, configuration, json, lines, tail, waitTimeoutGiven ? configuration.waitTimeout : nil)
}

ToolStart.prepare(tool: "seqexec")
let (mode, configuration, json, lines, tail, waitLimit) = ToolStart.parsed(tool: "seqexec") { () throws(GuardFailure) in
    try parse(Array(CommandLine.arguments.dropFirst()))
}

switch mode {
case .run:
    ProcessExit.now(GuardedCommand.run(configuration))
case .status:
    ProcessExit.now(StatusReport.show(configuration, json: json))
case .history:
    ProcessExit.now(History.show(configuration, limit: lines, json: json))
case .killAll:
    ProcessExit.now(KillAll.runAndReport(configuration))
case .submit:
    ProcessExit.now(Submission.submit(configuration))
case .wait(let id):
    ProcessExit.now(Submission.wait(configuration, id: id, timeout: waitLimit, tail: tail))
case .runs:
    ProcessExit.now(Submission.list(configuration, json: json))
case .cancel(let id):
    ProcessExit.now(Submission.cancel(configuration, id: id))
case .mcp:
    ProcessExit.now(MCPServer.serve(configuration))
case .completion(let shell):
    ProcessExit.now(ShellCompletion.print(tool: "seqexec", shell: shell))
}
