import SeqGuard
import SeqSystem

// seqexec: parse flags and environment, then hand over to SeqGuard. Nothing else lives here.

let version = "0.1.0"

let help = """
OVERVIEW: Run a command under a per-project lock: one at a time, in arrival order,
leaving no process, lock or queue line behind, however it ends.

USAGE: seqexec [OPTIONS] [--] COMMAND [ARG...]
       seqexec --status [--json]
       seqexec --kill-all
       seqexec --help | --version

OPTIONS:
  -p, --project DIR       Project root (default: the git top-level of the current
                          directory, else the current directory).
      --state-dir DIR     Base of the lock state, used as given
                          (default: /tmp/seqguard-<uid>).
  -t, --timeout S         End the command's whole tree after S seconds and exit
                          124; 0 means no limit (default: 3600).
      --kill-grace S      Seconds from SIGTERM to SIGKILL when ending a tree
                          (default: 5).
  -w, --wait-timeout S    Give up waiting for the lock after S seconds, exit 75.
      --slots N           Let up to N commands of the project run at once
                          (default: 1).
      --priority P        high, normal or low; the queue runs by priority, then
                          arrival (default: normal).
  -v, --verbose           Log each step to stderr, prefixed [SEQUENTIAL].
  -q, --quiet             Print nothing but errors.
  -m, --memory-limit MB   Accepted and checked; enforced once the memory monitor
                          lands.
  -i, --check-interval S  Accepted and checked; used by the memory monitor.
      --git-wait S        Accepted and checked; used by git safety.
      --status            Show the project's holder and queue, then exit.
      --json              With --status: print one JSON object.
      --kill-all          End the holder's whole tree and every waiter of the
                          project (only processes recorded in its state), clear
                          the lock and the queue, exit 0.
  -h, --help              Show this help.
      --version           Show the version.

ENVIRONMENT:
  A flag beats the environment; a SEQEXEC_ name beats the name after it.
  SEQEXEC_PROJECT                   As --project.
  SEQEXEC_STATE_DIR                 As --state-dir.
  SEQEXEC_TIMEOUT, TIMEOUT          As --timeout.
  SEQEXEC_KILL_GRACE                As --kill-grace.
  SEQEXEC_WAIT_TIMEOUT              As --wait-timeout.
  SEQEXEC_SLOTS                     As --slots.
  SEQEXEC_PRIORITY                  As --priority.
  SEQEXEC_VERBOSE, VERBOSE          1 as --verbose.
  SEQEXEC_MEMORY_LIMIT_MB, MEMORY_LIMIT_MB
                                    As --memory-limit.
  SEQEXEC_CHECK_INTERVAL, CHECK_INTERVAL
                                    As --check-interval.
  SEQEXEC_TOKENS                    Set by seqexec for the command it runs, so a
                                    nested seqexec of the same project runs
                                    straight through instead of waiting for itself.

EXIT STATUS:
  N        the command's own exit status
  128+N    the command died of signal N (130 after Ctrl-C)
  124      the command timed out (--timeout)
  75       gave up waiting for the lock (--wait-timeout)
  125      seqexec itself failed: bad usage, or unsafe or unusable state
  126      the command could not be executed
  127      the command was not found

"""

enum Mode { case run, status, killAll }

struct UsageError: Error { var message: String }

/// Reads a number of seconds, >= 0.
func seconds(_ text: String, _ name: String) throws(UsageError) -> Double {
    guard let value = Double(text), value >= 0, value.isFinite else {
        throw UsageError(message: "invalid \(name) '\(text)': expected seconds, e.g. 30 or 2.5")
    }
    return value
}

func wholeNumber(_ text: String, _ name: String, minimum: Int) throws(UsageError) -> Int {
    guard let value = Int(text), value >= minimum else {
        throw UsageError(message: "invalid \(name) '\(text)': expected a whole number of at least \(minimum)")
    }
    return value
}

/// The first of `names` set in the environment, with the name it was found under.
func environment(_ names: String...) -> (name: String, value: String)? {
    for name in names { if let value = Spawn.environmentValue(name) { return (name, value) } }
    return nil
}

func parse(_ arguments: [String]) throws(UsageError) -> (Mode, GuardConfiguration, json: Bool) {
    var configuration = GuardConfiguration()
    var mode = Mode.run
    var json = false
    // Environment first; flags override below.
    if let (_, value) = environment("SEQEXEC_PROJECT"), !value.isEmpty { configuration.projectPath = value }
    if let (_, value) = environment("SEQEXEC_STATE_DIR"), !value.isEmpty { configuration.stateBase = value }
    if let (name, value) = environment("SEQEXEC_TIMEOUT", "TIMEOUT") {
        let limit = try seconds(value, name)
        configuration.timeout = limit == 0 ? nil : limit
    }
    if let (name, value) = environment("SEQEXEC_KILL_GRACE") { configuration.killGrace = try seconds(value, name) }
    if let (name, value) = environment("SEQEXEC_WAIT_TIMEOUT") { configuration.waitTimeout = try seconds(value, name) }
    if let (name, value) = environment("SEQEXEC_SLOTS") { configuration.slots = try wholeNumber(value, name, minimum: 1) }
    if let (name, value) = environment("SEQEXEC_PRIORITY") {
        guard let priority = Priority(rawValue: value) else {
            throw UsageError(message: "invalid \(name) '\(value)': expected high, normal or low")
        }
        configuration.priority = priority
    }
    if let (_, value) = environment("SEQEXEC_VERBOSE", "VERBOSE") {
        configuration.verbose = !["", "0", "false", "no", "off"].contains(value.lowercased())
    }
    if let (name, value) = environment("SEQEXEC_MEMORY_LIMIT_MB", "MEMORY_LIMIT_MB") { _ = try wholeNumber(value, name, minimum: 0) }
    if let (name, value) = environment("SEQEXEC_CHECK_INTERVAL", "CHECK_INTERVAL") { _ = try seconds(value, name) }

    var index = 0
    func value(for option: String, attached: String?) throws(UsageError) -> String {
        if let attached { return attached }
        index += 1
        guard index < arguments.count else { throw UsageError(message: "option \(option) needs a value; see 'seqexec --help'") }
        return arguments[index]
    }
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "--" { index += 1; break }
        guard argument.hasPrefix("-"), argument != "-" else { break }
        var name = argument
        var attached: String?
        if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
            name = String(argument[..<equals])
            attached = String(argument[argument.index(after: equals)...])
        } else if !argument.hasPrefix("--"), argument.count > 2 {
            name = String(argument.prefix(2))
            attached = String(argument.dropFirst(2))
        }
        switch name {
        case "-p", "--project": configuration.projectPath = try value(for: name, attached: attached)
        case "--state-dir": configuration.stateBase = try value(for: name, attached: attached)
        case "-t", "--timeout":
            let limit = try seconds(try value(for: name, attached: attached), name)
            configuration.timeout = limit == 0 ? nil : limit
        case "--kill-grace": configuration.killGrace = try seconds(try value(for: name, attached: attached), name)
        case "-w", "--wait-timeout": configuration.waitTimeout = try seconds(try value(for: name, attached: attached), name)
        case "--slots": configuration.slots = try wholeNumber(try value(for: name, attached: attached), name, minimum: 1)
        case "--priority":
            let text = try value(for: name, attached: attached)
            guard let priority = Priority(rawValue: text) else {
                throw UsageError(message: "invalid --priority '\(text)': expected high, normal or low")
            }
            configuration.priority = priority
        case "-m", "--memory-limit": _ = try wholeNumber(try value(for: name, attached: attached), name, minimum: 0)
        case "-i", "--check-interval": _ = try seconds(try value(for: name, attached: attached), name)
        case "--git-wait": _ = try seconds(try value(for: name, attached: attached), name)
        case "-v", "--verbose", "-q", "--quiet", "--status", "--json", "--kill-all", "-h", "--help", "--version":
            if attached != nil { throw UsageError(message: "option \(name) takes no value; see 'seqexec --help'") }
            switch name {
            case "-v", "--verbose": configuration.verbose = true
            case "-q", "--quiet": configuration.quiet = true
            case "--status": mode = .status
            case "--json": json = true
            case "--kill-all": mode = .killAll
            case "--version":
                print("seqexec \(version)")
                ProcessExit.now(0)
            default:
                print(help, terminator: "")
                ProcessExit.now(0)
            }
        default:
            throw UsageError(message: "unknown option '\(argument)'; see 'seqexec --help'")
        }
        index += 1
    }
    configuration.arguments = Array(arguments[index...])
    if mode == .run && configuration.arguments.isEmpty {
        throw UsageError(message: "no command given; usage: seqexec [OPTIONS] [--] COMMAND [ARG...]")
    }
    if mode != .run && !configuration.arguments.isEmpty {
        throw UsageError(message: "--status and --kill-all take no command; got '\(configuration.arguments[0])'")
    }
    if json && mode != .status { throw UsageError(message: "--json goes with --status") }
    return (mode, configuration, json)
}

let mode: Mode
let configuration: GuardConfiguration
let json: Bool
do {
    (mode, configuration, json) = try parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    Reporter(toolName: "seqexec").error(error.message)
    ProcessExit.now(ExitCode.toolFailure)
}

switch mode {
case .run:
    ProcessExit.now(GuardedCommand.run(configuration))
case .status:
    do {
        let report = try StatusReport.read(configuration)
        print(json ? report.json : report.text, terminator: "")
        ProcessExit.now(0)
    } catch {
        configuration.reporter.error(error.message)
        ProcessExit.now(error.exitCode)
    }
case .killAll:
    do {
        let ended = try KillAll.run(configuration)
        if ended.isEmpty { print("seqexec: nothing to end") }
        for item in ended { print("seqexec: ended \(item.role) pid \(item.process.pid) '\(item.command)'") }
        ProcessExit.now(0)
    } catch {
        configuration.reporter.error(error.message)
        ProcessExit.now(error.exitCode)
    }
}
