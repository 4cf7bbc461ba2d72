import SeqGuard
import SeqSystem

// make-seq: make through the guard. Parse the few arguments that are make-seq's own, read
// the environment, and hand over to SeqGuard. Nothing else lives here.

enum Mode { case run, status(json: Bool), killAll, history(lines: Int, json: Bool), mcp, completion(String) }

func parse(_ arguments: [String]) throws(GuardFailure) -> (Mode, GuardConfiguration) {
    var configuration = GuardConfiguration()
    configuration.toolName = "make-seq"
    configuration.takesMakeLock = true
    try configuration.applyEnvironment(prefixes: ["MAKE_SEQ_", "SEQEXEC_"])

    // Only a long option of make-seq's own makes the arguments make-seq's: `make-seq -n` is
    // make's dry run.
    if let first = arguments.first, first.hasPrefix("--"), GuardOptions.makeSeq.specs.contains(where: { $0.names.contains(first) }) {
        let scanned: ScannedArguments
        do { scanned = try ArgumentScanner.scan(arguments, options: GuardOptions.makeSeq.specs) } catch {
            throw GuardFailure("\(error.message) (make's own options go after '--'); see 'make-seq --help'")
        }
        scanned.answerHelpAndVersion(tool: "make-seq", version: GuardHelp.version, help: GuardHelp.makeSeq)
        if let word = scanned.positional.first {
            throw GuardFailure("\(first) takes no make arguments, got '\(word)'; to pass them to make, put '--' first")
        }
        let modes = ["--status", "--kill-all", "--history", "--mcp", "--completion"].filter(scanned.has)
        if modes.count > 1 { throw GuardFailure("\(modes[0]) and \(modes[1]) go alone; give one") }
        let lines = try scanned.options.last { $0.name == "--lines" }.map { option throws(GuardFailure) in
            try Setting.wholeNumber(option.value ?? "", option.typed, minimum: 1)
        }
        if lines != nil && modes != ["--history"] { throw GuardFailure("-n/--lines goes with --history") }
        if let shell = scanned.value("--completion"), !scanned.has("--json") { return (.completion(shell), configuration) }
        if scanned.has("--status") { return (.status(json: scanned.has("--json")), configuration) }
        if scanned.has("--history") { return (.history(lines: lines ?? 20, json: scanned.has("--json")), configuration) }
        if scanned.has("--kill-all") && !scanned.has("--json") { return (.killAll, configuration) }
        if scanned.has("--mcp") && !scanned.has("--json") { return (.mcp, configuration) }
        throw GuardFailure("--json goes with --status or --history; see 'make-seq --help'")
    }
    let rest = arguments.first == "--" ? 1 : 0
    try MakeInvocation.configure(
        &configuration, makeArguments: Array(arguments.dropFirst(rest)),
        rawMakeArguments: Array(Spawn.rawArguments().dropFirst(1 + rest)))
    return (.run, configuration)
}

ToolStart.prepare(tool: "make-seq")
let (mode, configuration) = ToolStart.parsed(tool: "make-seq") { () throws(GuardFailure) in try parse(Array(CommandLine.arguments.dropFirst())) }

switch mode {
case .run:
    ProcessExit.now(GuardedCommand.run(configuration))
case .status(let json):
    ProcessExit.now(StatusReport.showMakeAndExecutor(configuration, json: json))
case .killAll:
    ProcessExit.now(KillAll.runAndReport(configuration))
case .history(let lines, let json):
    ProcessExit.now(History.show(configuration, limit: lines, json: json))
case .mcp:
    ProcessExit.now(MCPServer.serve(configuration))
case .completion(let shell):
    ProcessExit.now(ShellCompletion.print(tool: "make-seq", shell: shell))
}
