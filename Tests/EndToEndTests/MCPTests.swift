import Foundation
import Glibc
import SeqSystem
import Testing

/// A python3 with the official MCP SDK (`pip install mcp`), or nil.
let mcpPython = python(importing: "mcp.client.stdio", from: ["python3", "/usr/bin/python3"])

/// `seqexec --mcp` driven by the official MCP Python SDK as its client, as an agent's harness
/// would: it starts the server over stdio, initializes, and calls the tools.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: mcpPython != nil, "no python3 with the mcp SDK (pip install mcp): the MCP tests skip; .ci/run installs it"))
struct MCPTests {
    /// The client: the scenario in `body` (async Python, with `session`, `call(name, args)`
    /// giving (is_error, text, structured), and `report` to fill), its report printed as JSON.
    static func client(_ sandbox: Sandbox, _ body: String, tool: String = seqexecPath) throws -> [String: Any] {
        let script = try sandbox.script("client.py", """
        import asyncio, json, os, sys
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
        try:
            from mcp.shared.exceptions import MCPError as ProtocolError  # the SDK's 2.x name
        except ImportError:
            from mcp.shared.exceptions import McpError as ProtocolError

        report = {}

        async def main():
            params = StdioServerParameters(command="\(tool)", args=["--mcp"], env=dict(os.environ), cwd="\(sandbox.project)")
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    report["protocol"] = getattr(init, "protocol_version", None) or getattr(init, "protocolVersion", None)
                    report["server"] = init.server_info.name if hasattr(init, "server_info") else init.serverInfo.name
                    progress = []
                    async def on_progress(value, total, message):
                        progress.append(message)
                    async def call(name, arguments):
                        result = await session.call_tool(name, arguments, progress_callback=on_progress)
                        error = getattr(result, "is_error", None)
                        if error is None:
                            error = result.isError
                        structured = getattr(result, "structured_content", None)
                        if structured is None:
                            structured = getattr(result, "structuredContent", None)
                        return error, result.content[0].text, structured
        \(body.split(separator: "\n", omittingEmptySubsequences: false).map { "            " + $0 }.joined(separator: "\n"))
                    report["progress"] = progress

        asyncio.run(main())
        print(json.dumps(report, default=str))
        """, interpreter: try #require(mcpPython))
        let child = try sandbox.start(script, [])
        #expect(child.wait(120) == 0, "\(child.stderr)")
        let line = child.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(child.stdout)\(child.stderr)")
    }

    /// Initialize, list the tools, and call each: a run that ends within its call; one that
    /// waits behind a person's `seqexec` in a shell, outlives its call (answered with its id
    /// and place, progress saying it is queued), and is then waited for; status and runs
    /// while it waits; a cancel; history; and bad arguments, answered as tool errors with the
    /// CLI's messages and statuses. The person's run and the agent's never run at once.
    @Test func anAgentQueuesWaitsAndReadsResultsInTheSameLineAsAPerson() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        // Another project's line is free: a run there ends within its call.
        let other = sandbox.root + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let report = try Self.client(sandbox, """
        tools = await session.list_tools()
        report["tools"] = sorted(tool.name for tool in tools.tools)
        report["quick"] = await call("run", {"command": "echo out; exit 3", "shell": True, "project": "\(other)"})
        report["queued"] = await call("run", {"command": ["\(job)", "agent"], "wait_seconds": 1})
        report["queued_progress"] = list(progress)
        report["status"] = await call("status", {})
        report["runs"] = await call("runs", {})
        open("\(hold)", "w").write("go\\n")
        report["waited"] = await call("wait", {"id": report["queued"][2]["id"], "wait_seconds": 60})
        report["long"] = await call("run", {"command": ["sleep", "60"], "wait_seconds": 0.5})
        report["cancel"] = await call("cancel", {"id": report["long"][2]["id"]})
        report["after_cancel"] = await call("wait", {"id": report["long"][2]["id"], "wait_seconds": 30})
        report["history"] = await call("history", {"last": 5})
        # The server forked a relay per run: each ended one has been reaped, none is a zombie.
        def stat(pid):
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        def children(parent):
            found = []
            for name in os.listdir("/proc"):
                try:
                    if name.isdigit() and int(stat(name)[1]) == parent:
                        found.append(name)
                except (OSError, IndexError):
                    pass
            return found
        servers = [pid for pid in children(os.getpid()) if b"--mcp" in open(f"/proc/{pid}/cmdline", "rb").read()]
        report["servers"] = len(servers)
        report["zombies"] = sum(1 for server in servers for child in children(int(server)) if stat(child)[0] == "Z")
        report["bad_command"] = await call("run", {"command": 5})
        report["bad_wait"] = await call("run", {"command": ["true"], "wait_seconds": -3})
        report["extra"] = await call("status", {"colour": "red"})
        report["no_run"] = await call("wait", {"id": "no-such-run"})
        report["not_found"] = await call("run", {"command": ["no-such-command-seqguard"]})
        try:
            await session.call_tool("deploy", {})
            report["unknown_tool"] = "answered"
        except ProtocolError as error:
            report["unknown_tool"] = str(error)
        """)
        #expect(holder.wait(30) == 0, "\(holder.stderr)")
        #expect(["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"].contains(report["protocol"] as? String ?? ""), "\(report)")
        #expect(report["server"] as? String == "seqexec")
        #expect(report["tools"] as? [String] == ["cancel", "history", "run", "runs", "status", "wait"], "\(report["tools"] ?? "")")

        func call(_ key: String) -> (error: Bool, text: String, structured: [String: Any]) {
            let value = report[key] as? [Any] ?? []
            return (value.first as? Bool ?? true, value.count > 1 ? value[1] as? String ?? "" : "", value.count > 2 ? value[2] as? [String: Any] ?? [:] : [:])
        }
        let quick = call("quick")
        #expect(!quick.error && quick.structured["exit_status"] as? Int == 3 && quick.structured["output_tail"] as? String == "out\n", "\(quick)")
        #expect(quick.text.contains("ended with status 3") && quick.text.hasSuffix("out\n"), "\(quick.text)")

        // Behind the person's run: answered within its bound, with its id and place.
        let queued = call("queued")
        #expect(!queued.error && queued.structured["state"] as? String == "queued" && queued.structured["position"] as? Int == 1, "\(queued)")
        #expect(queued.text.contains("is still queued, position 1 of 1") && queued.text.contains("call wait with id"), "\(queued.text)")
        #expect((report["queued_progress"] as? [String] ?? []).contains("queued, position 1 of 1"), "\(report["queued_progress"] ?? "")")
        let status = call("status")
        #expect(status.text.contains("holder:") && status.text.contains("job.sh holder"), "\(status.text)")
        #expect((status.structured["queue"] as? [[String: Any]])?.count == 1, "\(status.structured)")
        #expect(call("runs").text.contains(queued.structured["id"] as? String ?? "?"), "\(call("runs").text)")
        let waited = call("waited")
        #expect(!waited.error && waited.structured["exit_status"] as? Int == 0, "\(waited)")
        // One line for both: the person's run first, the agent's after, never together.
        #expect(sandbox.lines("order") == ["holder", "agent"] && sandbox.lines("done") == ["holder", "agent"])
        #expect(sandbox.read("overlap").isEmpty)

        #expect(call("cancel").text.hasPrefix("cancelled run") && !call("cancel").error, "\(call("cancel"))")
        let cancelled = call("after_cancel")
        #expect(cancelled.structured["state"] as? String == "ended" && cancelled.structured["exit_status"] as? Int != 0, "\(cancelled)")
        #expect(report["servers"] as? Int == 1 && report["zombies"] as? Int == 0, "\(report["servers"] ?? "") servers, \(report["zombies"] ?? "") zombies")
        let history = call("history")
        #expect((history.structured["runs"] as? [Any])?.count == 3 && history.text.contains("job.sh agent") && history.text.contains("sleep 60"), "\(history.text)")

        // Bad arguments: tool errors with the CLI's one line and status.
        let badCommand = call("bad_command")
        #expect(badCommand.error && badCommand.text == "seqexec: run needs command: words such as [\"make\", \"test\"]" && badCommand.structured["exit_status"] as? Int == 125, "\(badCommand)")
        #expect(call("bad_wait").error && call("bad_wait").text.contains("invalid wait_seconds for run: expected a number of seconds from 0 to 3600, got -3"), "\(call("bad_wait"))")
        #expect(call("extra").error && call("extra").text.contains("status takes no argument 'colour'; it takes project"), "\(call("extra"))")
        #expect(call("no_run").error && call("no_run").text.contains("no submitted run 'no-such-run'"), "\(call("no_run"))")
        let notFound = call("not_found")
        #expect(notFound.error && notFound.structured["exit_status"] as? Int == 127 && notFound.text.contains("'no-such-command-seqguard' not found on PATH"), "\(notFound)")
        #expect((report["unknown_tool"] as? String ?? "").contains("unknown tool 'deploy'"), "\(report["unknown_tool"] ?? "")")
    }

    /// A client that cancels its call (notifications/cancelled) gets no answer to it, the run
    /// goes on in the line, and the session answers the next call at once.
    @Test func aCancelledCallLeavesItsRunQueuedAndTheSessionAnswering() throws {
        let sandbox = try Sandbox()
        let (job, hold, holder) = try blockedHolder(sandbox)
        let report = try Self.client(sandbox, """
        task = asyncio.create_task(call("run", {"command": ["\(job)", "agent"], "wait_seconds": 60}))
        for _ in range(200):
            if progress:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            report["cancelled"] = True
        started = asyncio.get_running_loop().time()
        report["runs"] = await call("runs", {})
        report["seconds"] = asyncio.get_running_loop().time() - started
        open("\(hold)", "w").write("go\\n")
        """)
        #expect(holder.wait(30) == 0)
        #expect(report["cancelled"] as? Bool == true, "\(report)")
        let runs = ((report["runs"] as? [Any])?.dropFirst(2).first as? [String: Any])?["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 1 && runs.first?["state"] as? String == "queued", "\(report)")
        #expect((report["seconds"] as? Double ?? 99) < 30, "the next call waited for the cancelled one: \(report)")
        #expect(waitUntil(30) { sandbox.lines("done") == ["holder", "agent"] }, "\(sandbox.lines("done"))")
    }

    /// Without an SDK: lines in, lines out. A line that is not JSON gets a parse error, an
    /// unknown method its error, a notification nothing; and when the client closes its input,
    /// a call still waiting answers at once with where its run is, and the server exits 0.
    @Test func theEndOfInputAnswersTheWaitingCallAndEndsTheServer() throws {
        let sandbox = try Sandbox()
        try sandbox.write("requests", """
        {"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}
        {"jsonrpc":"2.0","method":"notifications/initialized"}
        not json
        {"jsonrpc":"2.0","id":2,"method":"resources/list"}
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"run","arguments":{"command":["sleep","30"],"wait_seconds":60}}}

        """)
        let server = try sandbox.start("/bin/sh", ["-c", "exec \"$0\" --mcp < requests", seqexecPath])
        #expect(server.wait(20) == 0, "\(server.stderr)")
        let replies = server.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(replies.count == 4, "\(server.stdout)")
        // A revision it does not know gets its newest.
        #expect((replies.first?["result"] as? [String: Any])?["protocolVersion"] as? String == "2025-11-25")
        #expect((replies[safe: 1]?["error"] as? [String: Any])?["code"] as? Int == -32700, "\(replies)")
        #expect((replies[safe: 2]?["error"] as? [String: Any])?["code"] as? Int == -32601, "\(replies)")
        let run = (replies[safe: 3]?["result"] as? [String: Any])?["structuredContent"] as? [String: Any] ?? [:]
        #expect(["starting", "running"].contains(run["state"] as? String ?? ""), "\(replies)")
        // The run goes on: it was submitted.
        let id = try #require(run["id"] as? String)
        let (status, runs, _) = try sandbox.run(["--runs"])
        #expect(status == 0 && runs.contains(id), "\(runs)")
        #expect(try sandbox.run(["--cancel", id]).0 == 0)
    }

    /// make-seq's server: run takes make's arguments, and the make runs in the project's line.
    @Test(.enabled(if: commandOnPath("make"), "no make here")) func makeSeqServesMakeTargets() throws {
        let sandbox = try Sandbox()
        try sandbox.write("Makefile", "hello:\n\t@echo made $(WHO)\n")
        let report = try Self.client(sandbox, """
        report["run"] = await call("run", {"command": ["hello", "WHO=agent"]})
        report["tools"] = sorted(tool.name for tool in (await session.list_tools()).tools)
        """, tool: makeSeqPath)
        let run = report["run"] as? [Any] ?? []
        #expect(run.first as? Bool == false && (run[safe: 2] as? [String: Any])?["exit_status"] as? Int == 0, "\(report)")
        #expect((run[safe: 1] as? String ?? "").contains("made agent"), "\(report)")
        #expect(report["server"] as? String == "make-seq")
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
