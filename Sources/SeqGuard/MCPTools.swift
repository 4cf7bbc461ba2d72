import SeqSystem

/// The MCP server's tools: `run`, `wait`, `status`, `runs`, `cancel`, `history`. Each is the
/// command line's own (`--submit` then `--wait`, `--status`, `--runs`, `--cancel`,
/// `--history`) with its result as text and, from revision 2025-06-18, as structured content.
/// A failure is a tool error (`isError`) carrying the CLI's one-line message and exit status.
enum MCPTools {
    static let names = ["run", "wait", "status", "runs", "cancel", "history"]

    static func definitions(for base: GuardConfiguration) -> [JSON.Value] {
        let make = base.takesMakeLock
        let project: (String, JSON.Value) = ("project", schema("string", "The project directory (default: the server's working directory); the lock is its checkout's."))
        let waitSeconds: (String, JSON.Value) = ("wait_seconds", schema("number", "How long this call waits for the run to end before it answers with the run's id and where it is (default \(Int(MCPServer.defaultWaitSeconds)); keep it under your tool-call time limit)."))
        let id: (String, JSON.Value) = ("id", schema("string", "The run's id, as run answered it."))
        func tool(_ name: String, _ description: String, _ properties: [(String, JSON.Value)], required: [String] = [], readOnly: Bool) -> JSON.Value {
            .object([
                ("name", .string(name)), ("description", .string(description)),
                ("inputSchema", .object([("type", .string("object")), ("properties", .object(properties)),
                                         ("required", .array(required.map { .string($0) })), ("additionalProperties", .bool(false))])),
                ("annotations", .object([("readOnlyHint", .bool(readOnly))])),
            ])
        }
        let command: JSON.Value = make
            ? .object([("type", .string("array")), ("items", .object([("type", .string("string"))])),
                       ("description", .string("make's arguments: targets, variables, flags, e.g. [\"test\"].")),])
            : .object([("type", .array([.string("array"), .string("string")])), ("items", .object([("type", .string("string"))])),
                       ("description", .string("The command as words, e.g. [\"make\", \"test\"]; or one shell line, with shell: true.")),])
        var runProperties: [(String, JSON.Value)] = [("command", command)]
        if !make { runProperties.append(("shell", schema("boolean", "Run command, a string, through /bin/sh -c."))) }
        runProperties += [
            project,
            ("timeout_seconds", schema("number", "End the command's whole process tree after this many seconds (exit 124; default \(Int(base.timeout ?? 0)))")),
            ("memory_limit_mb", schema("integer", "End the tree past this many MiB (exit 137; default \(base.memoryLimitMegabytes))")),
            waitSeconds,
        ]
        let what = make ? "make with these arguments" : "a command"
        return [
            tool("run", "Queue \(what) in the project's line (one at a time, in arrival order, shared with people's shells) and wait up to wait_seconds for it: its exit status and the end of its output, or, if it is still queued or running then, its id and place (then call wait).", runProperties, required: ["command"], readOnly: false),
            tool("wait", "Wait up to wait_seconds more for a run: its exit status and the end of its output, or where it is now.", [id, project, waitSeconds], required: ["id"], readOnly: true),
            tool("status", "Who holds the project's lock, and who waits, in order, and why.", [project], readOnly: true),
            tool("runs", "The project's submitted runs (by people's --submit and by run), oldest first, with where each is.", [project], readOnly: true),
            tool("cancel", "End a run: a queued one leaves the line; a running one's process tree is ended (SIGTERM, then SIGKILL).", [id, project], required: ["id"], readOnly: false),
            tool("history", "The project's last runs, newest last: command, exit status, how it ended, wait and run time, memory peak.",
                 [project, ("last", schema("integer", "How many (default 10)."))], readOnly: true),
        ]
    }

    static func schema(_ type: String, _ description: String) -> JSON.Value {
        .object([("type", .string(type)), ("description", .string(description))])
    }

    @available(*, noasync)
    static func call(_ name: String, arguments: JSON.Value, call: inout MCPCall) -> JSON.Value {
        do throws(GuardFailure) {
            guard case .object(let fields) = arguments else { throw GuardFailure(exitCode: ExitCode.toolFailure, "the arguments must be an object") }
            let allowed = Set(((definitions(for: call.base).first { $0["name"]?.string == name }?["inputSchema"]?["properties"]).flatMap { value -> [String]? in
                if case .object(let properties) = value { return properties.map(\.0) } else { return nil }
            }) ?? [])
            if let unknown = fields.first(where: { !allowed.contains($0.0) }) {
                throw GuardFailure(exitCode: ExitCode.toolFailure, "\(name) takes no argument '\(unknown.0)'; it takes \(allowed.sorted().joined(separator: ", "))")
            }
            let arguments = Arguments(values: arguments, tool: name)
            var configuration = call.base
            if let project = try arguments.string("project") { configuration.projectPath = project }
            switch name {
            case "run": return try run(arguments, configuration, call: &call)
            case "wait": return try follow(try arguments.required("id"), configuration, seconds: try arguments.waitSeconds(), call: &call)
            case "status": return try status(configuration, call: call)
            case "runs": return try runs(configuration, call: call)
            case "cancel": return result(try Submission.cancelRun(configuration, id: try arguments.required("id")), nil, call: call)
            default: return try history(configuration, last: try arguments.integer("last", minimum: 1, maximum: 1000) ?? 10, call: call)
            }
        } catch {
            return result("\(call.base.toolName): \(error.message)", .object([("error", .string(error.message)), ("exit_status", .integer(Int64(error.exitCode)))]),
                          isError: true, call: call)
        }
    }

    /// A tool's result: the text, and the same as structured content where the revision has it.
    static func result(_ text: String, _ structured: JSON.Value?, isError: Bool = false, call: MCPCall) -> JSON.Value {
        var fields: [(String, JSON.Value)] = [("content", .array([.object([("type", .string("text")), ("text", .string(text))])]))]
        if call.structured, let structured { fields.append(("structuredContent", structured)) }
        fields.append(("isError", .bool(isError)))
        return .object(fields)
    }

    /// `run`: the command as `--submit` queues it, then followed as `wait` does.
    @available(*, noasync)
    static func run(_ arguments: Arguments, _ base: GuardConfiguration, call: inout MCPCall) throws(GuardFailure) -> JSON.Value {
        var configuration = base
        let words: [String]
        let shell = try arguments.bool("shell") ?? false
        switch arguments.values["command"] {
        case .array(let items)?:
            words = try items.map { item throws(GuardFailure) in
                guard let word = item.string else { throw GuardFailure(exitCode: ExitCode.toolFailure, "run's command must hold words (strings), such as [\"make\", \"test\"]") }
                return word
            }
            if shell { throw GuardFailure(exitCode: ExitCode.toolFailure, "run's shell: true takes command as one string, such as \"make test | tail\"") }
        case .string(let line)? where shell:
            words = ["/bin/sh", "-c", line]
        case .string?:
            throw GuardFailure(exitCode: ExitCode.toolFailure, "run's command is a string: give it as words ([\"make\", \"test\"]), or add shell: true to run it through /bin/sh -c")
        default:
            throw GuardFailure(exitCode: ExitCode.toolFailure, "run needs command: words such as [\"make\", \"test\"]")
        }
        if configuration.takesMakeLock {
            try MakeInvocation.configure(&configuration, makeArguments: words, rawMakeArguments: words.map { Array($0.utf8) })
        } else {
            guard !words.isEmpty, !words[0].isEmpty else { throw GuardFailure(exitCode: ExitCode.toolFailure, "run's command is empty; give the words to run, such as [\"make\", \"test\"]") }
            configuration.arguments = words
            configuration.rawArguments = nil
        }
        if let timeout = try arguments.number("timeout_seconds", "a number of seconds above 0", above: 0) { configuration.timeout = timeout }
        if let memory = try arguments.integer("memory_limit_mb", minimum: 0, maximum: Int(Int32.max)) {
            configuration.memoryLimitMegabytes = memory
            configuration.memoryLimitGiven = true
        }
        let seconds = try arguments.waitSeconds()
        let id = try Submission.start(configuration)
        return try follow(id, configuration, seconds: seconds, call: &call)
    }

    /// Waits up to `seconds` for run `id` to end, saying where it is as progress; its end
    /// (status, output's tail), or its id and place.
    @available(*, noasync)
    static func follow(_ id: String, _ configuration: GuardConfiguration, seconds: Double, call: inout MCPCall) throws(GuardFailure) -> JSON.Value {
        let (_, state) = try configuration.openState()
        defer { state.close() }
        let store = try RunStore(state: state)
        defer { store.close() }
        let run = try store.existing(id, listing: "the runs tool")
        let relay = Processes.openPidfd(run.relay)
        defer { relay?.close() }
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        let started = Clock.monotonicNanoseconds()
        while true {
            // The relay ends once the run's output is whole and its status written.
            let over = relay == nil || Poll.readable([relay!], timeoutMilliseconds: 0).contains(0)
            let now = Submission.state(of: run, store: store, lockDirectory: state)
            switch now {
            case .ended, .lost:
                if over || now == .lost { return ended(run, now, store: store, call: call) }
            default:
                break
            }
            call.report(now.description)
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 || call.inputEnded {
                let waited = formatDuration(Double(Clock.monotonicNanoseconds() - started) / 1e9)
                return result("run \(id) is still \(now.description) after \(waited); call wait with id \(id) for its end",
                              Submission.json(run, now, store: store), call: call)
            }
            call.pause(milliseconds: Int32(clamping: min(200, left / 1_000_000 + 1)))
            if call.cancelled { return .null }
        }
    }

    /// A run's end: its status and how it ended, then the last of its output.
    static func ended(_ run: SubmittedRun, _ now: Submission.State, store: RunStore, call: MCPCall) -> JSON.Value {
        let output = tail(of: store.logPath(run.id))
        var structured = Submission.json(run, now, store: store)
        if case .object(var fields) = structured {
            fields.append(("output_tail", .string(output)))
            structured = .object(fields)
        }
        let header = "run \(run.id) '\(run.command)' \(now.description)"
        let text = output.isEmpty ? header + "; it wrote nothing" : header + "; the last of its output:\n" + output
        return result(text, structured, isError: now == .lost, call: call)
    }

    /// The last `MCPServer.tailBytes` of a log, from a line's start.
    static func tail(of path: String) -> String {
        guard let file = try? FileSystem.open(path, [.readOnly]) else { return "" }
        defer { file.close() }
        let bytes = (try? file.readAll()) ?? []
        guard bytes.count > MCPServer.tailBytes else { return String(decoding: bytes, as: UTF8.self) }
        var start = bytes.count - MCPServer.tailBytes
        if let newline = bytes[start...].firstIndex(of: 10) { start = newline + 1 }
        return "[… \(start) bytes before]\n" + String(decoding: bytes[start...], as: UTF8.self)
    }

    static func status(_ configuration: GuardConfiguration, call: MCPCall) throws(GuardFailure) -> JSON.Value {
        let report = try StatusReport.read(configuration)
        return result(report.text, JSON.decode(report.json), call: call)
    }

    static func runs(_ configuration: GuardConfiguration, call: MCPCall) throws(GuardFailure) -> JSON.Value {
        let (_, lanes) = try configuration.openState()
        defer { lanes.close() }
        let store = try RunStore(state: lanes)
        defer { store.close() }
        let runs = try store.runs()
        let states = runs.map { Submission.state(of: $0, store: store, lockDirectory: lanes) }
        let text = runs.isEmpty ? "no submitted runs" : zip(runs, states).map { "\($0.id)  \($1.description)  \($0.command)" }.joined(separator: "\n")
        return result(text, .object([("runs", .array(zip(runs, states).map { Submission.json($0, $1, store: store) }))]), call: call)
    }

    static func history(_ configuration: GuardConfiguration, last: Int, call: MCPCall) throws(GuardFailure) -> JSON.Value {
        let (_, directory) = try configuration.openState()
        defer { directory.close() }
        let (records, _) = History(directory: directory).read(limit: last)
        let text = records.isEmpty ? "no runs recorded" : History.table(records)
        return result(text, .object([("runs", .array(records.map(\.json)))]), call: call)
    }
}

/// A call's arguments, each read with its type checked; a wrong one is a usage error naming it.
struct Arguments {
    let values: JSON.Value
    let tool: String

    func bad(_ key: String, _ expected: String) -> GuardFailure {
        GuardFailure(exitCode: ExitCode.toolFailure, "invalid \(key) for \(tool): expected \(expected), got \(values[key].map(JSON.encode) ?? "nothing")")
    }

    func string(_ key: String) throws(GuardFailure) -> String? {
        guard let value = values[key], value.isPresent else { return nil }
        guard let text = value.string, !text.isEmpty else { throw bad(key, "a non-empty string") }
        return text
    }

    func required(_ key: String) throws(GuardFailure) -> String {
        guard let text = try string(key) else { throw GuardFailure(exitCode: ExitCode.toolFailure, "\(tool) needs \(key)") }
        return text
    }

    func bool(_ key: String) throws(GuardFailure) -> Bool? {
        guard let value = values[key], value.isPresent else { return nil }
        guard case .bool(let flag) = value else { throw bad(key, "true or false") }
        return flag
    }

    func number(_ key: String, _ expected: String, above minimum: Double) throws(GuardFailure) -> Double? {
        guard let value = values[key], value.isPresent else { return nil }
        let number: Double
        switch value {
        case .integer(let whole): number = Double(whole)
        case .number(let real): number = real
        default: throw bad(key, expected)
        }
        guard number.isFinite, number > minimum else { throw bad(key, expected) }
        return number
    }

    func integer(_ key: String, minimum: Int, maximum: Int) throws(GuardFailure) -> Int? {
        guard let value = values[key], value.isPresent else { return nil }
        guard let whole = value.integer, whole >= minimum, whole <= maximum, value.isWhole else {
            throw bad(key, "a whole number from \(minimum) to \(maximum)")
        }
        return Int(whole)
    }

    func waitSeconds() throws(GuardFailure) -> Double {
        guard let value = values["wait_seconds"], value.isPresent else { return MCPServer.defaultWaitSeconds }
        let expected = "a number of seconds from 0 to \(Int(MCPServer.maximumWaitSeconds))"
        guard let seconds = try number("wait_seconds", expected, above: -1), seconds >= 0, seconds <= MCPServer.maximumWaitSeconds else {
            throw bad("wait_seconds", expected)
        }
        return seconds
    }
}

extension JSON.Value {
    /// Given and not null.
    var isPresent: Bool { if case .null = self { return false } else { return true } }

    /// An integer, or a number with nothing after the point.
    var isWhole: Bool {
        switch self {
        case .integer: return true
        case .number(let real): return real.rounded() == real
        default: return false
        }
    }
}
