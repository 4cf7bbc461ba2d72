import SeqDatabase
import SeqGuard
import SeqSystem

/// A bad configuration: the file, the key and what was expected.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

/// One step of a job's pipeline: a program run through the guard.
public struct StepDefinition: Sendable {
    public var name: String
    /// argv, with `{placeholders}`; never run through a shell.
    public var run: [String]
    /// A query run before a retry of this step: exit 0 means the step's effect already
    /// happened, so the step counts as done.
    public var check: [String]?
    public var timeoutSeconds: Double
    public var memoryLimitMegabytes: Int
    public var attempts: Int
}

/// The pipeline definition and every policy the workers follow; see seqpipe(1), CONFIGURATION.
public struct PipelineConfig: Sendable {
    /// The file it was read from; nil for the defaults or a version read from the store.
    public var path: String?
    /// The store's version of it, when read from the store (a run and its members use one),
    /// and where that version came from (a file's path, or `config set KEY`).
    public var version: Int?
    public var source: String?
    public var steps: [StepDefinition] = []
    /// Run between attempts of a step to bring the device back to a known state.
    public var reset: [String]?
    /// When `reset` runs: before each job's first step, between a step's attempts, or both.
    public var resetWhen = ResetWhen.attempt
    /// Where alerts go besides the store (`alerts`): a command, a JSON-lines file.
    public var alerts = AlertOutlet()

    public enum ResetWhen: String, Sendable {
        case job, attempt, both

        public var beforeJob: Bool { self != .attempt }
        public var betweenAttempts: Bool { self != .job }
    }
    // Workers.
    public var appiumPortBase = 4723
    public var appiumPortStride = 2
    public var systemPortBase = 8200
    public var systemPortStride = 10
    public var stopGraceSeconds: Double = 30
    public var killGraceSeconds: Double = 5
    public var restartDelaySeconds: Double = 1
    public var idlePollSeconds: Double = 1
    /// A device server's memory limit over its whole tree (nil: none).
    public var serverMemoryMegabytes: Int?
    // Orchestrator.
    public var heartbeatSeconds: Double = 30
    public var hungAfterSeconds: Double = 120
    /// How long a host's lease (and the scheduler's leadership) holds without a renewal
    /// before another host takes it over; nil: three heartbeats.
    public var hostLeaseSecondsSetting: Double?
    public var hostLeaseSeconds: Double { hostLeaseSecondsSetting ?? 3 * heartbeatSeconds }
    // Delays between steps.
    public var preBaseSeconds: Double = 8
    public var postBaseSeconds: Double = 10
    public var delayCapSeconds: Double = 8
    public var delayFactor: Double = 1.5
    public var preFallbackSeconds: Double = 12
    public var postFallbackSeconds: Double = 15
    // Retries.
    public var stepBackoffBaseSeconds: Double = 2
    public var stepBackoffCapSeconds: Double = 30
    public var maxAttempts = 3
    public var policy = FailurePolicy()
    // Health.
    public var healthTimeoutSeconds: Double = 5
    public var failuresBeforeRestart = 3
    public var restartWaitSeconds: Double = 60
    public var healthRetrySeconds: Double = 10
    /// How long a device server the worker started has to answer its status URL.
    public var serverStartSeconds: Double = 60

    /// How long a stopping worker may take: its step's grace, then its device server's end
    /// (its guard's grace and the server's), before it is killed.
    public var workerStopSeconds: Double { stopGraceSeconds + 3 * killGraceSeconds + 3 }
    // Classification.
    public var permanentPatterns: [(type: String, pattern: String)] = [
        ("suspended", "suspended"), ("captcha", "captcha"), ("loggedout", "logged out"),
        ("actionblocked", "action blocked"), ("banned", "banned"),
    ]
    public var infrastructurePatterns = [
        "adb", "device offline", "appium", "uiautomator", "webdriver", "connection refused", "timeout",
    ]
    public var dayZone = "UTC"
    // Recurring jobs.
    public var recurring: [RecurringJob] = []
    public var scheduler = SchedulerPolicy()
    public var watchdog = WatchdogPolicy()
    /// Shared pools by name: how many recurring runs may hold each at once.
    public var pools: [String: Int] = [:]

    public init() {
        steps = [StepDefinition(name: "post", run: ["true"], check: nil, timeoutSeconds: 600, memoryLimitMegabytes: 2048, attempts: 3)]
    }

    /// The file `seqpipe init` writes: every key with its default.
    public static let defaultText = """
        {
          "steps": [
            {"name": "post", "run": ["echo", "posting {video} to {account} on {device} (job {job_id}, attempt {attempt})"],
             "timeout_seconds": 600, "memory_limit_mb": 2048, "attempts": 3}
          ],
          "reset": null,
          "reset_when": "attempt",
          "account_rest_seconds": 0,
          "alerts": {"notify": null, "file": null, "attempts": 5, "backoff_base_seconds": 5, "backoff_cap_seconds": 300},
          "workers": {"appium_port_base": 4723, "appium_port_stride": 2, "system_port_base": 8200,
                      "system_port_stride": 10, "stop_grace_seconds": 30, "kill_grace_seconds": 5,
                      "restart_delay_seconds": 1, "idle_poll_seconds": 1, "server_memory_mb": null},
          "orchestrator": {"heartbeat_seconds": 30, "hung_after_seconds": 120, "host_lease_seconds": 90},
          "delays": {"pre_base_seconds": 8, "post_base_seconds": 10, "cap_seconds": 8, "factor": 1.5,
                     "pre_fallback_seconds": 12, "post_fallback_seconds": 15},
          "retries": {"max_attempts": 3, "backoff_base_seconds": 30, "backoff_cap_seconds": 3600,
                      "step_backoff_base_seconds": 2, "step_backoff_cap_seconds": 30,
                      "infrastructure_retry_seconds": 60, "requeue_spread_seconds": 30, "poison_after": 3,
                      "max_infrastructure_attempts": 10},
          "cooldown": {"after_failures": 3, "base_seconds": 600, "cap_seconds": 14400},
          "health": {"timeout_seconds": 5, "failures_before_restart": 3, "restart_wait_seconds": 60,
                     "retry_seconds": 10, "server_start_seconds": 60},
          "classify": {
            "permanent": {"suspended": "suspended", "captcha": "captcha", "loggedout": "logged out",
                          "actionblocked": "action blocked", "banned": "banned"},
            "infrastructure": ["adb", "device offline", "appium", "uiautomator", "webdriver",
                               "connection refused", "timeout"]
          },
          "day_zone": "UTC",
          "recurring": [],
          "scheduler": {"missed": "once", "missed_jitter_seconds": 30, "backoff_base_seconds": 2,
                        "backoff_cap_seconds": 30, "critical_attempts": 3, "other_attempts": 1,
                        "memory_critical_mb": 512},
          "pools": {},
          "watchdog": {"interval_seconds": 300, "hung_after_seconds": 900, "health_interval_seconds": 1800,
                       "health_offset_seconds": 600, "content_max_age_seconds": 10800,
                       "claim_max_seconds": 1800, "producer": null}
        }

        """

    /// Reads `path`; a missing file gives the defaults.
    /// - Throws: `ConfigError` naming the file, the key and what was expected.
    public static func load(path: String) throws(ConfigError) -> PipelineConfig {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(path) } catch {
            if error == .noSuchFile {
                var config = PipelineConfig()
                config.path = nil
                return config
            }
            throw ConfigError(message: "cannot read config \(path): \(error)")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws(ConfigError) -> PipelineConfig {
        guard let root = JSON.decode(text) else {
            throw ConfigError(message: "\(path): not valid JSON; check brackets, quotes and commas (no trailing commas, no comments)")
        }
        var reader = ConfigReader(path: path)
        var config = PipelineConfig()
        config.path = path
        try reader.object(root, "(top level)")
        try reader.known(root, "", ["steps", "reset", "reset_when", "account_rest_seconds", "workers", "orchestrator", "delays", "retries", "cooldown", "health", "classify", "day_zone", "recurring", "scheduler", "watchdog", "pools", "alerts"])
        try reader.steps(root, into: &config)
        try reader.reset(root, into: &config)
        try reader.workers(root, into: &config)
        try reader.timing(root, into: &config)
        try reader.health(root, into: &config)
        try reader.zoneAndAlerts(root, into: &config)
        try reader.recurring(root, into: &config)
        return config
    }

    /// The pause before (or after) a step, from the device's last measured response time:
    /// base + min(response × factor, cap), or the fallback when the check measured nothing.
    public func delay(pre: Bool, responseSeconds: Double?) -> Double {
        guard let response = responseSeconds else { return pre ? preFallbackSeconds : postFallbackSeconds }
        return (pre ? preBaseSeconds : postBaseSeconds) + min(response * delayFactor, delayCapSeconds)
    }

    /// Worker k's Appium port.
    public func appiumPort(worker: Int) -> Int { appiumPortBase + appiumPortStride * worker }
    /// Worker k's first systemPort; its range is this and the next `systemPortStride - 1`.
    public func systemPort(worker: Int) -> Int { systemPortBase + systemPortStride * worker }
}

/// Reads typed values out of the config's JSON, failing with the key's full name.
struct ConfigReader {
    var path: String

    func fail(_ key: String, _ expected: String) -> ConfigError {
        ConfigError(message: "\(path): \(key): expected \(expected)")
    }

    func object(_ value: JSON.Value, _ key: String) throws(ConfigError) {
        guard case .object = value else { throw fail(key, "an object {…}") }
    }

    func known(_ value: JSON.Value, _ prefix: String, _ keys: [String]) throws(ConfigError) {
        guard case .object(let fields) = value else { return }
        for (key, _) in fields where !keys.contains(key) {
            let name = prefix.isEmpty ? key : "\(prefix).\(key)"
            throw ConfigError(message: "\(path): \(name): unknown key; expected one of \(keys.joined(separator: ", "))")
        }
    }

    func section(_ root: JSON.Value, _ key: String, _ keys: [String]) throws(ConfigError) -> JSON.Value? {
        guard let value = root[key], !isNull(value) else { return nil }
        try object(value, key)
        try known(value, key, keys)
        return value
    }

    func isNull(_ value: JSON.Value) -> Bool { if case .null = value { return true } else { return false } }

    func string(_ value: JSON.Value?, _ key: String) throws(ConfigError) -> String? {
        guard let value, !isNull(value) else { return nil }
        guard let text = value.string else { throw fail(key, "a string") }
        return text
    }

    func number(_ value: JSON.Value?, _ key: String, minimum: Double = 0) throws(ConfigError) -> Double? {
        guard let value, !isNull(value) else { return nil }
        let number: Double
        switch value {
        case .integer(let whole): number = Double(whole)
        case .number(let real): number = real
        default: throw fail(key, "a number of seconds ≥ \(minimum)")
        }
        guard number.isFinite, number >= minimum else { throw fail(key, "a number ≥ \(minimum) (found \(number))") }
        return number
    }

    func integer(_ value: JSON.Value?, _ key: String, minimum: Int) throws(ConfigError) -> Int? {
        guard let value, !isNull(value) else { return nil }
        guard case .integer(let whole) = value, whole >= minimum, whole <= Int64(Int32.max) else { throw fail(key, "a whole number ≥ \(minimum)") }
        return Int(whole)
    }

    func argv(_ value: JSON.Value?, _ key: String) throws(ConfigError) -> [String]? {
        guard let value, !isNull(value) else { return nil }
        guard case .array(let items) = value, !items.isEmpty else { throw fail(key, "a non-empty list of strings") }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard let text = item.string else { throw fail("\(key)[\(index)]", "a string") }
            result.append(text)
        }
        return result
    }
}

/// `parse`'s sections, in the order of the file's documentation.
extension ConfigReader {
    /// `steps`: each step's argv, check and limits.
    mutating func steps(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        guard let steps = root["steps"] else { throw fail("steps", "a list of steps, each {\"name\": …, \"run\": [argv…]}") }
        guard case .array(let items) = steps, !items.isEmpty else { throw fail("steps", "a non-empty list of steps") }
        config.steps = []
        for (index, item) in items.enumerated() {
            let key = "steps[\(index)]"
            try object(item, key)
            try known(item, key, ["name", "run", "check", "timeout_seconds", "memory_limit_mb", "attempts"])
            let name = try string(item["name"], "\(key).name") ?? "step\(index + 1)"
            guard let run = try argv(item["run"], "\(key).run") else { throw fail("\(key).run", "a non-empty list of strings (argv)") }
            config.steps.append(StepDefinition(
                name: name, run: run, check: try argv(item["check"], "\(key).check"),
                timeoutSeconds: try number(item["timeout_seconds"], "\(key).timeout_seconds", minimum: 0.001) ?? 600,
                memoryLimitMegabytes: try integer(item["memory_limit_mb"], "\(key).memory_limit_mb", minimum: 1) ?? 2048,
                attempts: try integer(item["attempts"], "\(key).attempts", minimum: 1) ?? 3))
        }
    }

    /// `reset`, `reset_when` and `account_rest_seconds`.
    mutating func reset(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        config.reset = try argv(root["reset"], "reset")
        if let when = try string(root["reset_when"], "reset_when") {
            guard let value = PipelineConfig.ResetWhen(rawValue: when) else { throw fail("reset_when", "\"job\" (before each job), \"attempt\" (between a step's attempts) or \"both\" (found \"\(when)\")") }
            config.resetWhen = value
        }
        if let rest = root["account_rest_seconds"] {
            if case .null = rest {
                config.policy.accountRestSeconds = nil
            } else if case .integer(0) = rest {
                config.policy.accountRestSeconds = nil
            } else if case .number(0) = rest {
                config.policy.accountRestSeconds = nil
            } else {
                let (low, high) = try interval(rest, "account_rest_seconds")
                config.policy.accountRestSeconds = low...high
            }
        }
    }

    /// `workers` (ports, graces, polling) and `orchestrator` (heartbeats, leases).
    mutating func workers(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let workers = try section(root, "workers", ["appium_port_base", "appium_port_stride", "system_port_base", "system_port_stride", "stop_grace_seconds", "kill_grace_seconds", "restart_delay_seconds", "idle_poll_seconds", "server_memory_mb"]) {
            config.appiumPortBase = try integer(workers["appium_port_base"], "workers.appium_port_base", minimum: 1) ?? config.appiumPortBase
            config.appiumPortStride = try integer(workers["appium_port_stride"], "workers.appium_port_stride", minimum: 1) ?? config.appiumPortStride
            config.systemPortBase = try integer(workers["system_port_base"], "workers.system_port_base", minimum: 1) ?? config.systemPortBase
            config.systemPortStride = try integer(workers["system_port_stride"], "workers.system_port_stride", minimum: 1) ?? config.systemPortStride
            config.stopGraceSeconds = try number(workers["stop_grace_seconds"], "workers.stop_grace_seconds") ?? config.stopGraceSeconds
            config.killGraceSeconds = try number(workers["kill_grace_seconds"], "workers.kill_grace_seconds") ?? config.killGraceSeconds
            config.restartDelaySeconds = try number(workers["restart_delay_seconds"], "workers.restart_delay_seconds") ?? config.restartDelaySeconds
            config.idlePollSeconds = try number(workers["idle_poll_seconds"], "workers.idle_poll_seconds", minimum: 0.001) ?? config.idlePollSeconds
            config.serverMemoryMegabytes = try integer(workers["server_memory_mb"], "workers.server_memory_mb", minimum: 1) ?? config.serverMemoryMegabytes
        }
        if let section = try section(root, "orchestrator", ["heartbeat_seconds", "hung_after_seconds", "host_lease_seconds"]) {
            config.hostLeaseSecondsSetting = try number(section["host_lease_seconds"], "orchestrator.host_lease_seconds", minimum: 0.001)
            config.heartbeatSeconds = try number(section["heartbeat_seconds"], "orchestrator.heartbeat_seconds", minimum: 0.001) ?? config.heartbeatSeconds
            config.hungAfterSeconds = try number(section["hung_after_seconds"], "orchestrator.hung_after_seconds", minimum: 0.001) ?? config.hungAfterSeconds
        }
    }

    /// `delays`, `retries` and `cooldown`: how long things wait.
    mutating func timing(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let section = try section(root, "delays", ["pre_base_seconds", "post_base_seconds", "cap_seconds", "factor", "pre_fallback_seconds", "post_fallback_seconds"]) {
            config.preBaseSeconds = try number(section["pre_base_seconds"], "delays.pre_base_seconds") ?? config.preBaseSeconds
            config.postBaseSeconds = try number(section["post_base_seconds"], "delays.post_base_seconds") ?? config.postBaseSeconds
            config.delayCapSeconds = try number(section["cap_seconds"], "delays.cap_seconds") ?? config.delayCapSeconds
            config.delayFactor = try number(section["factor"], "delays.factor") ?? config.delayFactor
            config.preFallbackSeconds = try number(section["pre_fallback_seconds"], "delays.pre_fallback_seconds") ?? config.preFallbackSeconds
            config.postFallbackSeconds = try number(section["post_fallback_seconds"], "delays.post_fallback_seconds") ?? config.postFallbackSeconds
        }
        if let section = try section(root, "retries", ["max_attempts", "backoff_base_seconds", "backoff_cap_seconds", "step_backoff_base_seconds", "step_backoff_cap_seconds", "infrastructure_retry_seconds", "requeue_spread_seconds", "poison_after", "max_infrastructure_attempts"]) {
            config.maxAttempts = try integer(section["max_attempts"], "retries.max_attempts", minimum: 1) ?? config.maxAttempts
            config.policy.backoffBaseSeconds = try number(section["backoff_base_seconds"], "retries.backoff_base_seconds") ?? config.policy.backoffBaseSeconds
            config.policy.backoffCapSeconds = try number(section["backoff_cap_seconds"], "retries.backoff_cap_seconds") ?? config.policy.backoffCapSeconds
            config.stepBackoffBaseSeconds = try number(section["step_backoff_base_seconds"], "retries.step_backoff_base_seconds") ?? config.stepBackoffBaseSeconds
            config.stepBackoffCapSeconds = try number(section["step_backoff_cap_seconds"], "retries.step_backoff_cap_seconds") ?? config.stepBackoffCapSeconds
            config.policy.infraRetrySeconds = try number(section["infrastructure_retry_seconds"], "retries.infrastructure_retry_seconds") ?? config.policy.infraRetrySeconds
            config.policy.requeueSpreadSeconds = try number(section["requeue_spread_seconds"], "retries.requeue_spread_seconds") ?? config.policy.requeueSpreadSeconds
            config.policy.poisonAfter = try integer(section["poison_after"], "retries.poison_after", minimum: 1) ?? config.policy.poisonAfter
            config.policy.maxInfrastructureAttempts = try integer(
                section["max_infrastructure_attempts"], "retries.max_infrastructure_attempts", minimum: 1) ?? config.policy.maxInfrastructureAttempts
        }
        if let section = try section(root, "cooldown", ["after_failures", "base_seconds", "cap_seconds"]) {
            config.policy.cooldownAfter = try integer(section["after_failures"], "cooldown.after_failures", minimum: 1) ?? config.policy.cooldownAfter
            config.policy.cooldownBaseSeconds = try number(section["base_seconds"], "cooldown.base_seconds") ?? config.policy.cooldownBaseSeconds
            config.policy.cooldownCapSeconds = try number(section["cap_seconds"], "cooldown.cap_seconds") ?? config.policy.cooldownCapSeconds
        }
    }

    /// `health` (checks and restarts) and `classify` (what a failure's output means).
    mutating func health(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let section = try section(root, "health", ["timeout_seconds", "failures_before_restart", "restart_wait_seconds", "retry_seconds", "server_start_seconds"]) {
            config.healthTimeoutSeconds = try number(section["timeout_seconds"], "health.timeout_seconds", minimum: 0.001) ?? config.healthTimeoutSeconds
            config.failuresBeforeRestart = try integer(section["failures_before_restart"], "health.failures_before_restart", minimum: 1) ?? config.failuresBeforeRestart
            config.restartWaitSeconds = try number(section["restart_wait_seconds"], "health.restart_wait_seconds") ?? config.restartWaitSeconds
            config.healthRetrySeconds = try number(section["retry_seconds"], "health.retry_seconds") ?? config.healthRetrySeconds
            config.serverStartSeconds = try number(section["server_start_seconds"], "health.server_start_seconds", minimum: 0.001) ?? config.serverStartSeconds
        }
        if let section = try section(root, "classify", ["permanent", "infrastructure"]) {
            if let permanent = section["permanent"] {
                guard case .object(let fields) = permanent else { throw fail("classify.permanent", "an object of error type → text to find, e.g. {\"suspended\": \"suspended\"}") }
                config.permanentPatterns = []
                for (type, value) in fields {
                    guard let pattern = value.string, !pattern.isEmpty else { throw fail("classify.permanent.\(type)", "a non-empty string to find in the step's output") }
                    config.permanentPatterns.append((type, pattern.lowercased()))
                }
            }
            if let patterns = try argv(section["infrastructure"], "classify.infrastructure") {
                config.infrastructurePatterns = patterns.map { $0.lowercased() }
            }
        }
    }

    /// `day_zone` and `alerts`.
    mutating func zoneAndAlerts(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let zone = try string(root["day_zone"], "day_zone") {
            guard ZoneCalendar.isKnownZone(zone) else { throw fail("day_zone", "an IANA time zone such as \"UTC\" or \"Europe/Berlin\" (found \"\(zone)\", not in /usr/share/zoneinfo)") }
            config.dayZone = zone
        }
        if let section = try section(root, "alerts", ["notify", "file", "attempts", "backoff_base_seconds", "backoff_cap_seconds"]) {
            config.alerts.notify = try argv(section["notify"], "alerts.notify")
            config.alerts.file = try string(section["file"], "alerts.file")
            config.alerts.attempts = try integer(section["attempts"], "alerts.attempts", minimum: 1) ?? config.alerts.attempts
            config.alerts.backoffBaseSeconds = try number(section["backoff_base_seconds"], "alerts.backoff_base_seconds", minimum: 0.001) ?? config.alerts.backoffBaseSeconds
            config.alerts.backoffCapSeconds = try number(section["backoff_cap_seconds"], "alerts.backoff_cap_seconds", minimum: 0.001) ?? config.alerts.backoffCapSeconds
        }
    }
}
