import Foundation
import Glibc
import Testing

/// `seqpipe serve` under load and hostile requests: a client holding many idle connections
/// locks no one out, answers are sized by the page rather than the queue, HEAD has no body,
/// and lengths that disagree or chunks that lie are refused before any action runs.
@Suite(.serialized) struct DashboardLoadTests {
    @Test(.timeLimit(.minutes(2))) func aFloodOfIdleConnectionsLocksNoOneOut() throws {
        let pipeline = try DashboardTests.workedPipeline()
        let (server, port) = try DashboardTests.serve(pipeline)
        // 70 idle connections, each opened again as soon as the server lets it go.
        var idle = (0..<70).map { _ in connectLocal(port, seconds: 1) }
        defer { for fd in idle where fd >= 0 { close(fd) } }
        var served = 0
        var refused = 0
        for _ in 0..<30 {
            // Whatever the server closed (408, or pushed out for a newer one) is reopened.
            for index in idle.indices {
                var probe = pollfd(fd: idle[index], events: Int16(POLLIN), revents: 0)
                if idle[index] < 0 || (poll(&probe, 1, 0) > 0) {
                    if idle[index] >= 0 { close(idle[index]) }
                    idle[index] = connectLocal(port, seconds: 1)
                }
            }
            let answer = httpGet(port, "/api/status")
            if answer.status == 200 { served += 1 } else { refused += 1 }
        }
        #expect(served == 30, "served \(served), refused \(refused)")
        server.signal(SIGTERM)
        #expect(server.wait(10) == 0)
        print("connection flood: 70 idle connections held open; \(served) of 30 requests served, \(refused) refused")
    }

    @Test func headHasNoBodyAndLyingLengthsAreRefused() throws {
        let pipeline = try DashboardTests.workedPipeline()
        let (server, port) = try DashboardTests.serve(pipeline, ["--allow-actions"])
        let token = try #require(server.stdout.split(separator: "\n").first { $0.contains("token: ") }?.split(separator: " ").last.map(String.init))
        let get = httpGet(port, "/api/status")
        let head = httpExchange(port, "HEAD /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(head.status == 200 && head.body.isEmpty, "\(head.body.prefix(100))")
        // The same answer (kept a second) as the GET's: its length, without its body.
        #expect(head.head.contains("Content-Length: \(get.body.utf8.count)\r\n"), "\(head.head)")
        // Two lengths that disagree: refused, and the action not carried out.
        let twice = httpExchange(port, "POST /api/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello")
        #expect(twice.status == 400, "\(twice.head)")
        let both = httpExchange(port, "POST /api/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        #expect(both.status == 400, "\(both.head)")
        let huge = httpExchange(port, "POST /api/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n")
        #expect(huge.status == 400, "\(huge.head)")
        #expect(server.isRunning, "no action ran: the server still serves")
        // A NUL in the path names no job.
        let nul = httpGet(port, "/api/jobs/ok0%00x")
        #expect(nul.status == 400, "\(nul.head) \(nul.body)")
        #expect(httpGet(port, "/api/jobs/ok0").status == 200)
        server.signal(SIGTERM)
        #expect(server.wait(10) == 0)
    }

    /// 3,000 waiting jobs: status lists the first 200 with the total, in the terminal, its
    /// JSON and /api/status alike; /api/jobs pages by its limit.
    @Test(.timeLimit(.minutes(2))) func answersAreSizedByThePageNotTheQueue() throws {
        let pipeline = try PipelineSandbox(devices: 1)
        var csv = "job_id,account,mode\n"
        for index in 0..<3000 { csv += "j\(index),acct\(index % 10),ok\n" }
        _ = try pipeline.sandbox.write("jobs.csv", csv)
        #expect(try pipeline.pipe(["import-csv", pipeline.sandbox.path("jobs.csv")]).0 == 0)
        let status = try pipeline.status()
        #expect((status["waiting"] as? [Any])?.count == 200 && status["waiting_total"] as? Int == 3000, "\(status["waiting_total"] ?? "-")")
        let (_, text, _) = try pipeline.pipe(["status"])
        #expect(text.contains("… and 2980 more"), "\(text.suffix(200))")
        let (server, port) = try DashboardTests.serve(pipeline)
        let api = httpGet(port, "/api/status")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(api.body.utf8)) as? [String: Any])
        #expect((parsed["waiting"] as? [Any])?.count == 200)
        let page = httpGet(port, "/api/jobs?status=pending&limit=50")
        let jobs = try #require(try JSONSerialization.jsonObject(with: Data(page.body.utf8)) as? [String: Any])
        #expect(jobs["total"] as? Int == 3000 && (jobs["jobs"] as? [Any])?.count == 50)
        #expect(httpGet(port, "/metrics").body.contains("seqpipe_jobs{status=\"pending\"} 3000"))
        server.signal(SIGTERM)
        #expect(server.wait(10) == 0)
    }
}
