import Foundation
import Glibc
import Testing

/// Device servers run by their workers: a simulated server (sim-device listening on the
/// worker's Appium port) is started, health-checked, restarted after it dies, and gone after
/// stop-all and after kill -9 of its worker; a port already taken is reported with its holder.
@Suite(.serialized) struct DeviceServerTests {
    /// A pipeline whose one device has a server on a port of its own (tests run side by side).
    static func pipeline(port: Int) throws -> PipelineSandbox {
        let pipeline = try PipelineSandbox(devices: 0)
        try pipeline.configure(extra: [
            "workers": ["idle_poll_seconds": 0.05, "stop_grace_seconds": 2, "kill_grace_seconds": 1, "restart_delay_seconds": 0.05,
                        "appium_port_base": port],
            "health": ["timeout_seconds": 1, "retry_seconds": 0.05, "restart_wait_seconds": 0.5, "server_start_seconds": 20],
        ])
        // The device's stop command notes whether the server's port still answered then.
        let probe = "import socket; s = socket.socket(); print('open' if s.connect_ex(('127.0.0.1', \(port))) == 0 else 'closed')"
        let (status, _, err) = try pipeline.pipe([
            "device", "add", "d0", "--url", "http://127.0.0.1:{appium_port}/status",
            "--server", "\(simDirectory)/sim-device --port {appium_port}",
            "--stop", "python3 -c \"\(probe)\" >> \(pipeline.sandbox.path("stops.log"))",
        ])
        try #require(status == 0, "device add: \(err)")
        return pipeline
    }

    /// A port no other test of this run picks: the pid spreads them, the test's number apart.
    static func port(_ offset: Int) -> Int { 20000 + Int(getpid() % 2000) * 8 + offset * 2 }

    /// The device's server as status --json shows it.
    static func server(_ pipeline: PipelineSandbox) throws -> [String: Any] {
        let devices = try pipeline.status()["devices"] as? [[String: Any]] ?? []
        return devices.first?["server"] as? [String: Any] ?? [:]
    }

    static func upPid(_ pipeline: PipelineSandbox) -> Int32? {
        guard let server = try? server(pipeline), server["state"] as? String == "up", let pid = server["pid"] as? Int else { return nil }
        return Int32(pid)
    }

    static func events(_ pipeline: PipelineSandbox) throws -> String { try pipeline.pipe(["events", "--limit", "500"]).1 }

    @Test func aServerIsStartedCheckedRestartedAfterItDiesAndEndedBeforeThePhoneStops() throws {
        let port = Self.port(0)
        let pipeline = try Self.pipeline(port: port)
        let sandbox = pipeline.sandbox
        try pipeline.addJobs((0..<3).map { ("j\($0)", "ok", "acct\($0)") })
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(60) { (try? pipeline.jobs().values.allSatisfy { $0.status == "success" }) ?? false }, "\(run.stderr)")
        // Up, answering on the worker's port, and the same process after three jobs: no
        // step's teardown touched it.
        let first = try #require(Self.upPid(pipeline), "\((try? Self.server(pipeline)) ?? [:])")
        #expect(sandbox.isAlive(first))
        #expect(try Self.server(pipeline)["port"] as? Int == port)
        var events = try Self.events(pipeline)
        #expect(events.components(separatedBy: "device-server-up").count == 2, "\(events)")
        #expect(!events.contains("device-server-exited"))

        // It dies by itself: its worker starts it again.
        let exit = try sandbox.start("/usr/bin/env", ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:\(port)/exit')"])
        #expect(exit.wait(20) == 0, "\(exit.stderr)")
        #expect(waitUntil(30) { Self.upPid(pipeline).map { $0 != first } ?? false }, "\((try? Self.events(pipeline)) ?? "")")
        #expect(!sandbox.isAlive(first))
        let second = try #require(Self.upPid(pipeline))
        events = try Self.events(pipeline)
        #expect(events.contains("device-server-exited") && events.contains("exit status 3"), "\(events)")
        // It serves jobs again.
        try pipeline.addJobs([("after", "ok", "acct-after")])
        #expect(waitUntil(30) { (try? pipeline.jobs()["after"]?.status) == "success" })

        // stop-all ends the server, then the phone's stop runs (and finds the port closed).
        let (stopped, out, err) = try pipeline.pipe(["stop-all"])
        #expect(stopped == 0, "\(out)\(err)")
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(!sandbox.isAlive(second))
        #expect(sandbox.lines("stops.log") == ["closed"])
        let server = try Self.server(pipeline)
        #expect(server["state"] as? String == "stopped" && server["pid"] is NSNull, "\(server)")
        let devices = try pipeline.status()["devices"] as? [[String: Any]] ?? []
        #expect(devices.first?["phone"] as? String == "stopped")
        let (_, text, _) = try pipeline.pipe(["status"])
        #expect(text.contains("server stopped (port \(port)") && text.contains("phone stopped"), "\(text)")
    }

    @Test func aWorkerKilledWithSIGKILLLeavesNoServerBehind() throws {
        let port = Self.port(1)
        let pipeline = try Self.pipeline(port: port)
        let sandbox = pipeline.sandbox
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(30) { Self.upPid(pipeline) != nil }, "\(run.stderr)")
        let server = try #require(Self.upPid(pipeline))
        let worker = try #require(try pipeline.workerPid(0))
        kill(worker, SIGKILL)
        // The server goes with its worker, and the next worker starts one of its own.
        #expect(waitUntil(20) { !sandbox.isAlive(server) })
        #expect(waitUntil(30) { Self.upPid(pipeline).map { $0 != server } ?? false }, "\((try? Self.events(pipeline)) ?? "")")
        let replacement = try #require(Self.upPid(pipeline))
        let events = try Self.events(pipeline)
        #expect(events.contains("worker-died") && events.contains("fence-done"), "\(events)")
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(!sandbox.isAlive(replacement))
        // One stop of the phone, by the replacement: the killed worker ran none.
        #expect(sandbox.lines("stops.log") == ["closed"])
    }

    @Test func aPortAlreadyTakenIsReportedWithItsHolder() throws {
        let port = Self.port(2)
        let pipeline = try Self.pipeline(port: port)
        let sandbox = pipeline.sandbox
        // Another process listens on the worker's port first.
        let squatter = try sandbox.start(simDirectory + "/sim-device", ["--port", String(port)])
        #expect(waitUntil(20) { squatter.stdout.hasPrefix("ready") || !squatter.isRunning }, "\(squatter.stderr)")
        try pipeline.addJobs([("j0", "ok", "acct0")])
        let run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(30) { (try? Self.events(pipeline).contains("device-server-port-busy")) ?? false }, "\(run.stderr)")
        let events = try Self.events(pipeline)
        #expect(events.contains("port \(port) is already in use by pid \(squatter.pid) (python3)"), "\(events)")
        let alerts = try pipeline.status()["alerts"] as? [[String: Any]] ?? []
        #expect(alerts.contains { ($0["message"] as? String)?.contains("pid \(squatter.pid)") == true }, "\(alerts)")
        // Nothing ran on a device whose server could not start.
        #expect(try pipeline.jobs()["j0"]?.status == "pending")
        #expect(squatter.isRunning)
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
    }

    /// A clash is one event and one alert however often the worker finds it again; the waiting
    /// jobs name the held device in a few words, and its reason is said once, under devices;
    /// moving the ports and starting the run again ends the hold at once.
    @Test(.timeLimit(.minutes(3))) func aPortClashIsSaidOnceAndMovingThePortsEndsItsHold() throws {
        let port = Self.port(3)
        let pipeline = try Self.pipeline(port: port)
        let sandbox = pipeline.sandbox
        let squatter = try sandbox.start(simDirectory + "/sim-device", ["--port", String(port)])
        defer { squatter.signal(SIGTERM); _ = squatter.wait(10) }
        #expect(waitUntil(20) { squatter.stdout.hasPrefix("ready") || !squatter.isRunning }, "\(squatter.stderr)")
        try pipeline.addJobs((0..<5).map { ("j\($0)", "ok", "acct\($0)") })
        var run = try pipeline.start(["run", "--workers", "1"])
        // The worker finds the clash again after each 0.5 s hold: three times, in its log.
        let log = ".seqpipe/logs/worker_0.log"
        #expect(waitUntil(60) { sandbox.read(log).components(separatedBy: "is already in use by pid \(squatter.pid)").count > 3 }, "\(sandbox.read(log))")
        var events = try Self.events(pipeline)
        #expect(events.components(separatedBy: "device-server-port-busy").count == 2, "one event for one clash: \(events)")
        #expect(events.components(separatedBy: "device-unhealthy").count == 2, "one hold event for one clash: \(events)")
        let alerts = try pipeline.status()["alerts"] as? [[String: Any]] ?? []
        #expect(alerts.filter { ($0["key"] as? String)?.hasPrefix("server-port:") == true }.count == 1, "\(alerts)")
        // The clash's words once, under devices; each waiting job a short line.
        let (_, status, _) = try pipeline.pipe(["status"])
        let (devicesPart, alertsPart) = (status.components(separatedBy: "\ndevices:\n"), status.components(separatedBy: "\nalerts:\n"))
        #expect(devicesPart.count == 2 && devicesPart[1].contains("already in use by pid \(squatter.pid)"), "\(status)")
        #expect(alertsPart.count == 2 && alertsPart[1].components(separatedBy: "already in use by pid \(squatter.pid)").count == 2, "once under devices, once as the alert: \(status)")
        let waiting = try pipeline.status()["waiting"] as? [[String: Any]] ?? []
        #expect(waiting.count == 5 && waiting.allSatisfy { ($0["reason"] as? String ?? "").count < 120 }, "\(waiting)")
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")

        // A long hold, then the ports move: the next run does not wait it out.
        #expect(try pipeline.pipe(["config", "set", "health.restart_wait_seconds", "600"]).0 == 0)
        run = try pipeline.start(["run", "--workers", "1"])
        #expect(waitUntil(60) {
            let devices = (try? pipeline.status()["devices"] as? [[String: Any]]) ?? []
            // This run's hold (600 s), not what is left of the last one's (0.5 s).
            guard let text = devices.first?["cooldown_until"] as? String, let until = ISO8601DateFormatter().date(from: text) else { return false }
            return until.timeIntervalSinceNow > 300
        }, "held: \(run.stderr)")
        run.signal(SIGTERM)
        #expect(run.wait(30) == 0, "\(run.stderr)")
        #expect(try pipeline.pipe(["config", "set", "workers.appium_port_base", String(port + 1)]).0 == 0)
        run = try pipeline.start(["run", "--workers", "1"])
        defer { run.signal(SIGTERM); _ = run.wait(30) }
        #expect(waitUntil(60) { (try? pipeline.jobs().values.allSatisfy { $0.status == "success" }) ?? false },
                "the jobs ran long before the 600 s hold would have ended: \(run.stderr)")
        events = try Self.events(pipeline)
        #expect(events.contains("device-released") && events.contains("whose server port moved from \(port) to \(port + 1)"), "\(events)")
        #expect(try pipeline.status()["alerts"].map { "\($0)" }?.contains("server-port:") == false, "the alert cleared once the server started")
    }
}
