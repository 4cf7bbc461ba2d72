import SeqDatabase
import Glibc
@testable import PipelineModel
@testable import SeqPipeline
import SeqSystem
import Testing

/// A python3 HTTP server on `host` (an address), answering 200 to every GET; or, with
/// `silent`, accepting connections and never answering. Ended by pid when done.
final class LoopbackServer {
    let pid: Int32
    let port: UInt16

    init(host: String, silent: Bool = false) throws {
        let family = host.contains(":") ? "socket.AF_INET6" : "socket.AF_INET"
        let script = """
            import socket, sys, time
            s = socket.socket(\(family))
            s.bind(("\(host)", 0))
            s.listen(16)
            print(s.getsockname()[1], flush=True)
            while True:
                c, _ = s.accept()
                if \(silent ? "True" : "False"):
                    time.sleep(60)
                c.recv(4096)
                c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
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
}
