import SeqDatabase
import SeqGuard
import SeqSystem

/// Work that comes back on its own (post every 5 min, plan every 90–120 min, …): run by the
/// orchestrator's scheduler process, each run a guarded command.
public struct RecurringJob: Sendable {
    public enum Overlap: String, Sendable {
        /// A run due while the previous one still runs is skipped, and the skip recorded.
        case skip
        /// It waits for the previous run and then runs once (at most one waits).
        case queue
    }

    public var name: String
    public var run: [String]
    /// Seconds between starts: a fixed interval when both are equal, else drawn afresh in
    /// the range each time.
    public var intervalMinimum: Double
    public var intervalMaximum: Double
    /// Seconds after the scheduler starts before the first run: the stagger.
    public var offset: Double
    /// 0 (P0, first) to 3: which of several due runs starts first.
    public var priority: Int
    public var critical: Bool
    public var attempts: Int
    public var timeoutSeconds: Double
    public var memoryLimitMegabytes: Int
    public var overlap: Overlap
    /// A run with no sign of life (its start, or its step's last progress report) for this
    /// long is hung: the watchdog ends it and runs the job again.
    public var hungAfterSeconds: Double
    /// No success for this long (nil: not watched) makes the watchdog start an emergency run.
    public var stuckAfterSeconds: Double?
    /// Shared pools (`pools` in the config) a run holds one slot of each while it runs.
    public var needs: [String] = []
    /// Jobs that must have succeeded recently before this one runs.
    public var after: [Prerequisite] = []

    /// "The reply job needs a harvester run younger than 30 min."
    public struct Prerequisite: Sendable {
        public var job: String
        public var maxAgeSeconds: Double
    }

    /// The next interval: fixed, or a uniform draw in the range.
    public func nextInterval() -> Double {
        intervalMaximum > intervalMinimum ? Double.random(in: intervalMinimum...intervalMaximum) : intervalMinimum
    }

    public var intervalText: String {
        intervalMaximum > intervalMinimum
            ? "every \(formatDuration(intervalMinimum))–\(formatDuration(intervalMaximum))"
            : "every \(formatDuration(intervalMinimum))"
    }
}

/// How the scheduler treats runs and downtime.
public struct SchedulerPolicy: Sendable {
    public enum Missed: String, Sendable {
        /// A job whose run was missed while the scheduler was down runs once at start
        /// (within `missedJitterSeconds`), not once per missed slot.
        case once
        /// Missed runs are dropped; the job waits for its offset as on a fresh start.
        case skip
    }

    public var missed = Missed.once
    public var missedJitterSeconds: Double = 30
    /// Backoff between attempts of a run: base·2^(n-1) up to the cap, with full jitter.
    public var backoffBaseSeconds: Double = 2
    public var backoffCapSeconds: Double = 30
    /// Attempts of a run when the job does not say: critical jobs, and the others.
    public var criticalAttempts = 3
    public var otherAttempts = 1
    /// MemAvailable (the guard's reading) below this many MiB is critical: non-critical runs
    /// are skipped, critical ones run with a warning.
    public var memoryCriticalMegabytes = 512
    /// Run once when MemAvailable falls under the critical level, before any run is skipped
    /// for it (the pool's clean-up: close idle browser contexts, drop caches). Once per
    /// pressure episode: again only after memory has recovered.
    public var emergency: [String]?

    public init() {}
}

/// The scheduler's watchdog and the pipeline health check.
public struct WatchdogPolicy: Sendable {
    /// How often the watchdog looks for hung runs and stuck jobs.
    public var intervalSeconds: Double = 300
    /// A job's hung threshold when it does not set one.
    public var hungAfterSeconds: Double = 900
    /// The pipeline health check: how often, and how long after start the first one is.
    public var healthIntervalSeconds: Double = 1800
    public var healthOffsetSeconds: Double = 600
    /// The newest job older than this: content is not being produced.
    public var contentMaxAgeSeconds: Double = 10800
    /// A job claimed or running for longer than this is reported stuck.
    public var claimMaxSeconds: Double = 1800
    /// The recurring job that produces jobs: a failed content or queue check runs it now.
    public var producer: String?

    public init() {}
}

/// The next runs of the recurring jobs on a fresh start, for `seqpipe schedule`.
public enum Schedule {
    /// (seconds after start, job) for every run within `horizon` seconds, in time order
    /// (priority first at the same moment). A range interval is taken at its minimum.
    public static func timeline(_ jobs: [RecurringJob], horizon: Double) -> [(at: Double, job: RecurringJob)] {
        var runs: [(Double, RecurringJob)] = []
        for job in jobs {
            var at = job.offset
            while at < horizon {
                runs.append((at, job))
                guard job.intervalMinimum > 0 else { break }
                at += job.intervalMinimum
            }
        }
        return runs.sorted { ($0.0, $0.1.priority) < ($1.0, $1.1.priority) }
    }

    /// `1:02:03` or `2:03` for a moment after start.
    public static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.down))
        let tenths = Int(((seconds - Double(whole)) * 10).rounded(.down))
        let fraction = seconds < 60 && seconds != Double(whole) ? ".\(tenths)" : ""
        let (hours, minutes, secs) = (whole / 3600, (whole % 3600) / 60, whole % 60)
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        return hours > 0 ? "\(hours):\(two(minutes)):\(two(secs))\(fraction)" : "\(minutes):\(two(secs))\(fraction)"
    }
}

/// One recurring job's record of life, as the store keeps it.
/// A recurring job's state, as its heartbeat row records it (the raw value). A store of a
/// newer schema is refused before any row is read, so every stored word is one of these.
public enum RecurringState: String, Sendable {
    /// Between runs.
    case idle
    /// A run is under way.
    case running
    /// A run failed and waits before its next attempt.
    case backoff
}

public struct Heartbeat: Sendable {
    public var name: String
    public var state: RecurringState
    public var lastStart: Moment?
    public var lastSuccess: Moment?
    public var lastFailure: Moment?
    public var lastSkip: Moment?
    public var skipReason: String?
    public var lastError: String?
    public var consecutiveFailures: Int
    public var runs: Int
    /// The running instance, while one runs.
    public var process: ProcessIdentity?
    /// When the scheduler will next start it (wall seconds), and what a due run waits for.
    public var nextDue: Moment?
    public var waiting: String?
    /// The running instance's last heartbeat, its step's last progress report and when.
    public var beatAt: Moment?
    public var progress: String?
    public var progressAt: Moment?

    public init(name: String) {
        self.name = name
        state = .idle
        consecutiveFailures = 0
        runs = 0
    }
}

extension ConfigReader {
    /// `watchdog`, `pools`, `scheduler` (the recurring jobs' policy) and `recurring` (the jobs).
    mutating func recurring(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        try watchdog(root, into: &config)
        try pools(root, into: &config)
        try scheduler(root, into: &config)
        guard let list = root["recurring"], !isNull(list) else { return }
        guard case .array(let items) = list else { throw fail("recurring", "a list of recurring jobs, each {\"name\": …, \"run\": [argv…], \"interval_seconds\": …}") }
        var names: Set<String> = []
        for (index, item) in items.enumerated() {
            config.recurring.append(try recurringJob(item, "recurring[\(index)]", names: &names, config: config))
        }
        // Names can be checked once every job is known.
        let known = Set(config.recurring.map(\.name))
        for (index, job) in config.recurring.enumerated() {
            for (rule, prerequisite) in job.after.enumerated() where !known.contains(prerequisite.job) || prerequisite.job == job.name {
                throw fail("recurring[\(index)].after[\(rule)].job", "the name of another recurring job (found \"\(prerequisite.job)\"; known: \(known.sorted().joined(separator: ", ")))")
            }
        }
        if let cycle = Self.dependencyCycle(config.recurring) {
            throw fail("recurring", "jobs whose \"after\" rules do not wait on each other in a circle (found \(cycle.joined(separator: " → ")))")
        }
        if let producer = config.watchdog.producer, !known.contains(producer) {
            throw fail("watchdog.producer", "the name of a recurring job that adds jobs (found \"\(producer)\"; known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    mutating func watchdog(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let section = try section(root, "watchdog", ["interval_seconds", "hung_after_seconds", "health_interval_seconds", "health_offset_seconds", "content_max_age_seconds", "claim_max_seconds", "producer"]) {
            var policy = config.watchdog
            policy.intervalSeconds = try number(section["interval_seconds"], "watchdog.interval_seconds", minimum: 0.001) ?? policy.intervalSeconds
            policy.hungAfterSeconds = try number(section["hung_after_seconds"], "watchdog.hung_after_seconds", minimum: 0.001) ?? policy.hungAfterSeconds
            policy.healthIntervalSeconds = try number(section["health_interval_seconds"], "watchdog.health_interval_seconds", minimum: 0.001) ?? policy.healthIntervalSeconds
            policy.healthOffsetSeconds = try number(section["health_offset_seconds"], "watchdog.health_offset_seconds") ?? policy.healthOffsetSeconds
            policy.contentMaxAgeSeconds = try number(section["content_max_age_seconds"], "watchdog.content_max_age_seconds", minimum: 0.001) ?? policy.contentMaxAgeSeconds
            policy.claimMaxSeconds = try number(section["claim_max_seconds"], "watchdog.claim_max_seconds", minimum: 0.001) ?? policy.claimMaxSeconds
            policy.producer = try string(section["producer"], "watchdog.producer")
            config.watchdog = policy
        }
    }

    mutating func pools(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let value = root["pools"], !isNull(value) {
            guard case .object(let fields) = value else { throw fail("pools", "an object of pool name → how many runs may hold it at once, e.g. {\"browser\": 3}") }
            for (name, size) in fields {
                guard let cap = try integer(size, "pools.\(name)", minimum: 1) else { throw fail("pools.\(name)", "a whole number ≥ 1") }
                config.pools[name] = cap
            }
        }
    }

    mutating func scheduler(_ root: JSON.Value, into config: inout PipelineConfig) throws(ConfigError) {
        if let section = try section(root, "scheduler", ["missed", "missed_jitter_seconds", "backoff_base_seconds", "backoff_cap_seconds", "critical_attempts", "other_attempts", "memory_critical_mb", "emergency"]) {
            config.scheduler.emergency = try argv(section["emergency"], "scheduler.emergency")
            config.scheduler.memoryCriticalMegabytes = try integer(section["memory_critical_mb"], "scheduler.memory_critical_mb", minimum: 0) ?? config.scheduler.memoryCriticalMegabytes
            if let missed = try string(section["missed"], "scheduler.missed") {
                guard let value = SchedulerPolicy.Missed(rawValue: missed) else { throw fail("scheduler.missed", "\"once\" or \"skip\" (found \"\(missed)\")") }
                config.scheduler.missed = value
            }
            config.scheduler.missedJitterSeconds = try number(section["missed_jitter_seconds"], "scheduler.missed_jitter_seconds") ?? config.scheduler.missedJitterSeconds
            config.scheduler.backoffBaseSeconds = try number(section["backoff_base_seconds"], "scheduler.backoff_base_seconds") ?? config.scheduler.backoffBaseSeconds
            config.scheduler.backoffCapSeconds = try number(section["backoff_cap_seconds"], "scheduler.backoff_cap_seconds") ?? config.scheduler.backoffCapSeconds
            config.scheduler.criticalAttempts = try integer(section["critical_attempts"], "scheduler.critical_attempts", minimum: 1) ?? config.scheduler.criticalAttempts
            config.scheduler.otherAttempts = try integer(section["other_attempts"], "scheduler.other_attempts", minimum: 1) ?? config.scheduler.otherAttempts
        }
    }

    /// One recurring job at `key`; `names` are those taken before it.
    mutating func recurringJob(_ item: JSON.Value, _ key: String, names: inout Set<String>, config: PipelineConfig) throws(ConfigError) -> RecurringJob {
        try object(item, key)
        try known(item, key, ["name", "run", "interval_seconds", "offset_seconds", "priority", "critical", "attempts", "timeout_seconds", "memory_limit_mb", "overlap", "hung_after_seconds", "stuck_after_seconds", "needs", "after"])
        guard let name = try string(item["name"], "\(key).name"), !name.isEmpty,
              name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
        else { throw fail("\(key).name", "a name of letters, digits, _ and - (it names the job in status and events)") }
        guard names.insert(name).inserted else { throw fail("\(key).name", "a name no other recurring job has (\"\(name)\" is taken)") }
        guard let run = try argv(item["run"], "\(key).run") else { throw fail("\(key).run", "a non-empty list of strings (argv)") }
        let (low, high) = try interval(item["interval_seconds"], "\(key).interval_seconds")
        var priority = 2
        if let text = try string(item["priority"], "\(key).priority") {
            let levels = ["high": "P0", "normal": "P2", "low": "P3"]
            guard let level = ["P0", "P1", "P2", "P3"].firstIndex(of: levels[text.lowercased()] ?? text.uppercased()) else {
                throw fail("\(key).priority", "one of \"P0\" (first) … \"P3\", or high, normal, low (found \"\(text)\")")
            }
            priority = level
        }
        var critical = false
        if let value = item["critical"] {
            guard case .bool(let flag) = value else { throw fail("\(key).critical", "true or false") }
            critical = flag
        }
        var overlap = RecurringJob.Overlap.skip
        if let text = try string(item["overlap"], "\(key).overlap") {
            guard let value = RecurringJob.Overlap(rawValue: text) else { throw fail("\(key).overlap", "\"skip\" or \"queue\" (found \"\(text)\")") }
            overlap = value
        }
        return RecurringJob(
            name: name, run: run, intervalMinimum: low, intervalMaximum: high,
            offset: try number(item["offset_seconds"], "\(key).offset_seconds") ?? 0,
            priority: priority, critical: critical,
            attempts: try integer(item["attempts"], "\(key).attempts", minimum: 1)
                ?? (critical ? config.scheduler.criticalAttempts : config.scheduler.otherAttempts),
            timeoutSeconds: try number(item["timeout_seconds"], "\(key).timeout_seconds", minimum: 0.001) ?? 3600,
            memoryLimitMegabytes: try integer(item["memory_limit_mb"], "\(key).memory_limit_mb", minimum: 1) ?? 2048,
            overlap: overlap,
            hungAfterSeconds: try number(item["hung_after_seconds"], "\(key).hung_after_seconds", minimum: 0.001) ?? config.watchdog.hungAfterSeconds,
            stuckAfterSeconds: try number(item["stuck_after_seconds"], "\(key).stuck_after_seconds", minimum: 0.001),
            needs: try needs(item["needs"], "\(key).needs", pools: config.pools),
            after: try prerequisites(item["after"], "\(key).after"))
    }

    /// Pool names, each one in `pools`.
    func needs(_ value: JSON.Value?, _ key: String, pools: [String: Int]) throws(ConfigError) -> [String] {
        guard let names = try argv(value, key) else { return [] }
        for (index, name) in names.enumerated() where pools[name] == nil {
            throw fail("\(key)[\(index)]", "a pool named in \"pools\" (found \"\(name)\"; pools: \(pools.isEmpty ? "none defined" : pools.keys.sorted().joined(separator: ", ")))")
        }
        return names
    }

    /// `[{"job": NAME, "max_age_seconds": N}, …]`
    func prerequisites(_ value: JSON.Value?, _ key: String) throws(ConfigError) -> [RecurringJob.Prerequisite] {
        guard let value, !isNull(value) else { return [] }
        guard case .array(let items) = value else { throw fail(key, "a list of {\"job\": NAME, \"max_age_seconds\": N}") }
        var rules: [RecurringJob.Prerequisite] = []
        for (index, item) in items.enumerated() {
            let rule = "\(key)[\(index)]"
            try object(item, rule)
            try known(item, rule, ["job", "max_age_seconds"])
            guard let job = try string(item["job"], "\(rule).job"), !job.isEmpty else { throw fail("\(rule).job", "the name of another recurring job") }
            guard let age = try number(item["max_age_seconds"], "\(rule).max_age_seconds", minimum: 0.001) else {
                throw fail("\(rule).max_age_seconds", "how recent its last success must be, in seconds (> 0)")
            }
            rules.append(RecurringJob.Prerequisite(job: job, maxAgeSeconds: age))
        }
        return rules
    }

    /// A circle of `after` rules (a → b → a), if there is one.
    static func dependencyCycle(_ jobs: [RecurringJob]) -> [String]? {
        let edges = Dictionary(jobs.map { ($0.name, $0.after.map(\.job)) }, uniquingKeysWith: { $1 })
        var done: Set<String> = []
        func visit(_ name: String, _ path: [String]) -> [String]? {
            if let start = path.firstIndex(of: name) { return Array(path[start...]) + [name] }
            if done.contains(name) { return nil }
            for next in edges[name] ?? [] { if let cycle = visit(next, path + [name]) { return cycle } }
            done.insert(name)
            return nil
        }
        for job in jobs { if let cycle = visit(job.name, []) { return cycle } }
        return nil
    }

    /// A number of seconds, or a [low, high] range.
    func interval(_ value: JSON.Value?, _ key: String) throws(ConfigError) -> (Double, Double) {
        let expected = "seconds between runs: a number > 0, or a range [low, high] such as [5400, 7200]"
        guard let value else { throw fail(key, expected) }
        if case .array(let bounds) = value {
            guard bounds.count == 2, let low = try number(bounds[0], key, minimum: 0.001), let high = try number(bounds[1], key, minimum: 0.001), low <= high
            else { throw fail(key, expected) }
            return (low, high)
        }
        guard let seconds = try number(value, key, minimum: 0.001) else { throw fail(key, expected) }
        return (seconds, seconds)
    }
}

