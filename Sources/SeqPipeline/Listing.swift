import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// What seqpipe's read-only commands print: the device and account lists, events, the
/// configuration and the recurring schedule. Text for a person, JSON where a script reads it.
public enum Listing {
    /// `seqpipe device list`.
    public static func devices(_ devices: [Device], localHost: String) -> String {
        var rows = [["NAME", "HEALTH", "RESPONSE", "STATUS URL / HEALTH COMMAND", "SERVER"]]
        for device in devices {
            rows.append([device.name, device.healthy ? "healthy" : "unhealthy", device.responseMilliseconds.map { "\($0) ms" } ?? "-",
                         device.statusURL ?? device.healthCommand ?? "-",
                          device.server.map { "\(device.serverState(localHost: localHost)?.rawValue ?? "not started"): \(GuardedCommand.displayCommand($0))" } ?? "-"])
        }
        return TextTable.render(rows)
    }

    /// `seqpipe jobs`: one aligned row per job.
    public static func jobs(_ jobs: [Job]) -> String {
        var rows = [["JOB", "ACCOUNT", "STATUS", "PRIORITY", "DEVICE", "ATTEMPT", "ERROR"]]
        for job in jobs {
            let error = job.error.map { (job.errorType.map { "\($0): " } ?? "") + $0 } ?? ""
            rows.append([job.id, job.account, job.status.rawValue, Priority.jobWord(job.priority), job.device ?? "-", "\(job.runs)/\(job.attemptLimit)",
                         error.count > 80 ? String(error.prefix(79)) + "…" : error])
        }
        return TextTable.render(rows)
    }

    /// `seqpipe account list`: each account's successes today (in the config's day zone),
    /// its limit, and whether it is paused or cooling down.
    public static func accounts(_ accounts: [Account], successesToday: [String: Int], now: Moment) -> String {
        var rows = [["NAME", "TODAY", "LIMIT", "STATE"]]
        for account in accounts {
            var state = "ok"
            if account.paused {
                state = "paused: \(account.pausedReason ?? "")"
            } else if let until = account.cooldownUntil, until > now {
                state = "cooldown until \(isoTime(until))"
            } else if let until = account.restUntil, until > now {
                state = "resting until \(isoTime(until))"
            }
            rows.append([account.name, String(successesToday[account.name] ?? 0), account.dailyLimit == 0 ? "-" : String(account.dailyLimit), state])
        }
        return TextTable.render(rows)
    }

    /// `seqpipe events`: one line per event, or a JSON array.
    public static func events(_ events: [Event], json: Bool) -> String {
        if json {
            return JSON.encode(.array(events.map { event in
                var fields: [(String, JSON.Value)] = [("at", .string(isoTime(event.at))), ("at_seconds", .number(event.at.seconds)), ("kind", .string(event.kind.rawValue))]
                if let job = event.job { fields.append(("job", .string(job))) }
                if let account = event.account { fields.append(("account", .string(account))) }
                if let device = event.device { fields.append(("device", .string(device))) }
                if let worker = event.worker { fields.append(("worker", .integer(Int64(worker)))) }
                fields.append(("message", .string(event.message)))
                return .object(fields)
            })) + "\n"
        }
        var text = ""
        for event in events {
            var subject: [String] = []
            if let job = event.job { subject.append("job \(job)") }
            if let account = event.account { subject.append("account \(account)") }
            if let device = event.device { subject.append("device \(device)") }
            if let worker = event.worker { subject.append("worker \(worker)") }
            text += "\(isoTime(event.at))  \(event.kind)  \(subject.joined(separator: ", "))\(subject.isEmpty ? "" : ": ")\(event.message)\n"
        }
        return text
    }

    /// `--since`: an ISO time (UTC), seconds since the epoch, or an age (`90s`, `15m`, `2h`,
    /// `1d`) before `now`; nil for anything else.
    public static func parseSince(_ text: String, now: Moment) -> Moment? {
        if let seconds = ZoneCalendar.parseISO(text) { return Moment(seconds: seconds) }
        if let seconds = Double(text), seconds.isFinite, seconds >= 0 { return Moment(seconds: seconds) }
        guard let unit = text.last, let scale = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][String(unit)],
              let amount = Double(text.dropLast()), amount.isFinite, amount >= 0 else { return nil }
        return now - amount * scale
    }

    /// `seqpipe schedule`: the recurring jobs' runs in the first `minutes` after start.
    public static func schedule(_ config: PipelineConfig, paths: PipelinePaths, minutes: Int) -> String {
        guard !config.recurring.isEmpty else {
            return "no recurring jobs in \(paths.config); add a \"recurring\" list (see 'man seqpipe')\n"
        }
        var text = "the first \(minutes) minute\(minutes == 1 ? "" : "s") after 'seqpipe run' starts (a range interval at its shortest):\n"
        for (at, job) in Schedule.timeline(config.recurring, horizon: Double(minutes) * 60) {
            let clock = Schedule.clock(at)
            text += String(repeating: " ", count: max(0, 9 - clock.count)) + clock
            text += "  \(job.name)  (P\(job.priority)\(job.critical ? ", critical" : ""), \(job.intervalText))\n"
        }
        return text
    }

    /// `seqpipe show-config`: ports per worker (one per device, at least three shown), the
    /// steps, and every policy in force.
    public static func configuration(_ config: PipelineConfig, devices: [Device], paths: PipelinePaths) -> String {
        var text = "config: " + (config.version.map { "version \($0) in the store, from \(config.source ?? "?")" } ?? config.path ?? "\(paths.config) (missing: defaults)") + "\n"
        if devices.isEmpty {
            text += "workers: none, for no device is in the store yet (add one with 'seqpipe device add NAME'); worker k gets Appium port "
                + "\(config.appiumPortBase) + \(config.appiumPortStride)k and system ports \(config.systemPortBase) + \(config.systemPortStride)k on\n"
        } else {
            text += "workers (one per device, in name order):\n"
            var rows = [["WORKER", "DEVICE", "APPIUM PORT", "SYSTEM PORTS", "LOG"]]
            for (index, device) in devices.enumerated() {
                rows.append([String(index), device.name, String(config.appiumPort(worker: index)),
                             "\(config.systemPort(worker: index))-\(config.systemPort(worker: index) + config.systemPortStride - 1)",
                             paths.log(worker: index)])
            }
            text += TextTable.render(rows)
        }
        text += "steps:\n"
        for step in config.steps {
            text += "  \(step.name): \(GuardedCommand.displayCommand(step.run)) (timeout \(formatDuration(step.timeoutSeconds)), memory \(step.memoryLimitMegabytes) MB, \(step.attempts) attempts\(step.check.map { ", check \(GuardedCommand.displayCommand($0))" } ?? ""))\n"
        }
        if let reset = config.reset { text += "  reset between attempts: \(GuardedCommand.displayCommand(reset))\n" }
        let policy = config.policy
        text += """
            policies:
              job attempts \(config.maxAttempts), backoff \(formatDuration(policy.backoffBaseSeconds))·2^n up to \(formatDuration(policy.backoffCapSeconds)) (full jitter)
              step backoff \(formatDuration(config.stepBackoffBaseSeconds))·2^n up to \(formatDuration(config.stepBackoffCapSeconds)); infrastructure retry within \(formatDuration(policy.infraRetrySeconds))
              cooldown after \(policy.cooldownAfter) infrastructure failures in a row: \(formatDuration(policy.cooldownBaseSeconds)), doubling, up to \(formatDuration(policy.cooldownCapSeconds))
              poison after \(policy.poisonAfter) crashes; a job fails after \(policy.maxInfrastructureAttempts) infrastructure failures; requeues spread over \(formatDuration(policy.requeueSpreadSeconds))
              delays: pre \(formatDuration(config.preBaseSeconds)) + min(response × \(config.delayFactor), \(formatDuration(config.delayCapSeconds))), post \(formatDuration(config.postBaseSeconds)) + the same; unmeasured: \(formatDuration(config.preFallbackSeconds)) / \(formatDuration(config.postFallbackSeconds))
              health: \(formatDuration(config.healthTimeoutSeconds)) limit, restart after \(config.failuresBeforeRestart) failures, then wait \(formatDuration(config.restartWaitSeconds))
              stop grace \(formatDuration(config.stopGraceSeconds)), kill grace \(formatDuration(config.killGraceSeconds)); heartbeat every \(formatDuration(config.heartbeatSeconds)), hung after \(formatDuration(config.hungAfterSeconds))
              permanent: \(config.permanentPatterns.map { "\($0.type)=\"\($0.pattern)\"" }.joined(separator: " "))
              infrastructure: \(config.infrastructurePatterns.map { "\"\($0)\"" }.joined(separator: " "))
              days start at midnight \(config.dayZone)

            """
        if !config.recurring.isEmpty {
            let watchdog = config.watchdog
            text += """
                recurring: \(config.recurring.count) jobs (see 'seqpipe schedule'); missed runs: \(config.scheduler.missed.rawValue); memory critical below \(config.scheduler.memoryCriticalMegabytes) MB
                  watchdog every \(formatDuration(watchdog.intervalSeconds)) (hung after \(formatDuration(watchdog.hungAfterSeconds)) unless a job says); health check every \(formatDuration(watchdog.healthIntervalSeconds)), first after \(formatDuration(watchdog.healthOffsetSeconds)): content within \(formatDuration(watchdog.contentMaxAgeSeconds)), claims within \(formatDuration(watchdog.claimMaxSeconds)), producer \(watchdog.producer ?? "none")
                  pools: \(config.pools.isEmpty ? "none" : config.pools.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))

                """
        }
        return text
    }
}
