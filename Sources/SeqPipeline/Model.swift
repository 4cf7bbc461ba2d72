import SeqGuard
import SeqSystem

/// A job's place in its life: pending → claimed → running → success | failed | retrying | cancelled.
public enum JobStatus: String, Sendable, CaseIterable {
    case pending, claimed, running, success, failed, retrying, cancelled
}

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
    /// What its worker last said of that server: starting, up, exited, stopped, port-busy,
    /// failed; with the server's process, its port, since when, and why.
    public var serverState: String?
    public var serverProcess: ProcessIdentity?
    public var serverPort: Int?
    public var serverSince: Double?
    public var serverNote: String?
    /// The phone itself: up (it answered its last check), not answering, stopped (its stop
    /// command ran), stop failed; nil before anything was heard of it.
    public var phoneState: String?
    public var phoneSince: Double?
    public var healthy = true
    public var healthFailures = 0
    public var infraFailures = 0
    public var cooldownUntil: Double?
    public var cooldownLevel = 0
    public var responseMilliseconds: Int?
    public var lastCheck: Double?
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
            if HTTPProbe.parse(filled) == nil { throw ConfigError(message: "--url '\(url)' must look like http://HOST:PORT/PATH") }
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
    public func serverState(localHost: String) -> String? {
        guard let state = serverState else { return nil }
        if state == "up" || state == "starting", let process = serverProcess, host.isEmpty || host == localHost, !process.isAlive {
            return "gone"
        }
        return state
    }
}

/// An account jobs post to, with its own limits and failure budget.
public struct Account: Sendable {
    public var name: String
    /// Successful jobs a day; 0 means no limit.
    public var dailyLimit = 0
    public var paused = false
    public var pausedReason: String?
    public var infraFailures = 0
    public var cooldownUntil: Double?
    public var cooldownLevel = 0
    /// Resting after its last job (`account_rest_seconds`) until then.
    public var restUntil: Double?

    public init(name: String) { self.name = name }
}

/// One priority vocabulary for jobs, the CSV and recurring jobs: P0 (first) to P3, with
/// high, normal and low as names for P0, P2 and P3 (seqexec's levels), or a whole number
/// (higher first). A job's number: P0 2, P1 1, P2 0 (the default), P3 -1.
public enum JobPriority {
    public static let vocabulary = "P0 (first) to P3, high, normal, low, or a whole number (higher first)"

    public static func parse(_ text: String) -> Int? {
        switch text.lowercased() {
        case "p0", "high": return 2
        case "p1": return 1
        case "p2", "normal": return 0
        case "p3", "low": return -1
        default: return Int(text)
        }
    }
}

/// A job as stored: its work (payload) and its progress.
public struct Job: Sendable {
    public var id: String
    public var account: String
    /// Flat string fields (video, caption, …) the steps' placeholders read.
    public var payload: [(String, String)] = []
    public var status = JobStatus.pending
    public var priority = 0
    public var worker: Int?
    public var device: String?
    public var claimedAt: Double?
    public var completedAt: Double?
    /// Attempts charged to the job itself (infrastructure failures and stops are not).
    public var attempts = 0
    public var maxAttempts = 3
    /// Every run of the job, whatever ended it: `{attempt}`, unique per run.
    public var runs = 0
    /// Steps done, in order: a later run starts after them.
    public var progress = 0
    /// Runs that ended with the worker dead or the step over its memory limit.
    public var crashes = 0
    /// Infrastructure failures: a separate budget from `attempts`.
    public var infraAttempts = 0
    public var retryAt: Double?
    public var error: String?
    public var errorType: String?
    /// The device that gave up on this job after its graded recovery: another device takes
    /// it (this one only when no other is healthy).
    public var avoidDevice: String?
    /// The host whose worker holds its claim.
    public var host: String?
    /// When it was added (the store's clock).
    public var createdAt: Double?

    public init(id: String, account: String) {
        self.id = id
        self.account = account
    }

    public func field(_ name: String) -> String? { payload.first { $0.0 == name }?.1 }
}

/// A job a worker holds: every later write carries `token`.
public struct ClaimedJob: Sendable {
    public var job: Job
    public var token: String
}

/// A worker slot as the orchestrator records it.
public struct WorkerRecord: Sendable {
    /// The host whose orchestrator runs it ('' in a store from before hosts).
    public var host = ""
    public var index: Int
    public var pid: Int32
    public var startTime: UInt64
    public var device: String
    public var state: String
    public var job: String?
    public var restarts: Int
    public var heartbeatBootSeconds: Double?
}

/// A host of the farm as its lease row says: its orchestrator, when it last renewed, until
/// when the lease holds, and whether it is running, stopped cleanly or was lost (taken over).
public struct HostRecord: Sendable {
    public var name: String
    public var pid: Int32?
    public var state: String
    public var startedAt: Double?
    public var beatAt: Double?
    public var leaseUntil: Double?
    public var note: String?
}

/// What taking over a lost host did: its name, the claims put back, its devices held.
public struct HostTakeover: Sendable {
    public var host: String
    public var requeued: [String]
    public var devices: [String]
}

/// One line of the events table: what happened, to what.
public struct Event: Sendable {
    public var at: Double
    public var kind: String
    public var job: String?
    public var account: String?
    public var device: String?
    public var worker: Int?
    public var message: String
}

/// How a run of a job ended, as the worker reports it to the store.
public enum JobOutcome: Sendable {
    case success
    /// Permanent account trouble: the job fails now and the account is paused.
    case permanent(type: String, message: String)
    /// Device or server trouble: the job is retried later without charging it an attempt;
    /// the account's and the device's infrastructure counters go up.
    case infrastructure(message: String)
    /// Infrastructure trouble that outlived the device's recovery (server restart, device
    /// restart): as `infrastructure`, and the job goes to another device.
    case handOff(message: String)
    /// Anything else: retried with backoff until max_attempts.
    case retryable(message: String)
    /// The step's tree hit its memory limit: retried, and counted toward poison.
    case memory(message: String)
    /// Stopped before it finished (orchestrator shutting down): back to pending, uncharged.
    case stopped
    /// The job cannot run as defined (a placeholder its payload lacks): failed at once, the
    /// account untouched.
    case invalid(message: String)
}

/// Numbers the store needs to turn an outcome into state.
public struct FailurePolicy: Sendable {
    public var backoffBaseSeconds: Double = 30
    public var backoffCapSeconds: Double = 3600
    public var infraRetrySeconds: Double = 60
    public var cooldownAfter = 3
    public var cooldownBaseSeconds: Double = 600
    public var cooldownCapSeconds: Double = 4 * 3600
    public var poisonAfter = 3
    public var maxInfrastructureAttempts = 10
    public var requeueSpreadSeconds: Double = 30
    /// A rest for the account after each job it completes, drawn afresh from the range: the
    /// next job of the account waits for it, as for a cooldown. Nil: none.
    public var accountRestSeconds: ClosedRange<Double>?

    public init() {}

    /// Exponential backoff with full jitter: a uniform draw in [0, min(cap, base·2^(n-1))].
    public func backoff<G: RandomNumberGenerator>(failures: Int, using generator: inout G) -> Double {
        Backoff.fullJitter(attempt: failures, base: backoffBaseSeconds, cap: backoffCapSeconds, using: &generator)
    }

    /// The cooldown for the level-th cooldown in a row: base·2^level, capped.
    public func cooldown(level: Int) -> Double {
        min(cooldownCapSeconds, cooldownBaseSeconds * Double(1 << min(level, 30)))
    }
}

/// Backoff arithmetic.
public enum Backoff {
    /// A uniform draw in [0, min(cap, base·2^(attempt-1))] (AWS's "full jitter").
    public static func fullJitter<G: RandomNumberGenerator>(attempt: Int, base: Double, cap: Double, using generator: inout G) -> Double {
        let ceiling = min(cap, base * Double(1 << min(max(attempt - 1, 0), 30)))
        return ceiling <= 0 ? 0 : Double.random(in: 0...ceiling, using: &generator)
    }

    public static func fullJitter(attempt: Int, base: Double, cap: Double) -> Double {
        var generator = SystemRandomNumberGenerator()
        return fullJitter(attempt: attempt, base: base, cap: cap, using: &generator)
    }
}

/// Wall-clock seconds since the epoch, as the store keeps deadlines.
public func nowSeconds() -> Double {
    let time = Clock.wallTime()
    return Double(time.seconds) + Double(time.nanoseconds) / 1e9
}

/// `2026-11-23T10:01:02Z` for a stored time.
public func isoTime(_ seconds: Double?) -> String {
    guard let seconds else { return "" }
    return Clock.isoUTC(WallTime(seconds: Int64(seconds.rounded(.down)), nanoseconds: 0))
}

/// A duration for people: `formatSeconds`, but a short one keeps its fraction (tests and
/// demos configure milliseconds, and "0s" would hide them).
public func durationText(_ seconds: Double) -> String {
    if seconds < 10, seconds != seconds.rounded(.down) {
        let tenths = Int((seconds * 10).rounded())
        if tenths > 0 { return "\(tenths / 10).\(tenths % 10)s" }
        return "\(Int((seconds * 1000).rounded()))ms"
    }
    return formatSeconds(seconds)
}
