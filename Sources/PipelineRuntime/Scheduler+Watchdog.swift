import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// The scheduler's watchdog: hung and stuck recurring jobs, and the pipeline health check.
extension Scheduler {
    /// The watchdog: ends runs that show no sign of life for longer than their hung
    /// threshold (the run and its whole tree, SIGTERM then SIGKILL), and starts an emergency
    /// run of a job with no success for longer than its stuck threshold.
    func watch(_ entries: inout [Entry], startWall: Moment) {
        let beats = Dictionary(((try? store.heartbeats()) ?? []).map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        let alerts = Dictionary(((try? store.alerts()) ?? []).map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        let wall = Moment.now()
        var problems: [String] = []
        for index in entries.indices {
            let job = entries[index].job
            let beat = beats[job.name]
            if let running = entries[index].running, running.hung == nil {
                let lastSign = max(running.startedWall, beat?.progressAt ?? 0)
                if wall - lastSign > job.hungAfterSeconds {
                    let message = "hung: no sign of life for \(formatDuration(wall - lastSign)) (hung after \(formatDuration(job.hungAfterSeconds))); ended by the watchdog"
                    problems.append("\(job.name) hung")
                    _ = try? store.raiseAlert("hung:\(job.name)", kind: .hung, message: "\(job.name): \(message)", now: wall)
                    event(.watchdogHung, "\(job.name): run pid \(running.process.pid) \(message)")
                    entries[index].running?.hung = message
                    // The run first, then its tree: it knows it is being stopped before its
                    // step dies, so it records a stop, not a failure of its own.
                    Teardown.graceful(config.killGraceSeconds).run(find: Teardown.TreeFinder(roots: [running.process]).find)
                }
            }
            if let alert = alerts["hung:\(job.name)"], let success = beat?.lastSuccess, success > alert.raisedAt {
                if (try? store.clearAlert(alert.key, now: wall)) == true { event(.watchdogCleared, "\(job.name): succeeded since it hung") }
            }
            guard let stuck = job.stuckAfterSeconds else { continue }
            // The clock starts no earlier than this scheduler: a fresh start gets its chance.
            let reference = max(beat?.lastSuccess ?? 0, startWall)
            let since = reference > startWall ? "no success for \(formatDuration(wall - reference))"
                : "no success since the scheduler started \(formatDuration(wall - startWall)) ago"
            if wall - reference > stuck {
                problems.append("\(job.name) stuck")
                let message = "\(job.name): stuck: \(since) (stuck after \(formatDuration(stuck)))"
                _ = try? store.raiseAlert("stuck:\(job.name)", kind: .stuck, message: message, now: wall)
                let now = Clock.monotonicNanoseconds()
                if entries[index].running == nil && entries[index].pending == nil
                    && (entries[index].lastEmergency.map { now - $0 >= Int64(stuck * 1e9) } ?? true) {
                    event(.watchdogStuck, "\(message); emergency run")
                    entries[index].pending = Pending(since: now, reason: "emergency run: \(since)")
                    entries[index].lastEmergency = now
                } else {
                    log("\(message); \(entries[index].running != nil ? "a run is under way" : entries[index].pending != nil ? "a run is due" : "its emergency run was recent")")
                }
            } else if alerts["stuck:\(job.name)"] != nil, (try? store.clearAlert("stuck:\(job.name)", now: wall)) == true {
                event(.watchdogCleared, "\(job.name): no longer stuck (last success \(isoTime(beat?.lastSuccess)))")
            }
        }
        try? store.recordCheck("watchdog", ok: problems.isEmpty, message: problems.isEmpty ? "ok" : problems.joined(separator: ", "), now: wall)
    }

    /// The pipeline health check: content produced recently, jobs waiting, no job held
    /// too long. A failed content or queue check runs the producer job now.
    func checkHealth(_ entries: inout [Entry]) {
        let policy = config.watchdog
        let wall = Moment.now()
        guard let health = try? store.pipelineHealth(now: wall, claimedLongerThan: policy.claimMaxSeconds) else { return }
        var failed: [(key: String, message: String)] = []
        var passed: [String] = []
        if let newest = health.newestJobCreatedAt, wall - newest <= policy.contentMaxAgeSeconds { passed.append("health:content") } else {
            failed.append(("health:content", health.newestJobCreatedAt.map { "no new job for \(formatDuration(wall - $0)) (content_max_age_seconds \(formatDuration(policy.contentMaxAgeSeconds)))" } ?? "no job was ever added"))
        }
        if health.waiting > 0 { passed.append("health:queue") } else { failed.append(("health:queue", "the queue is empty: no job pending or retrying")) }
        if health.longClaims.isEmpty { passed.append("health:claims") } else {
            let ids = health.longClaims.prefix(5).map { "\($0.id) (worker \($0.worker.map(String.init) ?? "-"), since \(isoTime($0.claimedAt)))" }
            failed.append(("health:claims", "\(health.longClaims.count) job\(health.longClaims.count == 1 ? "" : "s") claimed or running for over \(formatDuration(policy.claimMaxSeconds)): \(ids.joined(separator: ", "))"))
        }
        for key in passed where (try? store.clearAlert(key, now: wall)) == true { event(.healthCleared, "health check: \(key.dropFirst(7)) ok again") }
        for problem in failed { _ = try? store.raiseAlert(problem.key, kind: .health, message: problem.message, now: wall) }
        let summary = failed.isEmpty ? "ok: content \(formatDuration(wall - (health.newestJobCreatedAt ?? wall))) old, \(health.waiting) waiting" : failed.map(\.message).joined(separator: "; ")
        try? store.recordCheck("health", ok: failed.isEmpty, message: summary, now: wall)
        guard !failed.isEmpty else { log("health check: \(summary)"); return }
        event(.healthCheckFailed, "health check: \(summary)")
        guard failed.contains(where: { $0.key != "health:claims" }) else { return }
        guard let producer = policy.producer, let index = entries.firstIndex(where: { $0.job.name == producer }) else {
            log("health check: no watchdog.producer configured; nothing to run")
            return
        }
        if entries[index].running != nil || entries[index].pending != nil {
            log("health check: \(producer) is already running or due")
        } else {
            event(.healthRecovery, "health check: emergency run of \(producer)")
            entries[index].pending = Pending(since: Clock.monotonicNanoseconds(), reason: "emergency run after a failed health check")
        }
    }
}
