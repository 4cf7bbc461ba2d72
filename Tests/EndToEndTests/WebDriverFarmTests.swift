import Foundation
import Glibc
import SeqSystem
import Testing

/// The WebDriver farm's scripts, in the repository.
let webdriverDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/webdriver").path

/// A farm of real devices: each device's server is chromedriver (the W3C WebDriver protocol that
/// Appium extends), each step a Selenium client driving a headless Chromium through it to post
/// on a local page (scripts/webdriver/post-app), which logs every post.
enum WebDriverFarm {
    /// A python3 that imports selenium (the dashboard's browser test looks for the same).
    static var python: String? { DashboardTests.seleniumPython }

    /// Why the farm cannot run here, or nil.
    static let missing: String? = {
        if DashboardTests.chromedriverPath == nil { return "no chromedriver (apt-get install chromium-driver)" }
        if chromiumPath == nil { return "no chromium (apt-get install chromium)" }
        if python == nil { return "no python3 with selenium (apt-get install python3-selenium)" }
        return nil
    }()

    /// The processes of a run in `sandbox`: those whose command line names the sandbox (a
    /// Chromium has its profile there, a chromedriver its log) or whose environment carries
    /// its state directory (everything the run started inherits it; Chromium's zygotes clear
    /// theirs), with all their descendants, but `except`.
    static func processes(of sandbox: Sandbox, except: Set<Int32>) -> [ProcStat] {
        let table = Processes.all()
        var marked = Set<Int32>()
        for process in table where !except.contains(process.pid) && process.pid != getpid() {
            let commandLine = (try? FileSystem.readFile("/proc/\(process.pid)/cmdline")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let environment = (try? FileSystem.readFile("/proc/\(process.pid)/environ")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if commandLine.contains(sandbox.root) || environment.contains("SEQEXEC_STATE_DIR=\(sandbox.state)\0") { marked.insert(process.pid) }
        }
        let all = marked.union(Processes.descendants(of: marked, in: table).map(\.pid)).subtracting(except)
        return table.filter { all.contains($0.pid) }
    }
}

/// seqpipe with real device servers: two devices, each served by chromedriver, jobs posted
/// through Selenium and headless Chromium, a worker and a server killed with -9 on the way.
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: WebDriverFarm.missing == nil,
                                                      "no WebDriver farm here (\(WebDriverFarm.missing ?? "")): the farm test skips"))
struct WebDriverFarmTests {
    /// Every job is posted exactly once, no two posts of a job or on a device overlap, and
    /// once the run is over nothing of it is left: no chromedriver, no Chromium (its
    /// crashpad handlers, which leave their parent, included).
    @Test func aFarmOfBrowsersPostsEveryJobOnceThroughKillsOfAWorkerAndAServer() throws {
        let pipeline = try PipelineSandbox(devices: 0)
        let sandbox = pipeline.sandbox
        let python = try #require(WebDriverFarm.python)
        let log = sandbox.path("posts.log"), profiles = sandbox.path("profiles")
        try FileManager.default.createDirectory(atPath: profiles, withIntermediateDirectories: true)
        // The page jobs post to; its first line is its port.
        let app = try sandbox.start(python, [webdriverDirectory + "/post-app", log])
        #expect(waitUntil(20) { app.stdout.hasSuffix("\n") || !app.isRunning }, "\(app.stderr)")
        let appURL = "http://127.0.0.1:\(try #require(Int(app.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(app.stderr)"))"
        let step = webdriverDirectory + "/post-step"
        try pipeline.configure(step: [
            "run": [python, step, "post", "{job_id}", "{device}", "http://127.0.0.1:{appium_port}", appURL, log, profiles],
            "check": [python, step, "check", "{job_id}", appURL], "timeout_seconds": 60, "attempts": 2,
        ], extra: [
            "workers": ["idle_poll_seconds": 0.05, "stop_grace_seconds": 2, "kill_grace_seconds": 2, "restart_delay_seconds": 0.05,
                        "appium_port_base": DeviceServerTests.port(4)],
            "health": ["timeout_seconds": 2, "retry_seconds": 0.1, "restart_wait_seconds": 0.5, "server_start_seconds": 30],
        ])
        for device in ["b0", "b1"] {
            let (status, _, err) = try pipeline.pipe([
                "device", "add", device, "--url", "http://127.0.0.1:{appium_port}/status",
                "--server", "chromedriver --port={appium_port} --log-path=\(sandbox.path("chromedriver-\(device).log"))",
            ])
            try #require(status == 0, "device add: \(err)")
        }
        let jobs = (0..<8).map { "w\($0)" }
        try pipeline.addJobs(jobs.map { ($0, "post", "acct-\($0)") })
        let run = try pipeline.start(["run", "--once"])

        // A worker killed in the middle of a post, then a device server.
        func started() -> [String] { sandbox.lines("posts.log").filter { $0.hasPrefix("start ") } }
        #expect(waitUntil(60) { !started().isEmpty }, "no post started: \(run.stderr)")
        // What the check at the end looks for is found while the run goes on.
        var running = Set<String>()
        #expect(waitUntil(30) {
            running = Set(WebDriverFarm.processes(of: sandbox, except: [app.pid]).map(\.command))
            return running.contains("chromedriver") && running.contains { $0.hasPrefix("chromium") || $0.hasPrefix("chrome") }
        }, "\(running.sorted())")
        let worker = try #require(waitFor(30) { try? pipeline.workerPid(0) })
        // Its own server goes with it; the one killed next is another worker's.
        let itsTree = Set(Processes.descendants(of: [worker]).map(\.pid))
        kill(worker, SIGKILL)
        let server = try #require(waitFor(60) { () -> Int32? in
            let devices = (try? pipeline.status()["devices"] as? [[String: Any]]) ?? []
            return devices.compactMap { device -> Int32? in
                guard let server = device["server"] as? [String: Any], server["state"] as? String == "up", let pid = server["pid"] as? Int else { return nil }
                return Int32(pid)
            }.first { !itsTree.contains($0) && sandbox.isAlive($0) }
        }, "no other server came up: \(run.stderr)")
        kill(server, SIGKILL)

        #expect(run.wait(180) == 0, "\(run.stderr)")
        let outcomes = try pipeline.jobs()
        #expect(jobs.allSatisfy { outcomes[$0]?.status == "success" }, "\(outcomes)")
        // The page's log, not the store, says what was posted.
        let lines = sandbox.lines("posts.log").map { $0.split(separator: " ").map(String.init) }
        var posts: [String: Int] = [:]
        for fields in lines where fields.first == "posted" { posts[fields[1], default: 0] += 1 }
        print("webdriver farm: \(posts.count) of \(jobs.count) jobs posted, \(posts.values.filter { $0 > 1 }.count) twice; worker \(worker) and server \(server) killed with -9")
        #expect(jobs.allSatisfy { posts[$0] == 1 }, "\(posts)")
        #expect(!lines.contains { $0.first?.hasPrefix("overlap-") == true }, "\(lines)")
        let events = try pipeline.pipe(["events", "--limit", "500"]).1
        // The killed server's worker starts another (seeing it exit, or its step fail first).
        #expect(events.contains("worker-died") && (events.contains("device-server-exited") || events.contains("device-server-restart")), "\(events)")
        #expect(events.components(separatedBy: "device-server-up").count - 1 >= 4, "\(events)")

        // Nothing of the run is left once it is over (the page aside, ended here).
        app.signal(SIGKILL)
        _ = app.wait(10)
        let left = WebDriverFarm.processes(of: sandbox, except: [])
        #expect(left.isEmpty, "left running: \(left.map { "\($0.pid) \($0.command)" })")
        sandbox.extraPids += left.map(\.pid)
    }
}

/// The value `body` gives once it gives one, within `seconds`; nil after.
func waitFor<T>(_ seconds: Double, _ body: () -> T?) -> T? {
    var value: T?
    _ = waitUntil(seconds) {
        value = body()
        return value != nil
    }
    return value
}
