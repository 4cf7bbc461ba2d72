import SeqGuard
import SeqSystem

// seqexec: parse flags and environment, then hand over to SeqGuard. Nothing else lives here.

let version = "0.1.0"

let help = """
OVERVIEW: Run a command under a per-project lock: one at a time, in arrival order,
under a memory limit over its whole process tree, after other git operations of the
repository have finished, leaving no process, lock or queue line behind.

USAGE: seqexec [OPTIONS] [--] COMMAND [ARG...]
       seqexec --status [--json]
       seqexec --history [-n N] [--json]
       seqexec --kill-all
       seqexec --submit [OPTIONS] [--] COMMAND [ARG...]
       seqexec --wait ID [-w S] [--tail]
       seqexec --runs [--json]
       seqexec --cancel ID
       seqexec --help | --version

OPTIONS:
  A duration S is seconds (30, 2.5) or takes units: 500ms, 90s, 10m, 1h30m.
  -p, --project DIR       Project root (default: the git top-level of the current
                          directory, else the current directory). A project is
                          its directory's device and inode, not its path: a
                          symlink, bind mount or rename meets the same lock.
      --state-dir DIR     Base of the lock state, yours and private like the
                          default (default: /tmp/seqguard-<uid>).
  -t, --timeout S         End the command's whole tree after S seconds and exit
                          124; 0 means no limit (default: 3600).
      --kill-grace S      Seconds from SIGTERM to SIGKILL when ending a tree
                          (default: 5).
  -w, --wait-timeout S    Give up waiting for the lock after S seconds, exit 75;
                          with --wait: stop following the run after S seconds,
                          exit 75 (the run goes on).
      --slots N           Let up to N commands of the project run at once
                          (default: 1); the strictest running command's N
                          wins: beside one that asked to be alone, none.
      --priority P        high, normal or low; the queue runs by priority, then
                          arrival (default: normal).
  -v, --verbose           Log each step to stderr, prefixed [SEQUENTIAL].
  -q, --quiet             Print nothing but errors.
      --machine           Take the user's machine-wide lock instead of the
                          project's, for commands too heavy to run two at once
                          anywhere on the machine.
  -m, --memory-limit MB   End the command's whole tree and exit 137 when it
                          uses MB MiB together; 0 turns the monitor off
                          (default: 2048). A warning comes at half of it.
  -i, --check-interval S  Longest gap between memory samples; they come faster
                          at start-up and near the limit (default: 5).
      --memory-metric M   rss (default), or pss for trees of forked workers
                          that share pages, which rss counts once per process.
      --memory-action A   tree (default): end the whole tree; largest: end
                          only its largest process and let the rest run on.
      --min-available MB  Stay queued, first in line, while the system's
                          MemAvailable is below MB MiB.
      --git-wait S        Before a git command, wait up to S seconds while
                          another git operation of its repository is active
                          (default: 10); then exit 75 if a lock is still held.
      --git-guard         Apply git safety to a command that is not git itself
                          (a script that runs git).
      --no-git-wait       No git safety.
      --clean-stale-git-locks
                          Remove git lock files no live git process holds (a
                          crash or kill -9 left them), then go on; without it
                          such a lock is reported and seqexec exits 125.
      --status            Show the project's holder and queue, then exit.
      --history           Show the last runs: waits, run times, peak memory,
                          how each ended.
  -n, --lines N           With --history: how many runs (default: 20).
      --json              With --status: one JSON object; with --history: a
                          JSON array of runs.
      --kill-all          End the holder's whole tree and every waiter of the
                          project, make-seq's too (only processes recorded in its
                          state), clear the locks and the queues, exit 0. From
                          its start no queued command starts.
      --submit            Queue the command as a run that outlives this call:
                          print its id once it has its place, exit 0. Its
                          supervisor leaves this session and terminal; output
                          goes to <state>/runs/ID.log. 127 or 126 at once if
                          the command cannot be run.
      --wait ID           Follow run ID's output from its start, then exit
                          with the run's own status. Kill it and wait again
                          at will: the run is not touched.
      --tail              With --wait: only the output from now on.
      --runs              List the submitted runs: queued (position), running
                          (pid, since), ended (status), and their logs.
      --cancel ID         A queued run leaves the queue; a running one's tree
                          is ended (SIGTERM, then SIGKILL after --kill-grace).
  -h, --help              Show this help.
      --version           Show the version.

ENVIRONMENT:
  A flag beats the environment. Only SEQEXEC_ names are read; the original
  tooling's bare names (TIMEOUT, VERBOSE, MEMORY_LIMIT_MB, CHECK_INTERVAL) only
  under the migration shims in scripts/ (SEQEXEC_LEGACY_NAMES=1).
  SEQEXEC_PROJECT                   As --project.
  SEQEXEC_STATE_DIR                 As --state-dir.
  SEQEXEC_TIMEOUT                   As --timeout.
  SEQEXEC_KILL_GRACE                As --kill-grace.
  SEQEXEC_WAIT_TIMEOUT              As --wait-timeout.
  SEQEXEC_SLOTS                     As --slots.
  SEQEXEC_PRIORITY                  As --priority.
  SEQEXEC_VERBOSE                   1 as --verbose.
  SEQEXEC_QUIET                     1 as --quiet.
  SEQEXEC_MEMORY_LIMIT_MB           As --memory-limit.
  SEQEXEC_CHECK_INTERVAL            As --check-interval.
  SEQEXEC_MEMORY_METRIC             As --memory-metric.
  SEQEXEC_MEMORY_ACTION             As --memory-action.
  SEQEXEC_MIN_AVAILABLE_MB          As --min-available.
  SEQEXEC_MACHINE                   1 as --machine.
  SEQEXEC_GIT_WAIT                  As --git-wait.
  SEQEXEC_HISTORY_MAX_KB            Rotate history.jsonl past this size
                                    (default: 1024).
  SEQEXEC_TOKENS                    Set by seqexec for the command it runs, so a
                                    nested seqexec of the same project runs
                                    straight through instead of waiting for itself.

EXIT STATUS:
  N        the command's own exit status
  128+N    the command died of signal N (130 after Ctrl-C)
  124      the command timed out (--timeout)
  137      the memory monitor ended the command (--memory-limit); a stderr
           line says so, or says it was the kernel's OOM killer or a kill -9
  75       gave up waiting for the lock (--wait-timeout), for memory
           (--min-available), or for another git operation (--git-wait)
  125      seqexec itself failed: bad usage, unsafe or unusable state, a
           stale git lock file, or its supervisor was killed (a line names
           the command, which runs on unsupervised, holding the lock)
  126      the command could not be executed
  127      the command was not found

"""

enum Mode: Equatable { case run, status, killAll, history, submit, wait(String), runs, cancel(String) }

/// seqexec's options; the first word that is not one starts the command.
let optionSpecs: [OptionSpec] = [
    OptionSpec("-p", "--project", kind: .value), OptionSpec("--state-dir", kind: .value),
    OptionSpec("-t", "--timeout", kind: .value), OptionSpec("--kill-grace", kind: .value),
    OptionSpec("-w", "--wait-timeout", kind: .value), OptionSpec("--slots", kind: .value),
    OptionSpec("--priority", kind: .value), OptionSpec("-m", "--memory-limit", kind: .value),
    OptionSpec("-i", "--check-interval", kind: .value), OptionSpec("--memory-metric", kind: .value),
    OptionSpec("--memory-action", kind: .value), OptionSpec("--min-available", kind: .value),
    OptionSpec("--git-wait", kind: .value), OptionSpec("-n", "--lines", kind: .value),
    OptionSpec("-v", "--verbose"), OptionSpec("-q", "--quiet"), OptionSpec("--status"), OptionSpec("--json"),
    OptionSpec("--kill-all"), OptionSpec("--history"), OptionSpec("-h", "--help"), OptionSpec("--version"),
    OptionSpec("--machine"), OptionSpec("--git-guard"), OptionSpec("--no-git-wait"), OptionSpec("--clean-stale-git-locks"),
    OptionSpec("--submit"), OptionSpec("--wait", kind: .value), OptionSpec("--tail"), OptionSpec("--runs"), OptionSpec("--cancel", kind: .value),
]

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
    do { scanned = try ArgumentScanner.scan(arguments, options: optionSpecs, stopAtFirstPositional: true) } catch {
        throw GuardFailure("\(error.message); see 'seqexec --help'")
    }
    scanned.answerHelpAndVersion(tool: "seqexec", version: version, help: help)
    for option in scanned.options {
        // Messages about a value name the option as it was typed: "invalid -t 'x'".
        let name = option.typed
        let value = option.value ?? ""
        switch option.name {
        case "--project": configuration.projectPath = value
        case "--state-dir": configuration.stateBase = value
        case "--timeout":
            let limit = try Setting.seconds(value, name)
            configuration.timeout = limit == 0 ? nil : limit
        case "--kill-grace": configuration.killGrace = try Setting.seconds(value, name)
        case "--wait-timeout":
            configuration.waitTimeout = try Setting.seconds(value, name)
            waitTimeoutGiven = true
        case "--slots": configuration.slots = try Setting.wholeNumber(value, name, minimum: 1)
        case "--priority": configuration.priority = try Setting.priority(value, name)
        case "--memory-limit": configuration.memoryLimitMegabytes = try Setting.wholeNumber(value, name, minimum: 0)
        case "--check-interval": configuration.checkInterval = try Setting.interval(value, name)
        case "--memory-metric": configuration.memoryMetric = try Setting.memoryMetric(value, name)
        case "--memory-action": configuration.memoryAction = try Setting.memoryAction(value, name)
        case "--min-available": configuration.minimumAvailableMegabytes = try Setting.wholeNumber(value, name, minimum: 0)
        case "--git-wait":
            configuration.gitWait = try Setting.seconds(value, name)
            if configuration.gitMode == .off { configuration.gitMode = .auto }
        case "--lines":
            lines = try Setting.wholeNumber(value, name, minimum: 1)
            linesGiven = true
        case "--verbose": configuration.verbose = true
        case "--quiet": configuration.quiet = true
        case "--status": mode = .status
        case "--json": json = true
        case "--kill-all": mode = .killAll
        case "--history": mode = .history
        case "--machine": configuration.machineWide = true
        case "--git-guard": configuration.gitMode = .always
        case "--no-git-wait": configuration.gitMode = .off
        case "--clean-stale-git-locks": configuration.cleanStaleGitLocks = true
        case "--submit": mode = .submit
        case "--wait": mode = .wait(value)
        case "--tail": tail = true
        case "--runs": mode = .runs
        case "--cancel": mode = .cancel(value)
        default: break  // --help and --version, answered above
        }
    }
    // One thing at a time: two of these cannot be meant together.
    let modes = scanned.options.map(\.typed).filter { ["--status", "--history", "--kill-all", "--submit", "--wait", "--runs", "--cancel"].contains($0) }
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
        throw GuardFailure("--status, --history, --runs, --wait, --cancel and --kill-all take no command; got '\(configuration.arguments[0])'")
    }
    if json && ![.status, .history, .runs].contains(mode) { throw GuardFailure("--json goes with --status, --history or --runs") }
    if linesGiven && mode != .history { throw GuardFailure("-n/--lines goes with --history") }
    if tail, case .wait = mode {} else if tail { throw GuardFailure("--tail goes with --wait") }
    // -w limits --wait's following only when given here: SEQEXEC_WAIT_TIMEOUT is the queue's.
    return (mode, configuration, json, lines, tail, waitTimeoutGiven ? configuration.waitTimeout : nil)
}

// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run.
// Standard descriptors a caller closed are /dev/null before anything is opened.
FileDescriptor.makeStandardDescriptorsValid()
BrokenPipe.ignore()
// Too few descriptors to read even the arguments: say so, not "no command given".
if let failure = GuardFailure.checkOpenFileLimit(tool: "seqexec") {
    Reporter(toolName: "seqexec").error(failure.message)
    ProcessExit.now(failure.exitCode)
}

let mode: Mode
let configuration: GuardConfiguration
let json: Bool
let lines: Int
let tail: Bool
let waitLimit: Double?
do {
    (mode, configuration, json, lines, tail, waitLimit) = try parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    Reporter(toolName: "seqexec").error(error.message)
    ProcessExit.now(ExitCode.toolFailure)
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
}
