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
       make-seq --help | --version

OPTIONS:
  Every argument goes to make untouched; only these, given alone, are make-seq's.
      --status            Show who holds the project's make lock and executor
                          lock, and who waits for each.
      --json              With --status: one JSON object.
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
                                    SEQEXEC_ one, which beats the original
                                    name: TIMEOUT, VERBOSE, MEMORY_LIMIT_MB,
                                    CHECK_INTERVAL.
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

enum Mode { case run, status(json: Bool), killAll }

/// The directory make will run in: `-C DIR` options applied in order to the current
/// directory, as GNU make applies them. Reads make's options without changing them.
func makeDirectory(_ arguments: [String]) -> String? {
    // Short options whose value may be the next argument, and long ones that take one.
    let shortWithValue: Set<Character> = ["C", "f", "I", "o", "W"]
    let shortOptionalValue: Set<Character> = ["j", "l", "O"]
    let longWithValue = ["--file", "--makefile", "--include-dir", "--old-file", "--assume-old", "--what-if", "--new-file", "--assume-new", "--eval"]
    var directories: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        index += 1
        if argument == "--" { break }
        if argument.hasPrefix("--") {
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            let value: String?
            if argument.contains("=") {
                value = String(argument[argument.index(after: argument.firstIndex(of: "=")!)...])
            } else if name.count >= 4 && "--directory".hasPrefix(name) || longWithValue.contains(name) {
                value = index < arguments.count ? arguments[index] : nil
                index += 1
            } else {
                value = nil
            }
            if name.count >= 4 && "--directory".hasPrefix(name), let value { directories.append(value) }
            continue
        }
        guard argument.hasPrefix("-"), argument.count > 1 else { continue }
        var characters = argument.dropFirst()
        while let option = characters.first {
            characters = characters.dropFirst()
            if shortOptionalValue.contains(option) { break }
            guard shortWithValue.contains(option) else { continue }
            var value: String? = characters.isEmpty ? nil : String(characters)
            if value == nil {
                value = index < arguments.count ? arguments[index] : nil
                index += 1
            }
            if option == "C", let value { directories.append(value) }
            break
        }
    }
    guard !directories.isEmpty else { return nil }
    var path = (try? FileSystem.currentDirectory()) ?? "."
    for directory in directories {
        path = directory.hasPrefix("/") ? directory : path + "/" + directory
    }
    return path
}

func parse(_ arguments: [String]) throws(GuardFailure) -> (Mode, GuardConfiguration) {
    var configuration = GuardConfiguration()
    configuration.toolName = "make-seq"
    configuration.takesMakeLock = true
    try configuration.applyEnvironment(prefixes: ["MAKE_SEQ_", "SEQEXEC_"])

    switch arguments {
    case ["--help"]:
        print(help, terminator: "")
        ProcessExit.now(0)
    case ["--version"]:
        print("make-seq \(version)")
        ProcessExit.now(0)
    case ["--status"]: return (.status(json: false), configuration)
    case ["--status", "--json"], ["--json", "--status"]: return (.status(json: true), configuration)
    case ["--kill-all"]: return (.killAll, configuration)
    default: break
    }
    let makeArguments = arguments.first == "--" ? Array(arguments.dropFirst()) : arguments
    let make = Spawn.environmentValue("MAKE_SEQ_MAKE").flatMap { $0.isEmpty ? nil : $0 } ?? "make"
    if make.split(separator: "/").last == "make-seq" {
        throw GuardFailure("MAKE_SEQ_MAKE='\(make)' names make-seq itself; set it to a make program such as make or gmake")
    }
    configuration.arguments = [make] + makeArguments
    // make's arguments as their own bytes (a VAR=value need not be UTF-8).
    let raw = Array(Spawn.rawArguments().dropFirst())
    configuration.rawArguments = [Array(make.utf8)] + (arguments.first == "--" ? Array(raw.dropFirst()) : raw)
    if let directory = makeDirectory(makeArguments), FileSystem.exists(directory) {
        configuration.searchDirectory = directory
    }

    // seq.mk hands a plain `make` to make-seq from inside that make (MAKELEVEL one up):
    // the make run here stands in for it, at its level, so its output reads as plain make's.
    var level = Spawn.environmentValue("MAKELEVEL").flatMap { Int($0) } ?? 0
    if Spawn.environmentValue("MAKE_SEQ_FROM_SEQ_MK") != nil {
        level = max(0, level - 1)
        configuration.environmentChanges.append(("MAKELEVEL", String(level)))
        configuration.environmentChanges.append(("MAKE_SEQ_FROM_SEQ_MK", nil))
        // The make that handed over printed "Entering directory" for -C already; its `w`
        // flag would have this one print it again.
        if let flags = Spawn.environmentValue("MAKEFLAGS") {
            var words = flags.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            if let first = words.first, !first.hasPrefix("-"), !first.contains("=") {
                words[0] = first.filter { $0 != "w" }
                if words[0].isEmpty { words.removeFirst() }
                configuration.environmentChanges.append(("MAKEFLAGS", words.joined(separator: " ")))
            }
        }
    }
    configuration.environmentChanges.append(("MAKE_SEQ_LEVEL", String(level)))
    return (.run, configuration)
}

// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run.
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
    do {
        var reports: [(String, StatusReport)] = []
        for (project, namespace) in try configuration.lockPlan() {
            let directory = try StateDirectory.open(project: project, base: configuration.stateBase, namespace: namespace)
            defer { directory.close() }
            reports.append((namespace == .make ? "make_lock" : "executor_lock", try StatusReport.read(project: project, directory: directory)))
        }
        if json {
            print("{" + reports.map { "\"\($0.0)\":" + $0.1.json.dropLast() }.joined(separator: ",") + "}")
        } else {
            print(reports.map { "\($0.0 == "make_lock" ? "make lock" : "executor lock"):\n" + $0.1.text }.joined(separator: "\n"), terminator: "")
        }
        ProcessExit.now(0)
    } catch {
        configuration.reporter.error(error.message)
        ProcessExit.now(error.exitCode)
    }
case .killAll:
    ProcessExit.now(KillAll.runAndReport(configuration))
}
