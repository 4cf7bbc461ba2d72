import SeqDatabase

/// One line of the events table: what happened, to what.
public struct Event: Sendable, Equatable {
    public var at: Moment
    public var kind: EventKind
    public var job: String?
    public var account: String?
    public var device: String?
    public var worker: Int?
    public var message: String

    public init(at: Moment, kind: EventKind, job: String? = nil, account: String? = nil, device: String? = nil, worker: Int? = nil, message: String) {
        (self.at, self.kind, self.message) = (at, kind, message)
        (self.job, self.account, self.device, self.worker) = (job, account, device, worker)
    }
}

extension Job {
    /// An event about this job (its account, device and worker as it holds them) at `at`.
    public func event(_ kind: EventKind, _ message: String, at: Moment) -> Event {
        Event(at: at, kind: kind, job: id, account: account, device: device, worker: worker, message: message)
    }
}

/// What an event says happened: one of the names below, stored as its raw value. A value
/// this version does not name (a newer version wrote it) is read and shown as it is.
public struct EventKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // The run and its members
    public static let configLoaded = EventKind("config-loaded")
    public static let fence = EventKind("fence")
    public static let fenceDone = EventKind("fence-done")
    public static let fenceIncomplete = EventKind("fence-incomplete")
    public static let hostLost = EventKind("host-lost")
    public static let hostStart = EventKind("host-start")
    public static let leader = EventKind("leader")
    public static let notifyFailed = EventKind("notify-failed")
    public static let notifyGaveUp = EventKind("notify-gave-up")
    public static let orchestratorStart = EventKind("orchestrator-start")
    public static let orchestratorStop = EventKind("orchestrator-stop")
    public static let schedulerDied = EventKind("scheduler-died")
    public static let storeBack = EventKind("store-back")
    public static let storeChanged = EventKind("store-changed")
    public static let workerDied = EventKind("worker-died")
    public static let workerRequeue = EventKind("worker-requeue")
    public static let workerRestart = EventKind("worker-restart")
    // Jobs
    public static let jobCancelled = EventKind("job-cancelled")
    public static let jobFailed = EventKind("job-failed")
    public static let jobHandoff = EventKind("job-handoff")
    public static let jobInfrastructure = EventKind("job-infrastructure")
    public static let jobPoison = EventKind("job-poison")
    public static let jobReleased = EventKind("job-released")
    public static let jobRequeued = EventKind("job-requeued")
    public static let jobRetry = EventKind("job-retry")
    public static let jobRetrying = EventKind("job-retrying")
    public static let jobSuccess = EventKind("job-success")
    // Accounts
    public static let accountCooldown = EventKind("account-cooldown")
    public static let accountPaused = EventKind("account-paused")
    public static let accountRest = EventKind("account-rest")
    public static let accountResumed = EventKind("account-resumed")
    // Devices and their servers
    public static let deviceCooldown = EventKind("device-cooldown")
    public static let deviceRestart = EventKind("device-restart")
    public static let deviceServerExited = EventKind("device-server-exited")
    public static let deviceServerFailed = EventKind("device-server-failed")
    public static let deviceServerPortBusy = EventKind("device-server-port-busy")
    public static let deviceServerRestart = EventKind("device-server-restart")
    public static let deviceServerUp = EventKind("device-server-up")
    public static let deviceUnhealthy = EventKind("device-unhealthy")
    /// Paused, resumed or released (its hold ended) by hand.
    public static let devicePaused = EventKind("device-paused")
    public static let deviceResumed = EventKind("device-resumed")
    public static let deviceReleased = EventKind("device-released")
    // Recurring jobs, the watchdog, the health check and memory
    public static let dependencyRun = EventKind("dependency-run")
    public static let healthCheckFailed = EventKind("health-check-failed")
    public static let healthCleared = EventKind("health-cleared")
    public static let healthRecovery = EventKind("health-recovery")
    public static let memoryCritical = EventKind("memory-critical")
    public static let memoryEmergency = EventKind("memory-emergency")
    public static let memoryRecovered = EventKind("memory-recovered")
    public static let memoryWarning = EventKind("memory-warning")
    public static let recurringFailure = EventKind("recurring-failure")
    public static let recurringSkip = EventKind("recurring-skip")
    public static let recurringStart = EventKind("recurring-start")
    public static let recurringStopped = EventKind("recurring-stopped")
    public static let recurringSuccess = EventKind("recurring-success")
    public static let watchdogCleared = EventKind("watchdog-cleared")
    public static let watchdogHung = EventKind("watchdog-hung")
    public static let watchdogRecovery = EventKind("watchdog-recovery")
    public static let watchdogStuck = EventKind("watchdog-stuck")

    /// An account or a device put on cooldown (`table`: accounts or devices).
    public static func cooldown(of table: String) -> EventKind { table == "accounts" ? accountCooldown : deviceCooldown }
}
