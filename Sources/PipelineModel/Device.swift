import SeqDatabase
import SeqGuard
import SeqSystem

/// A phone (real or cloud) driven by an Appium-style server, as the store keeps it.
public struct Device: Sendable {
    public var name: String
    /// The host whose orchestrator drives it; '' for any (a store on one host).
    public var host = ""
    /// `http://host:port/status`: its server's status endpoint, for the health check.
    public var statusURL: String?
    /// Shell commands (run with /bin/sh -c, placeholders filled in).
    public var healthCommand: String?
    /// Restarts the device's automation server (Appium): the first grade of recovery.
    public var serverRestartCommand: String?
    /// Restarts the device itself: the second grade.
    public var restartCommand: String?
    public var stopCommand: String?
    /// The device's automation server as an argv (placeholders filled in by its worker),
    /// which the worker starts, watches and ends itself; nil when it runs elsewhere.
    public var server: [String]?
    /// What its worker last said of that server, with the server's process, its port, since
    /// when, and why.
    public var serverState: ServerState?
    public var serverProcess: ProcessIdentity?
    public var serverPort: Int?
    public var serverSince: Moment?
    public var serverNote: String?
    /// The phone itself; nil before anything was heard of it.
    public var phoneState: PhoneState?
    public var phoneSince: Moment?
    public var healthy = true
    public var healthFailures = 0
    public var infraFailures = 0
    public var cooldownUntil: Moment?
    /// Paused by hand (`seqpipe device pause`): no claims until `device resume`; why, with who.
    public var paused = false
    public var pausedReason: String?
    public var cooldownLevel = 0
    public var responseMilliseconds: Int?
    public var lastCheck: Moment?
    public var lastError: String?

    public init(name: String) { self.name = name }

    /// A device as `device add` describes it, checked: the URL's form, the server's words,
    /// and every placeholder, filled with worker 0's values.
    /// - Throws: `ConfigError` naming the option and what is wrong with it.
    public static func checked(name: String, url: String?, health: String?, server: String?, serverRestart: String?, restart: String?,
                               stop: String?, host: String, config: PipelineConfig) throws(ConfigError) -> Device {
        var device = Device(name: name)
        let example = Placeholders.example(device: name, config: config)
        if let url {
            let filled: String
            do { filled = try example.fill(url) } catch { throw ConfigError(message: "--url: \(error.message)") }
            if HTTPURL.parse(filled) == nil { throw ConfigError(message: "--url '\(url)' must look like http://HOST:PORT/PATH") }
        }
        device.statusURL = url
        device.healthCommand = health
        device.restartCommand = restart
        device.serverRestartCommand = serverRestart
        device.stopCommand = stop
        device.host = host
        if let server {
            let words: [String]
            do { words = try ShellWords.split(server) } catch { throw ConfigError(message: "--server: \(error.message)") }
            if words.first?.isEmpty != false { throw ConfigError(message: "--server needs a command, such as 'appium -p {appium_port}'") }
            do { _ = try example.fill(words) } catch { throw ConfigError(message: "--server: \(error.message)") }
            device.server = words
        }
        return device
    }

    /// The server's state as it is now: one recorded as up or starting whose process is gone
    /// (its whole run was killed) reads "gone". Only the processes of `localHost` (the host
    /// this process works for) can be looked at; another host's server reads as its worker
    /// last recorded it.
    public func serverState(localHost: String) -> ServerState? {
        guard let state = serverState else { return nil }
        if state.hasProcess, let process = serverProcess, host.isEmpty || host == localHost, !process.isAlive {
            return .gone
        }
        return state
    }
}

/// A device's server as its worker records it (the store keeps the raw value).
public enum ServerState: String, Sendable, CaseIterable {
    case starting, up, exited, stopped, failed
    /// Its port was taken by another process, so it could not start.
    case portBusy = "port-busy"
    /// Recorded up or starting, but its process is gone (its whole run was killed): only
    /// ever read, never recorded.
    case gone

    /// Whether a process of it should be running: starting or up.
    public var hasProcess: Bool { self == .starting || self == .up }
}

/// The phone itself, as its checks and its stop command left it.
public enum PhoneState: String, Sendable, CaseIterable {
    /// It answered its last check.
    case up
    case notAnswering = "not answering"
    /// Its stop command ran, and ended well or not.
    case stopped
    case stopFailed = "stop failed"
}
