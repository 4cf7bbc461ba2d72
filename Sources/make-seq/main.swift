import SeqGuard
import SeqSystem

// make-seq: make through the guard. Parse the few arguments that are make-seq's own, read
// the environment, and hand over to SeqGuard. Nothing else lives here.

let version = "0.1.0"

let help = """
OVERVIEW: Run make under the project's guard: one make of the project at a time, in
arrival order, each also excluding every other guarded command of the project, under
seqexec's memory limit, timeout and process-tree cleanup. A waiting make is told its
place in the queue.

USAGE: make-seq [MAKE ARGUMENT...]
       make-seq -- [MAKE ARGUMENT...]
       make-seq --status [--json]
       make-seq --kill-all
       make-seq --history [-n N] [--json]
       make-seq --help | --version

OPTIONS:
  Every argument goes to make untouched, unless the first is one of these.
      --status            Show who holds the project's make lock and executor
                          lock, and who waits for each.
      --json              With --status: one JSON object; with --history: a
                          JSON array of runs.
      --history           Show the project's last guarded runs, makes and
                          commands alike, as 'seqexec --history' does.
  -n, --lines N           With --history: how many runs (default: 20).
      --kill-all          End every guarded make, command and waiter of the
                          project, as 'seqexec --kill-all' does.
      --help              Show this help.
      --version           Show the version.
      --                  Pass everything after it to make, even --help.
  The project is the nearest directory holding .git at or above the one make
  runs in (make's -C DIR, else the current directory), else that directory.

ENVIRONMENT:
  MAKE_SEQ_MAKE                     The make program to run (default: make).
  MAKE_SEQ_<NAME>, SEQEXEC_<NAME>   Every setting of seqexec(1) by its name:
                                    PROJECT, STATE_DIR, TIMEOUT, KILL_GRACE,
                                    WAIT_TIMEOUT, SLOTS, PRIORITY, VERBOSE,
                                    QUIET, MEMORY_LIMIT_MB, CHECK_INTERVAL,
                                    MEMORY_METRIC, MEMORY_ACTION,
                                    MIN_AVAILABLE_MB, MACHINE, GIT_WAIT,
                                    HISTORY_MAX_KB. A MAKE_SEQ_ name beats the
                                    SEQEXEC_ one. The original bare names
                                    (TIMEOUT, VERBOSE, ...) are read only under
                                    the migration shims (SEQEXEC_LEGACY_NAMES=1).
  MAKE_SEQ_LEVEL                    Set by make-seq for the make it runs: the
                                    MAKELEVEL at which seq.mk runs targets as
                                    usual instead of handing them to make-seq.
  SEQEXEC_TOKENS                    Set by make-seq for make, so that a nested
                                    make-seq or seqexec of the project runs
                                    straight through instead of waiting for itself.

EXIT STATUS:
  N        make's own exit status (2 when a target failed)
  128+N    make died of signal N (130 after Ctrl-C)
  124      make timed out (TIMEOUT)
  137      the memory monitor ended make's tree (MEMORY_LIMIT_MB)
  75       gave up waiting for the lock (WAIT_TIMEOUT) or for memory
  125      make-seq itself failed: bad setting, unsafe or unusable state
  126      the make program could not be executed
  127      the make program was not found

"""

enum Mode { case run, status(json: Bool), killAll, history(lines: Int, json: Bool) }

/// make-seq's own options, recognised only when the first argument is one of the long ones.
let optionSpecs: [OptionSpec] = [
    OptionSpec("--status"), OptionSpec("--json"), OptionSpec("--kill-all"), OptionSpec("--history"), OptionSpec("-n", "--lines", kind: .value),
    OptionSpec("--help"), OptionSpec("--version"),
]

func parse(_ arguments: [String]) throws(GuardFailure) -> (Mode, GuardConfiguration) {
    var configuration = GuardConfiguration()
    configuration.toolName = "make-seq"
    configuration.takesMakeLock = true
    try configuration.applyEnvironment(prefixes: ["MAKE_SEQ_", "SEQEXEC_"])

    // Only a long option of make-seq's own makes the arguments make-seq's: `make-seq -n` is
    // make's dry run.
    if let first = arguments.first, first.hasPrefix("--"), optionSpecs.contains(where: { $0.names.contains(first) }) {
        let scanned: ScannedArguments
        do { scanned = try ArgumentScanner.scan(arguments, options: optionSpecs) } catch {
            throw GuardFailure("\(error.message) (make's own options go after '--'); see 'make-seq --help'")
        }
        scanned.answerHelpAndVersion(tool: "make-seq", version: version, help: help)
        if let word = scanned.positional.first {
            throw GuardFailure("\(first) takes no make arguments, got '\(word)'; to pass them to make, put '--' first")
        }
        let modes = ["--status", "--kill-all", "--history"].filter(scanned.has)
        if modes.count > 1 { throw GuardFailure("\(modes[0]) and \(modes[1]) go alone; give one") }
        let lines = try scanned.options.last { $0.name == "--lines" }.map { option throws(GuardFailure) in
            try Setting.wholeNumber(option.value ?? "", option.typed, minimum: 1)
        }
        if lines != nil && modes != ["--history"] { throw GuardFailure("-n/--lines goes with --history") }
        if scanned.has("--status") { return (.status(json: scanned.has("--json")), configuration) }
        if scanned.has("--history") { return (.history(lines: lines ?? 20, json: scanned.has("--json")), configuration) }
        if scanned.has("--kill-all") && !scanned.has("--json") { return (.killAll, configuration) }
        throw GuardFailure("--json goes with --status or --history; see 'make-seq --help'")
    }
    let rest = arguments.first == "--" ? 1 : 0
    try MakeInvocation.configure(
        &configuration, makeArguments: Array(arguments.dropFirst(rest)),
        rawMakeArguments: Array(Spawn.rawArguments().dropFirst(1 + rest)))
    return (.run, configuration)
}

// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run.
// Standard descriptors a caller closed are /dev/null before anything is opened.
FileDescriptor.makeStandardDescriptorsValid()
BrokenPipe.ignore()
// Too few descriptors to read even the arguments: say so, not "no command given".
if let failure = GuardFailure.checkOpenFileLimit(tool: "make-seq") {
    Reporter(toolName: "make-seq").error(failure.message)
    ProcessExit.now(failure.exitCode)
}

let mode: Mode
let configuration: GuardConfiguration
do {
    (mode, configuration) = try parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    Reporter(toolName: "make-seq").error(error.message)
    ProcessExit.now(error.exitCode)
}

switch mode {
case .run:
    ProcessExit.now(GuardedCommand.run(configuration))
case .status(let json):
    ProcessExit.now(StatusReport.showMakeAndExecutor(configuration, json: json))
case .killAll:
    ProcessExit.now(KillAll.runAndReport(configuration))
case .history(let lines, let json):
    ProcessExit.now(History.show(configuration, limit: lines, json: json))
}
