import Foundation
import SeqDatabase
import Glibc
@testable import PipelineModel
@testable import SeqPipeline
@testable import PipelineRuntime
import SeqSystem
import Testing

/// A python3 HTTP server on `host` (an address), answering 200 to every GET; or, with
/// `silent`, accepting connections and never answering; or, with `http11`, answering only an
/// HTTP/1.1 request (as chromedriver does: anything else gets nothing, the connection closed)
/// with `reply`, then keeping the connection open for a minute, so a client that waits for
/// the close instead of reading the reply's framing times out. `reply` may hold `{request}`,
/// replaced with the request's head. Ended by pid when done.
final class LoopbackServer {
    let pid: Int32
    let port: UInt16

    init(host: String, silent: Bool = false, http11 reply: String? = nil) throws {
        let family = host.contains(":") ? "socket.AF_INET6" : "socket.AF_INET"
        let script = """
            import socket, sys, time
            s = socket.socket(\(family))
            s.bind(("\(host)", 0))
            s.listen(16)
            print(s.getsockname()[1], flush=True)
            reply = \(reply.map { "\"\"\"" + $0 + "\"\"\"" } ?? "None")
            while True:
                c, _ = s.accept()
                if \(silent ? "True" : "False"):
                    time.sleep(60)
                request = b""
                while b"\\r\\n\\r\\n" not in request:
                    data = c.recv(4096)
                    if not data:
                        break
                    request += data
                if reply is None:
                    c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
                elif request.split(b"\\r\\n")[0].endswith(b" HTTP/1.1"):
                    head = request.split(b"\\r\\n\\r\\n")[0].decode()
                    body = reply.replace("{request}", head).replace("{length}", str(len(head)))
                    c.sendall(body.encode())
                    time.sleep(60)
                c.close()
            """
        let (read, write) = try FileSystem.pipe()
        defer { read.close() }
        pid = try Spawn.spawn(["python3", "-c", script], environment: Spawn.currentEnvironment(), resetSignals: [], output: write)
        write.close()
        var text = ""
        // The port line is the server's "ready".
        while !text.contains("\n") {
            guard !Poll.readable([read], timeoutMilliseconds: 10_000).isEmpty else { break }
            let bytes = try read.read(upTo: 64)
            if bytes.isEmpty { break }
            text += String(decoding: bytes, as: UTF8.self)
        }
        guard let port = UInt16(text.split(separator: "\n").first ?? "") else {
            kill(pid, SIGKILL)
            _ = try? Spawn.reap(pid)
            throw Errno.connectionRefused
        }
        self.port = port
    }

    deinit {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// Whether chromedriver is on PATH.
let chromedriverInstalled = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains {
    access("\($0)/chromedriver", X_OK) == 0
}

@Suite struct HTTPProbeTests {
    @Test func parsesHostsPortsAndBracketedIPv6() {
        #expect(HTTPProbe.parse("http://127.0.0.1:4723/status")! == ("127.0.0.1", 4723, "/status"))
        #expect(HTTPProbe.parse("http://localhost/")! == ("localhost", 80, "/"))
        #expect(HTTPProbe.parse("http://[::1]:4723/status")! == ("::1", 4723, "/status"))
        #expect(HTTPProbe.parse("http://[::1]")! == ("::1", 80, "/"))
        #expect(HTTPProbe.parse("http://[::1:4723/") == nil)
        #expect(HTTPProbe.parse("http://[::1]x/") == nil)
        #expect(HTTPProbe.parse("https://host/") == nil)
        #expect(HTTPProbe.parse("http://host:port/") == nil)
    }

    @Test func reachesAnIPv6ServerThroughBrackets() throws {
        let server = try LoopbackServer(host: "::1")
        let response = try HTTPProbe.get("http://[::1]:\(server.port)/status", timeoutMilliseconds: 5000)
        #expect(response.status == 200 && response.body == "ok")
    }

    /// A name, not an address: resolved through the bounded lookup, and every address it
    /// has is tried until one answers.
    @Test func reachesAnIPv4ServerByName() throws {
        let server = try LoopbackServer(host: "127.0.0.1")
        let response = try HTTPProbe.get("http://localhost:\(server.port)/status", timeoutMilliseconds: 5000)
        #expect(response.status == 200)
    }

    @Test func aNameThatDoesNotResolveFailsWithinTheLimit() {
        let started = Clock.monotonicNanoseconds()
        do {
            _ = try HTTPProbe.get("http://no-such-host.invalid:4723/status", timeoutMilliseconds: 500)
            Issue.record("a name that does not resolve answered")
        } catch {
            #expect(error == .hostUnreachable || error == .timedOut, "\(error)")
        }
        // The limit plus scheduling slack on a busy machine; an unbounded lookup takes 5 s and more.
        #expect(Clock.monotonicNanoseconds() - started < 4_000_000_000)
    }

    @Test func aSilentServerTimesOutAndACancelEndsTheWaitAtOnce() throws {
        let server = try LoopbackServer(host: "127.0.0.1", silent: true)
        do {
            _ = try HTTPProbe.get("http://127.0.0.1:\(server.port)/", timeoutMilliseconds: 300)
            Issue.record("a silent server answered")
        } catch {
            #expect(error == .timedOut)
        }
        let (read, write) = try FileSystem.pipe()
        defer { read.close(); write.close() }
        try write.writeAll("x")
        let started = Clock.monotonicNanoseconds()
        do {
            _ = try HTTPProbe.get("http://127.0.0.1:\(server.port)/", timeoutMilliseconds: 30_000, cancel: read)
            Issue.record("a silent server answered")
        } catch {
            #expect(error == .operationCanceled)
        }
        #expect(Clock.monotonicNanoseconds() - started < 10_000_000_000)
    }

    /// A server that answers HTTP/1.1 alone (chromedriver: "Cannot handle request with
    /// protocol: HTTP/1.0") is asked in HTTP/1.1, with the host and its port and
    /// `Connection: close`; its reply is read to its `Content-Length`, though the server keeps
    /// the connection open (the probe would otherwise wait for the close until its deadline).
    @Test func anHTTP11OnlyServerAnswersAndItsReplyEndsAtItsLength() throws {
        let server = try LoopbackServer(host: "127.0.0.1", http11: "HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: {length}\\r\\n\\r\\n{request}")
        let started = Clock.monotonicNanoseconds()
        let response = try HTTPProbe.get("http://127.0.0.1:\(server.port)/status", timeoutMilliseconds: 20_000)
        #expect(response.status == 200)
        let lines = response.body.split(separator: "\r\n").map(String.init)
        #expect(lines.first == "GET /status HTTP/1.1", "\(lines)")
        #expect(lines.contains("Host: 127.0.0.1:\(server.port)") && lines.contains("Connection: close"), "\(lines)")
        // Well within the deadline: the server holds the connection for a minute.
        #expect(Clock.monotonicNanoseconds() - started < 15_000_000_000)
    }

    /// A chunked reply on a connection kept open: read to its last chunk and decoded.
    @Test func aChunkedReplyIsReadToItsLastChunk() throws {
        let server = try LoopbackServer(host: "127.0.0.1", http11: "HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n5\\r\\nhello\\r\\n6;name=x\\r\\n world\\r\\n0\\r\\n\\r\\n")
        let response = try HTTPProbe.get("http://127.0.0.1:\(server.port)/status", timeoutMilliseconds: 20_000)
        #expect(response.status == 200 && response.body == "hello world", "\(response)")
    }

    /// The framing as bytes arrive: nothing is whole until its header, its length or its last
    /// chunk (and the trailer's empty line) is in.
    @Test func framingSaysWhenAReplyIsWhole() throws {
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        #expect(HTTPProbe.framedBody(bytes("HTTP/1.1 200 OK\r\nContent-Len")) == nil)
        #expect(HTTPProbe.framedBody(bytes("HTTP/1.1 200 OK\r\ncontent-length: 4 \r\n\r\nab")) == nil)
        #expect(HTTPProbe.framedBody(bytes("HTTP/1.1 200 OK\r\ncontent-length: 4 \r\n\r\nabcdEXTRA")) == bytes("abcd"))
        #expect(HTTPProbe.framedBody(bytes("HTTP/1.1 204 No Content\r\n\r\n")) == [])
        // No framing: the body runs to the close.
        #expect(HTTPProbe.framedBody(bytes("HTTP/1.0 200 OK\r\n\r\nabc")) == nil)
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n"
        for cut in [chunked.count - 1, chunked.count - 3, chunked.count - 20, 50] {
            #expect(HTTPProbe.framedBody(bytes(String(chunked.prefix(cut)))) == nil, "whole at \(cut)")
        }
        #expect(HTTPProbe.framedBody(bytes(chunked)) == bytes("abc0123456789"))
        // Cut off by the close: the status still counts, with what came of the body.
        #expect(try HTTPProbe.response(bytes("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\n\r\nabc")).status == 503)
        #expect(throws: Errno.invalidArgument) { try HTTPProbe.response(bytes("SSH-2.0-OpenSSH\r\n")) }
    }

    /// A real chromedriver's `/status` answers the probe (it answers HTTP/1.0 with nothing).
    @Test(.enabled(if: chromedriverInstalled, "chromedriver is not installed (apt-get install chromium-driver): the probe is not tried against it"))
    func aRealChromedriverAnswersTheProbe() throws {
        let (read, write) = try FileSystem.pipe()
        defer { read.close() }
        let pid = try Spawn.spawn(["chromedriver", "--port=0"], environment: Spawn.currentEnvironment(), resetSignals: [], output: write)
        write.close()
        defer {
            kill(pid, SIGKILL)
            _ = try? Spawn.reap(pid)
        }
        // "ChromeDriver was started successfully on port 41234." is its ready line.
        var text = ""
        let deadline = Clock.monotonicNanoseconds() + 20_000_000_000
        while !text.contains("successfully on port"), Clock.monotonicNanoseconds() < deadline {
            guard !Poll.readable([read], timeoutMilliseconds: 1000).isEmpty else { continue }
            let bytes = try read.read(upTo: 4096)
            if bytes.isEmpty { break }
            text += String(decoding: bytes, as: UTF8.self)
        }
        let port = try #require(text.split(separator: "successfully on port ").dropFirst().first.flatMap { UInt16($0.prefix { $0.isNumber }) }, "\(text)")
        let response = try HTTPProbe.get("http://127.0.0.1:\(port)/status", timeoutMilliseconds: 10_000)
        #expect(response.status == 200 && response.body.contains("\"ready\""), "\(response)")
    }
}
