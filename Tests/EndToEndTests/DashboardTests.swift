import Foundation
import Glibc
import Testing

/// One HTTP exchange over a plain socket: sends `raw` to 127.0.0.1:`port`, reads until the
/// server closes. Answers the status (0 when nothing came back), and the head and body.
/// A TCP connection to 127.0.0.1:`port` whose reads wait at most `seconds`; -1 if refused.
func connectLocal(_ port: Int, seconds: Int = 15) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var limit = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else {
        close(fd)
        return -1
    }
    return fd
}

/// One HTTP exchange over a plain socket: sends `raw` to 127.0.0.1:`port`, reads until the
/// server closes. Answers the status (0 when nothing came back), and the head and body.
func httpExchange(_ port: Int, _ raw: String, seconds: Int = 15) -> (status: Int, head: String, body: String) {
    let fd = connectLocal(port, seconds: seconds)
    guard fd >= 0 else { return (0, "", "") }
    defer { close(fd) }
    let bytes = Array(raw.utf8)
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var reply: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        reply += buffer[0..<n]
    }
    let text = String(decoding: reply, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { return (0, text, "") }
    let head = String(text[..<split.lowerBound])
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, head, String(text[split.upperBound...]))
}

func httpGet(_ port: Int, _ path: String, headers: String = "") -> (status: Int, head: String, body: String) {
    httpExchange(port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(headers)\r\n")
}

func httpPost(_ port: Int, _ path: String, headers: String = "") -> (status: Int, head: String, body: String) {
    httpExchange(port, "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\(headers)\r\n")
}

/// The first headless Chromium on PATH, if any.
let chromiumPath: String? = ["chromium", "chromium-browser", "google-chrome"].first(where: commandOnPath)

/// `seqpipe serve`: the page, its API, /metrics, the token rules and the bad requests, on a
/// store the pipeline has just worked on.
@Suite(.serialized) struct DashboardTests {
    /// A store after a run: ok jobs, one suspended account (a permanent failure).
    static func workedPipeline() throws -> PipelineSandbox {
        let pipeline = try PipelineSandbox()
        try pipeline.addJobs((0..<5).map { ("ok\($0)", "ok", "acct\($0)") } + [("bad", "suspended", "acct-bad")])
        let (status, _, err) = try pipeline.pipe(["run", "--once"], seconds: 60)
        try #require(status == 0, "run: \(err)")
        return pipeline
    }

    /// Starts `seqpipe serve ARGS` and waits for the line saying where it listens.
    static func serve(_ pipeline: PipelineSandbox, _ arguments: [String] = []) throws -> (Child, Int) {
        let server = try pipeline.start(["serve", "--listen", "127.0.0.1:0"] + arguments)
        #expect(waitUntil(20) { server.stdout.contains("http://127.0.0.1:") || !server.isRunning }, "\(server.stderr)")
        let port = server.stdout.split(separator: "\n").first.flatMap { line in
            line.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) }
        }
        return (server, try #require(port, "\(server.stdout)"))
    }

    /// A TCP port nobody listens on now (the kernel's pick for a socket bound to port 0).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// /metrics is what Prometheus's own tools accept: `promtool check metrics` finds nothing
    /// to say, and a real Prometheus scraping the page reads back a rate() of a counter.
    @Test(.enabled(if: commandOnPath("promtool"), "no promtool here (apt-get install prometheus): the metrics check skips; .ci/run installs it"),
          .timeLimit(.minutes(2)))
    func prometheusAcceptsTheMetricsAndReadsARateBack() throws {
        let pipeline = try Self.workedPipeline()
        let (server, port) = try Self.serve(pipeline)
        defer { server.signal(SIGTERM); _ = server.wait(10) }
        let metrics = httpGet(port, "/metrics")
        #expect(metrics.body.contains("# TYPE seqpipe_job_attempts_total counter") && metrics.body.contains("# TYPE seqpipe_job_attempt_duration_seconds histogram"),
                "\(metrics.body)")
        // workedPipeline: five steps exited 0, one failed (the suspended account's).
        #expect(metrics.body.contains(",outcome=\"success\",step=\"post\"} 5\n") && metrics.body.contains(",outcome=\"failure\",step=\"post\"} 1\n"),
                "\(metrics.body)")
        let file = try pipeline.sandbox.write("metrics.txt", metrics.body)
        let check = try pipeline.sandbox.start("/bin/sh", ["-c", "promtool check metrics < '\(file)'"])
        #expect(check.wait(30) == 0 && check.stdout.isEmpty && check.stderr.isEmpty, "promtool: \(check.stdout)\(check.stderr)")

        guard commandOnPath("prometheus") else {
            print("skipped: prometheusAcceptsTheMetricsAndReadsARateBack's scrape needs prometheus (apt-get install prometheus); .ci/run installs it")
            return
        }
        let web = try Self.freePort()
        let config = try pipeline.sandbox.write("prometheus.yml", """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            scrape_configs:
              - job_name: seqpipe
                static_configs: [{targets: ["127.0.0.1:\(port)"]}]

            """)
        let prometheus = try pipeline.sandbox.start("/usr/bin/env", [
            "prometheus", "--config.file=\(config)", "--storage.tsdb.path=\(pipeline.sandbox.path("tsdb"))",
            "--web.listen-address=127.0.0.1:\(web)", "--log.level=warn",
        ])
        defer { prometheus.signal(SIGTERM); _ = prometheus.wait(20) }
        let close = "Connection: close\r\n"
        #expect(waitUntil(30) { httpGet(web, "/-/ready", headers: close).status == 200 }, "prometheus is ready: \(prometheus.stderr)")
        // Jobs run while Prometheus scrapes: the counter grows between its samples.
        var rate = 0.0
        var round = 0
        var answer = ""
        #expect(waitUntil(60) {
            round += 1
            // One account, so each round adds to the same series and a rate needs two samples of it.
            guard (try? pipeline.addJobs([("more\(round)", "ok", "acct-more")])) != nil,
                  (try? pipeline.pipe(["run", "--once"], seconds: 30))?.0 == 0 else { return false }
            answer = httpGet(web, "/api/v1/query?query=sum(rate(seqpipe_job_attempts_total%5B30s%5D))", headers: close).body
            guard let data = answer.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let result = (json["data"] as? [String: Any])?["result"] as? [[String: Any]],
                  let value = (result.first?["value"] as? [Any])?.last as? String, let number = Double(value) else { return false }
            rate = number
            return number > 0
        }, "Prometheus reads a rate of seqpipe_job_attempts_total back: \(answer) \(prometheus.stderr)")
        print("prometheus: rate(seqpipe_job_attempts_total[30s]) = \(rate) after \(round) rounds")
    }

    @Test func thePageTheAPIAndMetricsAnswerAndBadRequestsGetAStatus() throws {
        let pipeline = try Self.workedPipeline()
        let (server, port) = try Self.serve(pipeline)
        let page = httpGet(port, "/")
        #expect(page.status == 200 && page.head.contains("text/html") && page.body.contains("<title>seqpipe</title>"))
        for outside in ["src=\"http", "href=\"http", "@import", "url(http", "fetch(\"http"] {
            #expect(!page.body.contains(outside), "the page fetches nothing from elsewhere: \(outside)")
        }
        let status = try #require(try JSONSerialization.jsonObject(with: Data(httpGet(port, "/api/status").body.utf8)) as? [String: Any])
        #expect((status["devices"] as? [Any])?.count == 3 && status["queue"] as? Int == 0 && status["actions"] as? Bool == false, "\(status)")
        let failed = try #require(try JSONSerialization.jsonObject(with: Data(httpGet(port, "/api/jobs?status=failed").body.utf8)) as? [String: Any])
        let jobs = failed["jobs"] as? [[String: Any]] ?? []
        #expect(jobs.count == 1 && jobs.first?["id"] as? String == "bad" && jobs.first?["error_type"] as? String == "suspended", "\(failed)")
        let detail = try #require(try JSONSerialization.jsonObject(with: Data(httpGet(port, "/api/jobs/bad").body.utf8)) as? [String: Any])
        #expect((detail["events"] as? [[String: Any]])?.contains { $0["kind"] as? String == "account-paused" } == true, "\(detail)")
        let chart = httpGet(port, "/api/throughput?minutes=30")
        #expect(chart.status == 200 && chart.body.contains("\"success\":5"), "\(chart.body)")
        // A week, in hour buckets counted by the store; the page at a job's address; the latest events.
        let week = try #require(try JSONSerialization.jsonObject(with: Data(httpGet(port, "/api/throughput?minutes=10080").body.utf8)) as? [String: Any])
        let buckets = week["minutes"] as? [[String: Any]] ?? []
        #expect(week["step_minutes"] as? Int == 60 && buckets.count == 168 && buckets.reduce(0) { $0 + ($1["success"] as? Int ?? 0) } == 5, "\(week)")
        #expect(httpGet(port, "/api/throughput?minutes=10081").status == 400)
        let jobPage = httpGet(port, "/jobs/bad")
        #expect(jobPage.status == 200 && jobPage.head.contains("text/html") && jobPage.body.contains("<title>seqpipe</title>"))
        let events = try #require(try JSONSerialization.jsonObject(with: Data(httpGet(port, "/api/events?limit=3").body.utf8)) as? [[String: Any]])
        #expect(events.count == 3 && events.allSatisfy { $0["kind"] is String && $0["message"] is String }, "\(events)")

        // /metrics parses as the text format: comments, or NAME{LABELS} VALUE.
        let metrics = httpGet(port, "/metrics")
        #expect(metrics.status == 200 && metrics.head.contains("text/plain; version=0.0.4"))
        let sample = try Regex(#"^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$"#)
        for line in metrics.body.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: sample) != nil, "not a sample: \(line)")
        }
        #expect(metrics.body.contains("seqpipe_jobs{status=\"failed\"} 1") && metrics.body.contains("seqpipe_jobs{status=\"success\"} 5"))
        #expect(metrics.body.contains("seqpipe_device_healthy{device=\"d0\",host=\"\"} 1"), "\(metrics.body)")

        // Bad requests get a status, and the server goes on.
        #expect(httpGet(port, "/api/jobs?limit=abc").status == 400)
        #expect(httpGet(port, "/api/jobs?status=bogus").status == 400)
        #expect(httpGet(port, "/nowhere").status == 404)
        #expect(httpExchange(port, "DELETE /api/status HTTP/1.1\r\n\r\n").status == 405)
        #expect(httpExchange(port, "NONSENSE\r\n\r\n").status == 400)
        #expect(httpGet(port, "/", headers: "X-Big: \(String(repeating: "x", count: 20000))\r\n").status == 431)
        #expect(httpPost(port, "/api/jobs/bad/retry").status == 403)
        #expect(httpGet(port, "/api/status").status == 200)
        server.signal(SIGTERM)
        #expect(server.wait(10) == 0, "\(server.stderr)")
    }

    @Test func theTerminalListsJobsShowsOneAndWatchesTheStatus() throws {
        let pipeline = try Self.workedPipeline()
        let (listed, table, _) = try pipeline.pipe(["jobs", "--status", "failed"])
        #expect(listed == 0 && table.hasPrefix("JOB  ACCOUNT   STATUS  PRIORITY  DEVICE  ATTEMPT  ERROR\n") && table.contains("suspended: "), "\(table)")
        #expect(table.split(separator: "\n").count == 2)
        let (_, json, _) = try pipeline.pipe(["jobs", "--json"])
        let all = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(all["total"] as? Int == 6)
        #expect(try pipeline.pipe(["jobs", "--search", "OK3"]).1.split(separator: "\n").count == 2)
        #expect(try pipeline.pipe(["jobs", "--status", "nope"]).0 == 2)
        let (shown, detail, _) = try pipeline.pipe(["show", "bad"])
        #expect(shown == 0 && detail.contains("error_type: suspended") && detail.contains("events:") && detail.contains("account-paused"), "\(detail)")
        let (missing, _, why) = try pipeline.pipe(["show", "nope"])
        #expect(missing == 1 && why == "seqpipe: no job 'nope'; see 'seqpipe jobs'\n")
        let (_, status, _) = try pipeline.pipe(["status"])
        #expect(status.contains("queue: 0 to do") && status.contains("; empty"), "\(status)")
        #expect(status.contains("  ACCOUNT   TODAY  LAST HOUR  LAST DAY   STATE") && status.contains("0% of 1"), "\(status)")
        #expect(status.contains("  DEVICE  LAST HOUR") && status.contains("100% of"), "\(status)")
        // --watch reads again every 2 s until told to stop (here not a terminal: one after another).
        let watch = try pipeline.start(["status", "--watch"])
        #expect(waitUntil(20) { watch.stdout.components(separatedBy: "store: ").count >= 3 }, "\(watch.stdout)")
        watch.signal(SIGTERM)
        #expect(watch.wait(10) == 0)
    }

    @Test func aSlowClientGets408AndOthersAreServedMeanwhile() throws {
        let pipeline = try Self.workedPipeline()
        let (server, port) = try Self.serve(pipeline)
        // A client that sends half a request and then nothing.
        let slow = connectLocal(port)
        defer { if slow >= 0 { close(slow) } }
        #expect(slow >= 0)
        _ = Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8).withUnsafeBytes { send(slow, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Meanwhile another client is answered at once.
        let started = Date()
        #expect(httpGet(port, "/api/status").status == 200)
        #expect(Date().timeIntervalSince(started) < 4, "served while the slow client waits")
        // The slow one is told so and let go.
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(slow, &buffer, buffer.count, 0)
        #expect(n > 0 && String(decoding: buffer[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 408"))
        server.signal(SIGTERM)
        #expect(server.wait(10) == 0)
    }

    @Test func actionsNeedTheTokenAndAWiderAddressNeedsOneForEverything() throws {
        let pipeline = try Self.workedPipeline()
        let (server, port) = try Self.serve(pipeline, ["--allow-actions"])
        let token = try #require(server.stdout.split(separator: "\n").first { $0.contains("token: ") }?.split(separator: " ").last.map(String.init))
        #expect(httpPost(port, "/api/jobs/bad/retry").status == 401)
        #expect(httpPost(port, "/api/jobs/bad/retry", headers: "Authorization: Bearer wrong\r\n").status == 401)
        #expect(httpGet(port, "/api/jobs/bad/retry", headers: "Authorization: Bearer \(token)\r\n").status == 404)
        let done = httpPost(port, "/api/jobs/bad/retry", headers: "Authorization: Bearer \(token)\r\n")
        #expect(done.status == 200, "\(done.body)")
        #expect(try pipeline.jobs()["bad"]?.status == "pending")
        #expect(httpPost(port, "/api/jobs/ok0/cancel", headers: "X-Seqpipe-Token: \(token)\r\n").status == 409)
        #expect(httpPost(port, "/api/accounts/acct-bad/resume", headers: "X-Seqpipe-Token: \(token)\r\n").status == 200)
        // A bulk action needs a filter, and a status that is one; a device action names one.
        let auth = "Authorization: Bearer \(token)\r\n"
        #expect(httpPost(port, "/api/jobs/retry", headers: auth).status == 400)
        #expect(httpPost(port, "/api/jobs/cancel?status=bogus", headers: auth).status == 400)
        let bulk = httpPost(port, "/api/jobs/cancel?status=pending", headers: auth)
        #expect(bulk.status == 200 && bulk.body.contains("cancelled 1 of the 1 job matching status pending"), "\(bulk.body)")
        #expect(httpPost(port, "/api/devices/nope/pause", headers: auth).status == 404)
        let paused = httpPost(port, "/api/devices/d0/pause", headers: auth)
        #expect(paused.status == 200 && paused.body.contains("device d0 paused"), "\(paused.body)")
        server.signal(SIGTERM)
        #expect(server.wait(10) == 0)

        // Beyond loopback: refused without a token file; with one, every request carries it.
        let (refused, _, err) = try pipeline.pipe(["serve", "--listen", "0.0.0.0:0"])
        #expect(refused == 2 && err.contains("--token-file") && err.split(separator: "\n").count == 1, "\(err)")
        _ = try pipeline.sandbox.write("token", "s3cret-token\n")
        let wide = try pipeline.start(["serve", "--listen", "0.0.0.0:0", "--token-file", pipeline.sandbox.path("token")])
        #expect(waitUntil(20) { wide.stdout.contains("http://0.0.0.0:") }, "\(wide.stderr)")
        let widePort = try #require(wide.stdout.split(separator: "\n").first?.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) })
        #expect(httpGet(widePort, "/api/status").status == 401)
        #expect(httpGet(widePort, "/api/status?token=s3cret-token").status == 200)
        #expect(httpGet(widePort, "/api/status", headers: "Authorization: Bearer s3cret-token\r\n").status == 200)
        wide.signal(SIGTERM)
        #expect(wide.wait(10) == 0)
    }

    @Test(.enabled(if: chromiumPath != nil, "no headless Chromium here (chromium, chromium-browser or google-chrome): the browser test skips; .ci/run installs chromium"),
          .timeLimit(.minutes(3)))
    func aHeadlessBrowserShowsDevicesJobsAFailureAndTheChartAndFollowsANewJob() throws {
        let pipeline = try Self.workedPipeline()
        let (server, port) = try Self.serve(pipeline)
        func render() throws -> String {
            let browser = try pipeline.sandbox.start(chromiumPath!, [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(pipeline.sandbox.path("chromium"))",
                "--virtual-time-budget=6000", "--dump-dom", "http://127.0.0.1:\(port)/",
            ])
            #expect(browser.wait(90) == 0, "\(browser.stderr.suffix(2000))")
            return browser.stdout
        }
        let before = try render()
        for device in ["d0", "d1", "d2"] { #expect(before.contains("<td>\(device)</td>"), "device \(device)") }
        #expect(before.contains("<a href=\"/jobs/bad\">bad</a>") && before.contains("suspended: "), "the failed job and its reason")
        #expect(before.contains("<svg") && before.contains("class=\"bar success\""), "the chart")
        #expect(before.contains("6 matching"), "the job count")
        #expect(!before.contains("id=\"updated\">failed"), "no fetch failed: \(before)")

        // A job finishes: the page follows.
        try pipeline.addJobs([("later", "ok", "acct-later")])
        #expect(try pipeline.pipe(["run", "--once"], seconds: 60).0 == 0)
        // The server keeps an answer for a second (browsers polling together read the store
        // once): render until the page shows the new job, within a time limit.
        var after = ""
        #expect(waitUntil(30) {
            after = (try? render()) ?? ""
            return after.contains("<a href=\"/jobs/later\">later</a>")
        }, "the new job")
        #expect(after.contains("7 matching"), "the job count")
        #expect(after.contains("success 6"), "the chart's legend counts it")

        server.signal(SIGTERM)
        #expect(server.wait(10) == 0)
    }

    /// The Python that has Selenium (Debian's python3-selenium), if any.
    static let seleniumPython = python(importing: "selenium", from: ["/usr/bin/python3", "python3"])
    static let chromedriverPath: String? = pathOf("chromedriver")

    /// The operator's desk, driven in headless Chromium as a person would: a job opened by its
    /// address, a failed job retried and a pending one cancelled by their buttons, a filter
    /// retried in bulk, a device paused and resumed; each effect then read from the store.
    @Test(.enabled(if: chromiumPath != nil && chromedriverPath != nil && seleniumPython != nil,
                   "no chromium, chromedriver or Selenium here (apt-get install chromium chromium-driver python3-selenium): the page's actions test skips; .ci/run installs them"),
          .timeLimit(.minutes(3)))
    func theOperatorActsFromThePageInAHeadlessBrowser() throws {
        let pipeline = try Self.workedPipeline()
        try pipeline.addJobs([("f1", "suspended", "acct-f1"), ("f2", "suspended", "acct-f2")])
        #expect(try pipeline.pipe(["run", "--once"], seconds: 60).0 == 0)
        try pipeline.addJobs([("p1", "ok", "acct-p1")])
        let (server, port) = try Self.serve(pipeline, ["--allow-actions"])
        defer { server.signal(SIGTERM); _ = server.wait(10) }
        #expect(waitUntil(10) { server.stdout.contains("their token: ") }, "\(server.stdout)")
        let token = try #require(server.stdout.split(separator: "\n").first { $0.contains("their token: ") }?.split(separator: " ").last.map(String.init))

        let picture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/dashboard.png").path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/drive-dashboard.py").path
        let drive = try pipeline.sandbox.start(Self.seleniumPython!, [
            script, "http://127.0.0.1:\(port)", token, picture, try #require(pathOf(chromiumPath!)),
            try #require(Self.chromedriverPath), pipeline.sandbox.path("chromium-profile"),
        ])
        #expect(drive.wait(150) == 0, "\(drive.stdout)\(drive.stderr.suffix(3000))")
        print("dashboard, driven:\n\(drive.stdout)")
        #expect(!drive.stdout.contains("FAILED"), "\(drive.stdout)")

        // Each effect, as the store has it, recorded under the token's name.
        let jobs = try pipeline.jobs()
        #expect(jobs["bad"]?.status == "pending" && jobs["p1"]?.status == "cancelled", "\(jobs)")
        #expect(jobs["f1"]?.status == "pending" && jobs["f2"]?.status == "pending", "\(jobs)")
        let devices = try pipeline.status()["devices"] as? [[String: Any]] ?? []
        #expect(devices.first { $0["name"] as? String == "d1" }?["paused"] as? Bool == false, "\(devices)")
        let events = try pipeline.pipe(["events", "--limit", "100"]).1
        for line in ["job-retry", "job-cancelled", "device-paused", "device-resumed"] {
            #expect(events.split(separator: "\n").contains { $0.contains(line) && $0.contains("by the page (token printed at start)") }, "\(line): \(events)")
        }
        #expect(FileManager.default.fileExists(atPath: picture))
        print("dashboard: screenshot in \(picture)")
    }
}
