import SeqSystem

/// `seqexec --mcp` (and `make-seq --mcp`): the guard as a Model Context Protocol server over
/// stdio, for coding agents whose harness calls tools. JSON-RPC 2.0, one message per line on
/// stdin and stdout; logs, if any, on stderr. Its tools share everything with the command
/// line: a `run` is a submitted run (`--submit`), so it waits in the same line as a person's
/// `seqexec make test`, under the same limits, and lands in the same history.
///
/// A call never blocks past its own bound (`wait_seconds`, default 20 s, below the time
/// limits harnesses put on a tool call): a run still queued or running by then is answered
/// with its id and where it is, and `wait` picks it up again. While it waits, a call sends
/// progress notifications (the queue position, then running) when the client asked for them
/// with a progress token, and gives up at once on the client's `notifications/cancelled`.
public struct MCPServer {
    /// The protocol revisions this server speaks, newest first: a client asking for one of
    /// them gets it; any other gets the newest.
    public static let protocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
    /// How long a call waits for a run when it does not say.
    public static let defaultWaitSeconds = 20.0
    /// The longest a call may ask to wait.
    public static let maximumWaitSeconds = 3600.0
    /// How much of a run's output a result carries: its last bytes.
    public static let tailBytes = 8192

    let base: GuardConfiguration
    var input = LineReader(descriptor: .standardInput)
    /// Messages that came while a call waited: answered after it, in order.
    var pending: [JSON.Value] = []
    var version = protocolVersions[0]
    /// Structured results (`structuredContent`) exist from revision 2025-06-18 on.
    var structured: Bool { version >= "2025-06-18" }

    /// Serves until stdin ends; returns the exit status (0 at the end of input).
    @available(*, noasync)
    public static func serve(_ configuration: GuardConfiguration) -> Int32 {
        var server = MCPServer(base: configuration)
        return server.serve()
    }

    @available(*, noasync)
    mutating func serve() -> Int32 {
        while true {
            let message: JSON.Value
            if !pending.isEmpty {
                message = pending.removeFirst()
            } else {
                guard let line = input.nextLine(timeoutMilliseconds: -1) else { return 0 }
                guard let parsed = Self.parse(line) else { continue }
                message = parsed
            }
            guard handle(message) else { return 0 }
            Self.reapEndedRelays()
        }
    }

    /// Reaps the relays of runs this server submitted that have ended: each is a child of
    /// this process (it forked it), and a server lives for the whole session.
    static func reapEndedRelays() {
        while (try? Spawn.reapAny()) != nil {}
    }

    /// One line as a message; a line that is not JSON is answered with a parse error.
    static func parse(_ line: String) -> JSON.Value? {
        if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { return nil }
        guard let value = JSON.decode(line) else {
            send(.object([("jsonrpc", .string("2.0")), ("id", .null), ("error", error(-32700, "parse error: not a JSON text"))]))
            return nil
        }
        return value
    }

    /// Answers one message; false once stdout is gone.
    @available(*, noasync)
    mutating func handle(_ message: JSON.Value) -> Bool {
        guard case .object = message, let method = message["method"]?.string else {
            if let id = message["id"], message["result"] == nil && message["error"] == nil {
                return Self.send(.object([("jsonrpc", .string("2.0")), ("id", id), ("error", Self.error(-32600, "invalid request: no method"))]))
            }
            return true  // a response to nothing this server asked, or a batch: not taken
        }
        // A notification (no id) is never answered.
        guard let id = message["id"] else { return true }
        let params = message["params"] ?? .object([])
        let reply: Result<JSON.Value, MCPError>
        switch method {
        case "initialize":
            let asked = params["protocolVersion"]?.string ?? ""
            version = Self.protocolVersions.contains(asked) ? asked : Self.protocolVersions[0]
            reply = .success(.object([
                ("protocolVersion", .string(version)),
                ("capabilities", .object([("tools", .object([("listChanged", .bool(false))]))])),
                ("serverInfo", .object([("name", .string(base.toolName)), ("version", .string(GuardHelp.version))])),
                ("instructions", .string(Self.instructions(base.toolName))),
            ]))
        case "ping":
            reply = .success(.object([]))
        case "tools/list":
            reply = .success(.object([("tools", .array(MCPTools.definitions(for: base)))]))
        case "tools/call":
            guard let name = params["name"]?.string, MCPTools.names.contains(name) else {
                reply = .failure(MCPError(code: -32602, message: "unknown tool '\(params["name"]?.string ?? "")'; the tools are \(MCPTools.names.joined(separator: ", "))"))
                break
            }
            var call = MCPCall(base: base, structured: structured, input: input, id: id, progressToken: params["_meta"]?["progressToken"])
            let result = MCPTools.call(name, arguments: params["arguments"] ?? .object([]), call: &call)
            pending += call.arrived
            if call.cancelled { return true }
            reply = .success(result)
        default:
            reply = .failure(MCPError(code: -32601, message: "method '\(method)' not found"))
        }
        switch reply {
        case .success(let result):
            return Self.send(.object([("jsonrpc", .string("2.0")), ("id", id), ("result", result)]))
        case .failure(let failure):
            return Self.send(.object([("jsonrpc", .string("2.0")), ("id", id), ("error", Self.error(failure.code, failure.message))]))
        }
    }

    static func error(_ code: Int64, _ message: String) -> JSON.Value {
        .object([("code", .integer(code)), ("message", .string(message))])
    }

    /// Writes one message and its newline; false once stdout is gone.
    @discardableResult
    static func send(_ message: JSON.Value) -> Bool {
        (try? FileDescriptor.standardOutput.writeAll(JSON.encode(message) + "\n")) != nil
    }

    static func instructions(_ tool: String) -> String {
        """
        \(tool) runs commands one at a time per project, in arrival order, under a memory limit and a time limit, \
        in the same line as the people and agents using \(tool) in a shell. Call run with the command; if it is \
        still queued or running when the call's wait_seconds are up, you get its id: call wait with it (as often \
        as needed) for its exit status and the end of its output. status shows who holds the project and who \
        waits; cancel ends a run; history lists the last runs.
        """
    }
}

/// A protocol error (not a tool's): unknown tool, method.
struct MCPError: Error {
    var code: Int64
    var message: String
}

/// One tool call in progress: it can report progress, and it watches stdin for the client's
/// cancel while it waits (other messages that come are kept for after it).
struct MCPCall {
    /// The server's settings: every call's defaults.
    let base: GuardConfiguration
    /// Whether results carry structured content (the negotiated revision has it).
    let structured: Bool
    let input: LineReader
    let id: JSON.Value
    let progressToken: JSON.Value?
    var arrived: [JSON.Value] = []
    var cancelled = false
    var progress: Int64 = 0
    var lastMessage = ""

    /// Says where the call's run is, when the client asked for progress and it changed.
    mutating func report(_ message: String) {
        guard let progressToken, message != lastMessage else { return }
        lastMessage = message
        progress += 1
        MCPServer.send(.object([
            ("jsonrpc", .string("2.0")), ("method", .string("notifications/progress")),
            ("params", .object([("progressToken", progressToken), ("progress", .integer(progress)), ("message", .string(message))])),
        ]))
    }

    /// Whether the client closed its end: the call answers at once with where its run is,
    /// and the server ends after it (the stdio transport's shutdown).
    var inputEnded: Bool { input.ended && input.buffer.isEmpty }

    /// Waits up to `milliseconds` for stdin; a cancel of this call sets `cancelled`. Returns
    /// early on any message, and at once once the input has ended.
    mutating func pause(milliseconds: Int32) {
        guard let line = input.nextLine(timeoutMilliseconds: milliseconds) else { return }
        guard let message = MCPServer.parse(line) else { return }
        if message["method"]?.string == "notifications/cancelled", let target = message["params"]?["requestId"],
           JSON.encode(target) == JSON.encode(id) {
            cancelled = true
        } else {
            arrived.append(message)
        }
    }
}

/// Lines from a descriptor, each without its newline; nil at the end of input, or when none
/// came within the time given.
final class LineReader {
    let descriptor: FileDescriptor
    var buffer: [UInt8] = []
    var ended = false

    init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    func nextLine(timeoutMilliseconds: Int32) -> String? {
        let deadline = timeoutMilliseconds < 0 ? Int64.max : Clock.monotonicNanoseconds() + Int64(timeoutMilliseconds) * 1_000_000
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if ended {
                guard !buffer.isEmpty else { return nil }
                defer { buffer = [] }
                return String(decoding: buffer, as: UTF8.self)
            }
            let left = deadline == Int64.max ? -1 : Int32(clamping: max(0, (deadline - Clock.monotonicNanoseconds()) / 1_000_000))
            if Poll.readable([descriptor], timeoutMilliseconds: left).isEmpty {
                if left >= 0 && Clock.monotonicNanoseconds() >= deadline { return nil }
                continue
            }
            do {
                let bytes = try descriptor.read(upTo: 65536)
                if bytes.isEmpty { ended = true } else { buffer += bytes }
            } catch where error == .interrupted || error == .wouldBlock {
                continue
            } catch {
                ended = true
            }
        }
    }
}
