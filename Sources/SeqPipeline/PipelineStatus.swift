import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// What `seqpipe status` shows: counts, workers, accounts, devices, the lock holder, and
/// for each waiting job why it is not running.
public struct PipelineStatus {
    public var database: String
    public var counts: [(JobStatus, Int)]
    public var holder: OwnerRecord?
    public var holderSilentSeconds: Double?
    public var hung: Bool
    public var workers: [WorkerRecord]
    public var accounts: [Account]
    public var successesToday: [String: Int]
    public var devices: [Device]
    /// The first `waitingShown` waiting jobs in claim order, each with why it waits; how
    /// many wait in all is `waitingTotal`.
    public var waiting: [(job: Job, reason: String)]
    public var waitingTotal = 0
    public static let waitingShown = 200
    /// The jobs claimed or running.
    public var active: [Job] = []
    public var now: Moment
    public var config: PipelineConfig
    /// The recurring jobs' heartbeats.
    public var heartbeats: [Heartbeat] = []
    /// Watchdog and health-check alerts not cleared, and the checks' latest results.
    public var alerts: [Alert] = []
    public var checks: [Check] = []
    /// Each device's and account's rates (`device:NAME`, `account:NAME`): last hour, last day.
    public var rates: [String: (hour: Rates, day: Rates)] = [:]
    /// The farm's hosts (one row on a single host) and who leads what.
    public var hosts: [HostRecord] = []
    /// The step each claimed or running job is in (its next step not yet done), by job id.
    public var steps: [String: String] = [:]
    /// The host this status was read on: its servers' processes can be looked at.
    public var localHost = ""
    /// Jobs still to run or running; of them, those that can run now (`runnableNow`); jobs
    /// finished a minute over the last 15; and whether an orchestrator runs (this host's
    /// holds the store's lock, or a farm host holds its lease).
    public var queue = 0
    public var runnable = 0
    public var finishedPerMinute = 0.0
    public var orchestratorRuns = false

    /// The time until the jobs that can run now are done, at the last 15 minutes' pace: only
    /// while an orchestrator runs (nothing empties the queue otherwise), and nil when nothing
    /// finished lately.
    public var timeToEmptySeconds: Double? {
        guard queue > 0 else { return 0 }
        guard orchestratorRuns else { return nil }
        return runnable == 0 ? 0 : finishedPerMinute > 0 ? (Double(runnable) / finishedPerMinute * 60).rounded() : nil
    }

    /// The queue's outlook in words: `status` and the page say the same.
    public var emptyText: String {
        if queue == 0 { return "empty" }
        if !orchestratorRuns { return "no orchestrator runs, so nothing empties it ('seqpipe run')" }
        if runnable == 0 { return "none of it can run now (retries later, accounts paused, resting or at their daily limit)" }
        let later = queue - runnable
        let rest = later > 0 ? "; \(later) more can run only later" : ""
        guard let seconds = timeToEmptySeconds else { return "nothing finished in the last 15 minutes\(rest)" }
        return "\(runnable) that can run now done in about \(formatDuration(seconds))\(rest)"
    }

    public var leaders: [(role: String, host: String, leaseUntil: Moment)] = []

    /// Reads everything from the store and the lock, at one moment.
    public static func read(store: any JobStore, config: PipelineConfig, paths: PipelinePaths) throws(StoreError) -> PipelineStatus {
        let now = try store.currentTime()
        // Counts and the first waiting jobs, not the whole queue: a status of 100,000 queued
        // jobs costs what one of 100 does.
        let tally = try store.jobCounts()
        let counts = JobStatus.allCases.map { ($0, tally[$0] ?? 0) }
        let locks = try? paths.locks(create: false)
        defer { locks?.directory.close() }
        let holder = locks?.instance.holder()
        let silent = holder?.heartbeatBootSeconds.map { Clock.secondsSinceBoot() - $0 }
        let accounts = try store.accounts()
        let devices = try store.devices()
        let today = ZoneCalendar.day(of: now, zone: config.dayZone)
        let successes = try store.successes(on: today)
        let active = try store.jobs(in: [.claimed, .running], limit: 100_000).jobs
        let workers = try store.workers()
        let hosts = try store.hosts()
        var waiting: [(Job, String)] = []
        let queued = try store.jobs(in: [.pending, .retrying], limit: waitingShown)
        for job in queued.jobs {
            waiting.append((job, reason(job, accounts: accounts, devices: devices, successes: successes, active: active,
                                        holder: holder, workers: workers, now: now)))
        }
        var status = PipelineStatus(
            database: paths.storeName, counts: counts, holder: holder, holderSilentSeconds: silent,
            hung: (silent ?? 0) > config.hungAfterSeconds,
            // A farm's workers are those of hosts that run; one host's, while its orchestrator holds the store.
            workers: paths.isURL ? workers.filter { worker in hosts.contains { $0.name == worker.host && $0.state == .running } }
                : holder == nil ? [] : workers,
            accounts: accounts, successesToday: successes, devices: devices, waiting: waiting, now: now, config: config,
            heartbeats: try store.heartbeats(), alerts: try store.alerts(), checks: try store.checks())
        status.hosts = hosts
        status.waitingTotal = queued.total
        status.active = active
        status.localHost = store.host
        for job in active where config.steps.indices.contains(job.progress) { status.steps[job.id] = config.steps[job.progress].name }
        status.queue = counts.filter { [.pending, .retrying, .claimed, .running].contains($0.0) }.reduce(0) { $0 + $1.1 }
        status.finishedPerMinute = try Throughput.finishedPerMinute(store: store, now: now)
        status.runnable = try store.runnableNow(today: today, now: now)
        status.orchestratorRuns = paths.isURL ? hosts.contains { $0.state == .running && ($0.leaseUntil ?? now) >= now } : holder != nil
        status.leaders = try store.leaders()
        for subject in devices.map({ "device:\($0.name)" }) + accounts.map({ "account:\($0.name)" }) {
            status.rates[subject] = (try store.rates(subject: subject, seconds: 3600, now: now), try store.rates(subject: subject, seconds: 86400, now: now))
        }
        return status
    }

    /// One device for `status --json`.
    func deviceJSON(_ device: Device) -> JSON.Value {
        let state = device.serverState(localHost: localHost)
        let serverPid: JSON.Value = state?.hasProcess == true
            ? device.serverProcess.map { .integer(Int64($0.pid)) } ?? .null : .null
        let server: JSON.Value = device.server == nil ? .null : .object([
            ("argv", .array((device.server ?? []).map { .string($0) })), ("state", optional(state?.rawValue)), ("pid", serverPid),
            ("port", device.serverPort.map { .integer(Int64($0)) } ?? .null), ("since", time(device.serverSince)),
            ("note", optional(device.serverNote)),
        ])
        return .object([
            ("name", .string(device.name)), ("host", .string(device.host)), ("healthy", .bool(device.healthy)),
            ("response_ms", device.responseMilliseconds.map { .integer(Int64($0)) } ?? .null),
            ("health_failures", .integer(Int64(device.healthFailures))),
            ("cooldown_until", (device.cooldownUntil ?? 0) > now ? time(device.cooldownUntil) : .null),
            ("paused", .bool(device.paused)), ("paused_reason", optional(device.pausedReason)),
            ("last_error", optional(device.lastError)),
            ("server", server),
            ("phone", optional(device.phoneState?.rawValue)), ("phone_since", time(device.phoneSince)),
            ("last_hour", ratesJSON(rates["device:\(device.name)"]?.hour)), ("last_day", ratesJSON(rates["device:\(device.name)"]?.day)),
        ])
    }

    /// One host for `status --json`.
    func hostJSON(_ host: HostRecord) -> JSON.Value {
        let age: JSON.Value = host.beatAt.map { .number(((now - $0) * 10).rounded() / 10) } ?? .null
        return .object([
            ("name", .string(host.name)), ("state", .string(host.state.rawValue)), ("pid", host.pid.map { .integer(Int64($0)) } ?? .null),
            ("lease_age_seconds", age), ("lease_until", time(host.leaseUntil)), ("note", optional(host.note)),
            ("devices", .array(devices.filter { $0.host == host.name }.map { .string($0.name) })),
            ("workers", .integer(Int64(workers.filter { $0.host == host.name }.count))),
            ("leads", .array(leaders.filter { $0.host == host.name }.map { .string($0.role) })),
        ])
    }

    /// One host's line: its state, orchestrator, lease age, devices, workers and roles.
    func hostText(_ host: HostRecord) -> String {
        // A lease that ran out with no take-over yet: the host cannot reach the store (it
        // ends its workers at the end of its lease, and starts them again when the store
        // answers), or it is gone.
        let expired = host.state == .running && (host.leaseUntil.map { $0 < now } ?? false)
        var parts = [expired ? "LEASE EXPIRED (the host cannot reach the store, or is gone; its workers are ended)" : host.state == .running ? "running" : host.state.rawValue.uppercased()]
        if let pid = host.pid, host.state == .running { parts.append("orchestrator pid \(pid)") }
        if let beat = host.beatAt {
            let age = max(0, now - beat)
            parts.append("lease renewed \(formatDuration((age * 10).rounded() / 10)) ago\(host.leaseUntil.map { ", until \(isoTime($0))" } ?? "")")
        }
        parts.append("\(devices.filter { $0.host == host.name }.count) devices, \(workers.filter { $0.host == host.name }.count) workers")
        let leads = leaders.filter { $0.host == host.name }.map(\.role)
        if !leads.isEmpty { parts.append("leads \(leads.joined(separator: ", "))") }
        if let note = host.note, host.state != .running { parts.append(note) }
        return parts.joined(separator: ", ")
    }

    /// A success rate as the text table shows it: "90% of 10", or "-" with no attempt.
    static func rateText(_ rates: Rates?) -> String {
        guard let rates, rates.attempts > 0, let rate = rates.successRate else { return "-" }
        return "\(Int((rate * 100).rounded()))% of \(rates.attempts)"
    }

    /// Attempts, successes, failures, the success rate and the mean response, for JSON.
    func ratesJSON(_ rates: Rates?) -> JSON.Value {
        let rates = rates ?? Rates()
        return .object([
            ("attempts", .integer(Int64(rates.attempts))), ("successes", .integer(Int64(rates.successes))),
            ("failures", .integer(Int64(rates.failures))), ("success_rate", rates.successRate.map { .number($0) } ?? .null),
            ("responses", .integer(Int64(rates.responses))), ("unanswered", .integer(Int64(rates.unanswered))),
            ("mean_response_ms", rates.meanResponseMilliseconds.map { .integer(Int64($0)) } ?? .null),
        ])
    }

    /// Why `job` (waiting) is not running, with what this status read.
    public func reason(_ job: Job) -> String {
        waiting.first { $0.job.id == job.id }?.reason ?? Self.reason(
            job, accounts: accounts, devices: devices, successes: successesToday, active: active, holder: holder, workers: workers, now: now)
    }

    static func reason(_ job: Job, accounts: [Account], devices: [Device], successes: [String: Int], active: [Job],
                       holder: OwnerRecord?, workers: [WorkerRecord], now: Moment) -> String {
        if let retryAt = job.retryAt, retryAt > now { return "retry at \(isoTime(retryAt)) (in \(formatDuration((retryAt - now).rounded(.up))))" }
        if let account = accounts.first(where: { $0.name == job.account }) {
            if account.paused { return "account \(account.name) paused: \(account.pausedReason ?? "by hand"); resume with 'seqpipe account resume \(account.name)'" }
            if let until = account.cooldownUntil, until > now { return "account \(account.name) on cooldown until \(isoTime(until))" }
            if let until = account.restUntil, until > now { return "account \(account.name) resting after its last job until \(isoTime(until)) (account_rest_seconds)" }
            if account.dailyLimit > 0, (successes[account.name] ?? 0) >= account.dailyLimit {
                return "account \(account.name) at its daily limit (\(account.dailyLimit))"
            }
        }
        if let busy = active.first(where: { $0.account == job.account }) { return "account \(job.account) busy with job \(busy.id)" }
        let usable = devices.filter { $0.healthy && !$0.paused && ($0.cooldownUntil ?? 0) <= now }
        if devices.isEmpty { return "no device; add one with 'seqpipe device add'" }
        // Each device's state in a word or two: its reason is said once, under devices, not
        // under every waiting job.
        if usable.isEmpty {
            let states = devices.map { device in
                device.paused ? "\(device.name) paused"
                    : (device.cooldownUntil ?? 0) > now ? "\(device.name) held until \(isoTime(device.cooldownUntil))"
                    : "\(device.name) unhealthy"
            }
            return "no device can take it now (\(states.joined(separator: ", "))); why: see devices"
        }
        if holder == nil { return "no orchestrator is running; start one with 'seqpipe run'" }
        return "waiting for a free worker"
    }

    public var text: String {
        var lines: [String] = ["store: \(database)" + (config.version.map { ", config version \($0)" } ?? "")]
        if let holder {
            var line = "orchestrator: pid \(holder.holder.pid), since \(Clock.localDateTime(holder.since))"
            if let silent = holderSilentSeconds {
                line += hung ? ", HUNG: no heartbeat for \(formatDuration(silent.rounded()))" : ", heartbeat \(formatDuration(silent.rounded())) ago"
            }
            lines.append(line)
        } else {
            lines.append("orchestrator: none running")
        }
        lines.append("jobs: " + counts.map { "\($0.0.rawValue) \($0.1)" }.joined(separator: ", "))
        lines.append("queue: \(queue) to do, \((finishedPerMinute * 10).rounded() / 10) finished a minute; \(emptyText)")
        // A farm: each host's lease, devices and workers, and what it leads.
        if hosts.count > 1 || (hosts.first.map { !$0.name.isEmpty && devices.contains { !$0.host.isEmpty } } ?? false) {
            lines.append("hosts:")
            for host in hosts { lines.append("  \(host.name)  \(hostText(host))") }
        }
        if !workers.isEmpty {
            lines.append("workers:")
            for worker in workers {
                let alive = ProcessIdentity(pid: worker.pid, startTime: worker.startTime).isAlive
                let job = worker.job.map { " job \($0)" } ?? ""
                lines.append("  \(worker.index)  pid \(worker.pid)\(alive ? "" : " (gone)")  device \(worker.device)  \(worker.state)\(job)  appium \(config.appiumPort(worker: worker.index)), ports \(config.systemPort(worker: worker.index))-\(config.systemPort(worker: worker.index) + config.systemPortStride - 1)\(worker.restarts > 0 ? ", \(worker.restarts) restarts" : "")")
            }
        }
        if !accounts.isEmpty {
            lines.append("accounts:")
            var rows = [["  ACCOUNT", "TODAY", "LAST HOUR", "LAST DAY", "STATE"]]
            for account in accounts {
                var state: [String] = []
                if account.paused { state.append("PAUSED: \(account.pausedReason ?? "")") }
                if let until = account.cooldownUntil, until > now { state.append("cooldown until \(isoTime(until))") }
                if let until = account.restUntil, until > now { state.append("resting until \(isoTime(until))") }
                if account.infraFailures > 0 { state.append("\(account.infraFailures) infrastructure failures in a row") }
                let limit = account.dailyLimit > 0 ? "\(successesToday[account.name] ?? 0)/\(account.dailyLimit)" : "\(successesToday[account.name] ?? 0)"
                rows.append(["  " + account.name, limit, Self.rateText(rates["account:\(account.name)"]?.hour),
                             Self.rateText(rates["account:\(account.name)"]?.day), state.isEmpty ? "ok" : state.joined(separator: ", ")])
            }
            lines.append(contentsOf: TextTable.render(rows).split(separator: "\n").map(String.init))
        }
        if !devices.isEmpty {
            lines.append("devices:")
            var rows = [["  DEVICE", "LAST HOUR", "LAST DAY", "STATE"]]
            for device in devices {
                var state = device.healthy ? "healthy" : "UNHEALTHY"
                if device.paused { state = "PAUSED \(device.pausedReason ?? "by hand") ('seqpipe device resume \(device.name)'), " + state }
                if let until = device.cooldownUntil, until > now { state += ", held until \(isoTime(until)) ('seqpipe device release \(device.name)' ends it now)" }
                if let ms = device.responseMilliseconds { state += ", \(ms) ms" }
                if device.healthFailures > 0 { state += ", \(device.healthFailures) failed checks" }
                if let error = device.lastError { state += ": \(error)" }
                if let server = device.serverState(localHost: localHost) {
                    var words = "server \(server.rawValue)"
                    var details: [String] = []
                    if server.hasProcess, let process = device.serverProcess { details.append("pid \(process.pid)") }
                    if let port = device.serverPort { details.append("port \(port)") }
                    if let since = device.serverSince { details.append("since \(isoTime(since))") }
                    if !details.isEmpty { words += " (\(details.joined(separator: ", ")))" }
                    if let note = device.serverNote, server != .up { words += ": \(note)" }
                    state += "; " + words
                } else if device.server != nil {
                    state += "; server not started yet"
                }
                if let phone = device.phoneState { state += "; phone \(phone.rawValue)\(device.phoneSince.map { " since \(isoTime($0))" } ?? "")" }
                rows.append(["  " + device.name, Self.rateText(rates["device:\(device.name)"]?.hour),
                             Self.rateText(rates["device:\(device.name)"]?.day), state])
            }
            lines.append(contentsOf: TextTable.render(rows).split(separator: "\n").map(String.init))
        }
        if !heartbeats.isEmpty {
            // The plan is the running scheduler's: with no orchestrator there is none.
            let planned = holder == nil ? [] : heartbeats.filter { $0.nextDue != nil }.sorted { $0.nextDue! < $1.nextDue! }
            if !planned.isEmpty {
                lines.append("schedule (next runs):")
                for beat in planned {
                    let due = beat.nextDue!
                    let when = due > now ? "in \(formatDuration((due - now).rounded(.up)))" : "now"
                    lines.append("  \(isoTime(due))  \(when)  \(beat.name)\(beat.waiting.map { "  (due run \($0))" } ?? "")")
                }
            }
            lines.append("recurring jobs:")
            for beat in heartbeats {
                var parts = ["\(beat.state)", "\(beat.runs) runs"]
                if beat.state != .idle, let at = beat.beatAt { parts.append("heartbeat \(formatDuration(max(0, now - at).rounded())) ago") }
                if beat.state != .idle, let progress = beat.progress, let at = beat.progressAt {
                    parts.append("progress \"\(progress)\" \(formatDuration(max(0, now - at).rounded())) ago")
                }
                if let at = beat.lastSuccess { parts.append("last success \(isoTime(at))") }
                if let at = beat.lastFailure { parts.append("last failure \(isoTime(at))\(beat.lastError.map { ": \($0)" } ?? "")") }
                if beat.consecutiveFailures > 0 { parts.append("\(beat.consecutiveFailures) failures in a row") }
                if let at = beat.lastSkip { parts.append("last skip \(isoTime(at)): \(beat.skipReason ?? "")") }
                if let process = beat.process { parts.append("pid \(process.pid)") }
                lines.append("  \(beat.name)  " + parts.joined(separator: ", "))
            }
        }
        for check in checks {
            lines.append("\(check.name == "health" ? "health check" : check.name): \(check.ok ? "ok" : check.name == "health" ? "FAILED" : "PROBLEMS") at \(isoTime(check.at))\(check.ok && check.message == "ok" ? "" : ": \(check.message)")")
        }
        if !alerts.isEmpty {
            lines.append("alerts:")
            for alert in alerts { lines.append("  \(alert.kind.rawValue.uppercased())  since \(isoTime(alert.raisedAt))  \(alert.message)") }
        }
        if !waiting.isEmpty {
            lines.append("waiting:")
            for (job, reason) in waiting.prefix(20) { lines.append("  \(job.id)  \(job.account)  \(reason)") }
            if waitingTotal > 20 { lines.append("  … and \(waitingTotal - min(20, waiting.count)) more") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func optional(_ value: String?) -> JSON.Value { value.map { .string($0) } ?? .null }
    func time(_ value: Moment?) -> JSON.Value { value.map { .string($0.iso) } ?? .null }

    public var json: String { JSON.encode(jsonValue) + "\n" }

    /// `status --watch`: the text again every `seconds` until SIGINT, SIGTERM or SIGHUP; on a
    /// terminal the screen is redrawn, elsewhere each reading follows the last.
    /// - Throws: `GuardFailure` when the signals cannot be set up.
    @available(*, noasync)
    public static func watch(_ output: FileDescriptor, every seconds: Double, read: () -> PipelineStatus) throws(GuardFailure) {
        let signals: SignalReceiver
        do { signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup]) } catch {
            throw GuardFailure("cannot set up signal handling: \(error)", errno: error)
        }
        let terminal = output.isTerminal
        repeat {
            let clear: String = terminal ? "\u{1B}[H\u{1B}[2J" : ""
            let end: String = terminal ? "" : "\n"
            try? output.writeAll(clear + read().text + end)
        } while signals.sleep(seconds: seconds, wakingOn: [], stopsOn: { _ in true }) == .elapsed
    }

    /// `status --json` as a value (the dashboard adds to it).
    public var jsonValue: JSON.Value {
        let orchestrator: JSON.Value = holder.map { holder in
            .object([
                ("pid", .integer(Int64(holder.holder.pid))), ("since", .string(Clock.isoUTC(holder.since))),
                ("heartbeat_age_seconds", holderSilentSeconds.map { .number($0) } ?? .null), ("hung", .bool(hung)),
            ])
        } ?? .null
        let configVersion: JSON.Value = config.version.map { .integer(Int64($0)) } ?? .null
        return .object([
            ("store", .string(database)),
            ("config_version", configVersion),
            ("hosts", .array(hosts.map(hostJSON))),
            ("orchestrator", orchestrator),
            ("counts", .object(counts.map { ($0.0.rawValue, .integer(Int64($0.1))) })),
            ("workers", .array(workers.map { worker in
                .object([
                    ("index", .integer(Int64(worker.index))), ("pid", .integer(Int64(worker.pid))),
                    ("alive", .bool(ProcessIdentity(pid: worker.pid, startTime: worker.startTime).isAlive)),
                    ("device", .string(worker.device)), ("state", .string(worker.state.rawValue)), ("job", optional(worker.job)),
                    ("step", optional(worker.job.flatMap { steps[$0] })), ("host", .string(worker.host)),
                    ("appium_port", .integer(Int64(config.appiumPort(worker: worker.index)))),
                    ("system_port", .integer(Int64(config.systemPort(worker: worker.index)))),
                    ("restarts", .integer(Int64(worker.restarts))), ("since", time(worker.since)),
                ])
            })),
            ("accounts", .array(accounts.map { account in
                .object([
                    ("name", .string(account.name)), ("daily_limit", .integer(Int64(account.dailyLimit))),
                    ("today", .integer(Int64(successesToday[account.name] ?? 0))), ("paused", .bool(account.paused)),
                    ("paused_reason", optional(account.pausedReason)),
                    ("cooldown_until", (account.cooldownUntil ?? 0) > now ? time(account.cooldownUntil) : .null),
                    ("rest_until", (account.restUntil ?? 0) > now ? time(account.restUntil) : .null),
                    ("infra_failures", .integer(Int64(account.infraFailures))),
                    ("last_hour", ratesJSON(rates["account:\(account.name)"]?.hour)), ("last_day", ratesJSON(rates["account:\(account.name)"]?.day)),
                ])
            })),
            ("devices", .array(devices.map(deviceJSON))),
            ("recurring", .array(heartbeats.map { beat in
                .object([
                    ("name", .string(beat.name)), ("state", .string(beat.state.rawValue)), ("runs", .integer(Int64(beat.runs))),
                    ("last_start", time(beat.lastStart)), ("last_success", time(beat.lastSuccess)),
                    ("last_failure", time(beat.lastFailure)), ("last_error", optional(beat.lastError)),
                    ("last_skip", time(beat.lastSkip)), ("skip_reason", optional(beat.skipReason)),
                    ("consecutive_failures", .integer(Int64(beat.consecutiveFailures))),
                    ("pid", beat.process.map { .integer(Int64($0.pid)) } ?? .null),
                    ("heartbeat", time(beat.beatAt)), ("progress", optional(beat.progress)), ("progress_at", time(beat.progressAt)),
                    ("next_due", holder == nil ? .null : time(beat.nextDue)), ("waiting", holder == nil ? .null : optional(beat.waiting)),
                ])
            })),
            ("checks", .array(checks.map { check in
                .object([("name", .string(check.name)), ("at", time(check.at)), ("ok", .bool(check.ok)), ("message", .string(check.message))])
            })),
            ("alerts", .array(alerts.map { alert in
                .object([("key", .string(alert.key)), ("kind", .string(alert.kind.rawValue)), ("message", .string(alert.message)),
                         ("since", time(alert.raisedAt)), ("seen", time(alert.seenAt))])
            })),
            ("queue", .integer(Int64(queue))), ("finished_per_minute", .number((finishedPerMinute * 100).rounded() / 100)),
            ("time_to_empty_seconds", timeToEmptySeconds.map { .integer(Int64($0)) } ?? .null),
            ("runnable_now", .integer(Int64(runnable))), ("orchestrator_runs", .bool(orchestratorRuns)), ("queue_outlook", .string(emptyText)),
            ("waiting_total", .integer(Int64(waitingTotal))),
            ("waiting", .array(waiting.map { .object([("job", .string($0.job.id)), ("account", .string($0.job.account)), ("reason", .string($0.reason))]) })),
        ])
    }
}
