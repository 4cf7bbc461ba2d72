import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// A worker's own device server (a device's `server` argv): started before the first claim,
/// checked before each one, restarted as the first grade of recovery or when it died, ended
/// when the worker stops. It runs under a `seqpipe device-server` member of the worker's tree
/// that holds the device's lock, so a worker killed with -9 leaves nothing the fence of its
/// device does not end.
extension Worker {
    enum ServerStart {
        case up
        /// The worker is stopping or orphaned.
        case interrupted
        /// Another process listens on the server's port.
        case portBusy(String)
        case failed(String)
    }

    /// The server is up, or was started now. False when the worker must not claim yet: the
    /// start failed (charged as a failed health check) or the port is taken (the device is
    /// held, an alert raised).
    mutating func ensureServer(_ device: Device) throws(StoreError) -> Bool {
        guard let argv = device.server else { return true }
        if let running = server {
            if running.member.isAlive { return true }
            server = nil
            let how = Self.ending(of: running)
            let message = "its server (pid \((running.server ?? running.member).pid)) ended by itself (\(how)); starting it again"
            log(message)
            try store.addEvent(Event(at: Moment.now(), kind: .deviceServerExited, device: deviceName, worker: index, message: message))
            try store.recordServer(device: deviceName, state: .exited, process: nil, port: running.port, note: how, now: Moment.now())
        }
        switch try startServer(device, argv: argv) {
        case .up:
            return true
        case .interrupted:
            return false
        case .portBusy(let message):
            // Waited out by waitOutHold, a poll at a time: a release ends it early.
            try store.holdDevice(deviceName, until: Moment.now() + config.restartWaitSeconds, reason: message)
            return false
        case .failed(let message):
            try healthFailed(device, problem: message)
            return false
        }
    }

    /// A hold for a port clash on a port this worker no longer uses (the config's ports were
    /// moved, then the run started again) is void: ended now, not waited out.
    mutating func releaseHoldOfAnotherPort() {
        let port = config.appiumPort(worker: index)
        guard let device = try? store.device(deviceName), device.serverState == .portBusy, let clashed = device.serverPort, clashed != port,
              let until = device.cooldownUntil, until > Moment.now() else { return }
        log("the hold for the clash on port \(clashed) ends: this worker's server port is \(port) now")
        _ = try? store.releaseDevice(deviceName, by: "worker \(index), whose server port moved from \(clashed) to \(port)")
    }

    /// Starts the server and waits (up to `health.server_start_seconds`) until its status URL
    /// answers, or, without one, until its port is listened on.
    mutating func startServer(_ device: Device, argv template: [String]) throws(StoreError) -> ServerStart {
        let port = config.appiumPort(worker: index)
        let argv: [String]
        do { argv = try placeholders(job: nil).fill(template) } catch {
            return .failed("server \(GuardedCommand.displayCommand(template)): \(error.message)")
        }
        if let busy = busyPort(device, port: port) {
            // One clash is one event and one alert: the same holder found again on a later
            // try (after each hold) is said in the worker's log only.
            let again = device.serverState == .portBusy && device.serverPort == port && device.serverNote == busy
            log(again ? "still: \(busy)" : busy)
            try store.recordServer(device: deviceName, state: .portBusy, process: nil, port: port, note: busy, now: Moment.now())
            if !again {
                try store.addEvent(Event(at: Moment.now(), kind: .deviceServerPortBusy, device: deviceName, worker: index, message: busy))
                _ = try store.raiseAlert("server-port:\(deviceName)", kind: .serverPort, message: busy, now: Moment.now())
            }
            return .portBusy(busy)
        }
        _ = try store.clearAlert("server-port:\(deviceName)", now: Moment.now())
        guard let paths, let deviceLock, let storeLock = locks?.inherited else {
            return .failed("a device server is started only by a worker of 'seqpipe run'")
        }
        let executable = (try? FileSystem.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        var orders = MemberOrders(.deviceServer, parent: Processes.currentPid, lockDescriptor: storeLock.rawValue, configVersion: config.version)
        (orders.index, orders.device, orders.deviceLockDescriptor, orders.server) = (index, deviceName, deviceLock.rawValue, argv)
        let command = orders.command(executable: executable, paths: paths)
        let logPath = paths.serverLog(worker: index)
        let output: FileDescriptor
        do { output = try FileSystem.open(logPath, [.writeOnly, .create, .append], mode: 0o644) } catch {
            return .failed("cannot open the server's log \(logPath): \(error)")
        }
        defer { output.close() }
        let input = try? FileSystem.open("/dev/null", [.readOnly])
        defer { input?.close() }
        try? output.writeAll("--- [\(Clock.isoUTC(Clock.wallTime()))] worker \(index) starts: \(GuardedCommand.displayCommand(argv))\n")
        let member: ProcessIdentity
        do {
            // A group of its own: a terminal's Ctrl-C reaches the worker, which ends the
            // server in order after its step, not the server mid-step.
            let pid = try Spawn.spawn(command, environment: paths.memberStore(runner.environment).environment, resetSignals: signals.signalsToReset(), input: input,
                                      output: output, newProcessGroup: true)
            member = ProcessIdentity(pid: pid, startTime: (try? ProcStat.read(pid).startTime) ?? 0)
        } catch {
            return .failed("cannot start \(executable) device-server: \(error)")
        }
        server = RunningServer(member: member, server: nil, port: port)
        log("starting its server (pid \(member.pid) guards it; output in \(logPath)): \(GuardedCommand.displayCommand(argv))")
        try store.recordServer(device: deviceName, state: .starting, process: member, port: port, note: nil, now: Moment.now())

        return try waitForTheServer(device, guardedBy: member, port: port, watchesPort: template.contains { $0.contains("{appium_port}") }, logPath: logPath)
    }

    /// Waits (up to `health.server_start_seconds`) until the starting server answers, and
    /// records how its start ended: up, exited, or silent (then it is ended).
    mutating func waitForTheServer(
        _ device: Device, guardedBy member: ProcessIdentity, port: Int, watchesPort: Bool, logPath: String
    ) throws(StoreError) -> ServerStart {
        let started = Clock.monotonicNanoseconds()
        let deadline = started + Int64(config.serverStartSeconds * 1e9)
        while true {
            if server?.server == nil, let child = Processes.descendants(of: [member.pid]).first(where: { $0.parent == member.pid }) {
                server?.server = child.identity
            }
            guard member.isAlive else {
                let how = Self.ending(of: server!)
                server = nil
                let last = Self.lastLine(of: logPath)
                let message = "its server exited during its start (\(how))\(last.isEmpty ? "" : ": \(last)"); see \(logPath)"
                log(message)
                try store.recordServer(device: deviceName, state: .failed, process: nil, port: port, note: message, now: Moment.now())
                try store.addEvent(Event(at: Moment.now(), kind: .deviceServerFailed, device: deviceName, worker: index, message: message))
                return .failed(message)
            }
            if serverAnswers(device, port: port, watchesPort: watchesPort, deadline: deadline) { break }
            if Clock.monotonicNanoseconds() >= deadline {
                let message = "its server did not answer \(statusURL(device) ?? "on port \(port)") within \(formatDuration(config.serverStartSeconds)); ended it"
                stopServer(reason: message, state: .failed)
                log(message)
                try store.addEvent(Event(at: Moment.now(), kind: .deviceServerFailed, device: deviceName, worker: index, message: message))
                return .failed(message)
            }
            if !pause(0.2) {
                stopServer(reason: "the worker stopped during the server's start")
                return .interrupted
            }
        }
        let seconds = Double(Clock.monotonicNanoseconds() - started) / 1e9
        let process = server?.server ?? member
        let message = "its server is up (pid \(process.pid), port \(port)) after \(formatDuration((seconds * 100).rounded() / 100))"
        log(message)
        try store.recordServer(device: deviceName, state: .up, process: process, port: port, note: nil, now: Moment.now())
        try store.addEvent(Event(at: Moment.now(), kind: .deviceServerUp, device: deviceName, worker: index, message: message))
        return .up
    }

    /// One look at a starting server: its status URL answers 2xx; without a URL, something
    /// listens on its port (when its argv names the port), else it counts as up once started.
    mutating func serverAnswers(_ device: Device, port: Int, watchesPort: Bool, deadline: Int64) -> Bool {
        if let url = statusURL(device) {
            let left = Int((deadline - Clock.monotonicNanoseconds()) / 1_000_000)
            let timeout = max(50, min(Int(config.healthTimeoutSeconds * 1000), left))
            guard let response = try? HTTPProbe.get(url, timeoutMilliseconds: timeout, cancel: lifeline) else { return false }
            return (200..<300).contains(response.status)
        }
        return !watchesPort || !TCPListeners.sockets(port: port).isEmpty
    }

    /// Why the server cannot start on `port` (and on the status URL's port, when that is on
    /// this machine): who listens there already. Nil when the ports are free.
    func busyPort(_ device: Device, port: Int) -> String? {
        var ports = [port]
        if let url = statusURL(device), let target = HTTPProbe.parse(url), ["127.0.0.1", "localhost", "::1", "[::1]"].contains(target.host),
           Int(target.port) != port {
            ports.append(Int(target.port))
        }
        for candidate in ports {
            let sockets = TCPListeners.sockets(port: candidate)
            guard !sockets.isEmpty else { continue }
            let holders = TCPListeners.holders(of: sockets)
            let who = holders.isEmpty
                ? "a process this user cannot see"
                : holders.map { "pid \($0.pid) (\($0.command))" }.joined(separator: ", ")
            let address = Set(sockets.map(\.address)).sorted().joined(separator: ", ")
            return "port \(candidate) is already in use by \(who), listening on \(address): device \(deviceName)'s server not started; "
                + "end that process or move the workers' ports (workers.appium_port_base)"
        }
        return nil
    }

    /// Ends the server's whole tree through the guard's teardown: SIGTERM to its guard, which
    /// passes it on, then SIGKILL to whatever is left after the grace.
    mutating func stopServer(reason: String, state: ServerState = .stopped) {
        guard let running = server else { return }
        server = nil
        let report = Teardown([.send(.terminate, grace: 2 * config.killGraceSeconds + 1)]).run(
            find: Teardown.TreeFinder(roots: [running.member], rootsOnlyFor: [.terminate]).find,
            reap: { _ = try? Spawn.reap(running.member.pid) })
        let killed = report.ended.filter { report.killed.contains($0.process) }
        let pid = (running.server ?? running.member).pid
        log("ended its server (pid \(pid))\(killed.isEmpty ? "" : " with SIGKILL"): \(reason)")
        try? store.recordServer(device: deviceName, state: state, process: nil, port: running.port, note: reason, now: Moment.now())
    }

    /// The server restarted by its worker: the first grade of recovery for a device whose
    /// server the worker runs.
    mutating func restartServer(_ device: Device, argv: [String], reason: String) throws(StoreError) -> Bool {
        stopServer(reason: "restart: \(reason)")
        if case .up = try startServer(device, argv: argv) { return true }
        return false
    }

    /// How a server's guard ended, if this worker can still tell (a step's supervision may
    /// have reaped it first).
    static func ending(of running: RunningServer) -> String {
        guard let status = try? Spawn.reap(running.member.pid) else { return "it is gone" }
        return "exit status \(status.shellExitCode)"
    }

    /// The last non-empty line of a log, for the one-line reason.
    static func lastLine(of path: String) -> String {
        guard let file = try? FileSystem.open(path, [.readOnly]) else { return "" }
        defer { file.close() }
        guard let (bytes, _) = try? file.readTail(maximum: 4096) else { return "" }
        let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").last { !$0.allSatisfy { $0 == " " || $0 == "\r" } }
        return line.map { String($0.prefix(200)) } ?? ""
    }
}
