import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// A worker's care of its device: the health check before each claim, graded recovery, and
/// the device's own commands, all through the guard.
extension Worker {
    /// A device shell command (health, restart, stop) through the guard.
    mutating func runDeviceCommand(_ command: String, label: String, timeout: Double) -> StepResult? {
        guard let filled = try? placeholders(job: nil).fill(command) else {
            log("\(label) command '\(command)' has a placeholder with no value; only {device}, {worker}, {appium_port}, {system_port} are known there")
            return nil
        }
        return run(["/bin/sh", "-c", filled], timeout: timeout, memoryLimitMegabytes: nil, label: label)
    }

    /// The device's status URL with this worker's placeholders filled in
    /// (`http://127.0.0.1:{appium_port}/status`).
    func statusURL(_ device: Device) -> String? {
        device.statusURL.map { (try? placeholders(job: nil).fill($0)) ?? $0 }
    }

    /// How one look at the device went.
    enum Probe {
        /// No status URL and no health command: nothing to ask.
        case unchecked
        /// The worker is stopping or orphaned.
        case interrupted
        case answered(seconds: Double)
        case failed(String)
    }

    /// One look at the device: its status URL, else its health command, within the health
    /// timeout. Used before each claim and after each step.
    mutating func probe(_ device: Device) -> Probe {
        let started = Clock.monotonicNanoseconds()
        func elapsed() -> Double { Double(Clock.monotonicNanoseconds() - started) / 1e9 }
        if let url = statusURL(device) {
            do {
                let response = try HTTPProbe.get(url, timeoutMilliseconds: Int(config.healthTimeoutSeconds * 1000), cancel: lifeline)
                return (200..<300).contains(response.status) ? .answered(seconds: elapsed()) : .failed("\(url) answered HTTP \(response.status)")
            } catch where error == .operationCanceled {
                noteOrphaned()
                return .interrupted
            } catch {
                return .failed("\(url): \(error == .timedOut ? "no answer within \(formatDuration(config.healthTimeoutSeconds))" : "\(error)")")
            }
        }
        guard let command = device.healthCommand else { return .unchecked }
        guard let result = runDeviceCommand(command, label: "health check", timeout: config.healthTimeoutSeconds) else {
            return .failed("health command has an unknown placeholder")
        }
        if stopping { return .interrupted }
        return result.succeeded ? .answered(seconds: elapsed()) : .failed("health command: \(result.endingText) \(result.lastLine)")
    }

    /// A device held (a cooldown after trouble, a failed restart, a busy port) or paused by
    /// hand is waited out before anything else is tried on it, a poll at a time, so a
    /// `device release` or `resume` takes effect within one poll. Returns true when it is
    /// neither.
    mutating func waitOutHold(_ device: Device) throws(StoreError) -> Bool {
        let now = Moment.now()
        if device.paused {
            try record(.paused)
            _ = pause(config.idlePollSeconds)
            return false
        }
        guard let until = device.cooldownUntil, until > now else { return true }
        try record(device.healthy ? .cooldown : .unhealthy)
        _ = pause(min(until - now, config.idlePollSeconds))
        return false
    }

    /// The health check before a job. Returns true when the worker may claim.
    mutating func checkHealth(_ device: Device) throws(StoreError) -> Bool {
        lastResponseSeconds = nil
        switch probe(device) {
        case .unchecked: return true
        case .interrupted: return false
        case .answered(let seconds):
            lastResponseSeconds = seconds
            recoveryGrade = 0
            _ = try store.recordHealth(device: deviceName, ok: true, responseMilliseconds: Int(seconds * 1000), error: nil, now: Moment.now())
            return true
        case .failed(let message):
            try healthFailed(device, problem: message)
            return false
        }
    }

    /// A failed check (or a server that would not start): counted; after
    /// `failures_before_restart` in a row, the next grade of recovery; with none left, the
    /// device is held for `restart_wait_seconds`.
    mutating func healthFailed(_ device: Device, problem: String) throws(StoreError) {
        let failures = try store.recordHealth(device: deviceName, ok: false, responseMilliseconds: nil, error: problem, now: Moment.now())
        log("health check failed (\(failures) in a row): \(problem)")
        guard failures >= config.failuresBeforeRestart else {
            _ = pause(config.healthRetrySeconds)
            return
        }
        if try recoverDevice(device, reason: "after \(failures) failed health checks", job: nil) {
            _ = pause(config.healthRetrySeconds)
            return
        }
        let reason = device.restartCommand == nil && device.serverRestartCommand == nil && device.server == nil
            ? "\(failures) failed health checks and no restart command; waiting \(formatDuration(config.restartWaitSeconds))"
            : "\(failures) failed health checks after its server and device restarts; waiting \(formatDuration(config.restartWaitSeconds))"
        log(reason)
        try store.holdDevice(deviceName, until: Moment.now() + config.restartWaitSeconds, reason: reason)
        recoveryGrade = 0
        // The hold is waited out by waitOutHold, which a release ends early.
    }

    /// The next grade of recovery that the device has a command for: its server's restart
    /// (the worker's own server, else the `server_restart` command), then its own. Returns
    /// false when no grade is left (a failed restart moves on to the next grade at once).
    mutating func recoverDevice(_ device: Device, reason: String, job: String?) throws(StoreError) -> Bool {
        while recoveryGrade < 2 {
            recoveryGrade += 1
            let isServer = recoveryGrade == 1
            guard isServer ? (device.server != nil || device.serverRestartCommand != nil) : device.restartCommand != nil else { continue }
            let kind: EventKind = isServer ? .deviceServerRestart : .deviceRestart
            log("\(isServer ? "restarting the device's server" : "restarting the device") (recovery grade \(recoveryGrade) of 3): \(reason)")
            try store.addEvent(Event(at: Moment.now(), kind: kind, job: job, device: deviceName, worker: index,
                                     message: "recovery grade \(recoveryGrade) of 3: \(reason)"))
            if isServer, let argv = device.server {
                if try restartServer(device, argv: argv, reason: reason) { return true }
                continue
            }
            let command = (isServer ? device.serverRestartCommand : device.restartCommand)!
            if let result = runDeviceCommand(command, label: kind.rawValue, timeout: max(config.restartWaitSeconds, 60)), result.succeeded { return true }
        }
        return false
    }
}
