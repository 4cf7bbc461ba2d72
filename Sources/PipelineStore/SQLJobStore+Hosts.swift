import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// Hosts of a farm: each orchestrator's lease row, the take-over of a host whose lease ran
// out, and the leader row of what runs once per farm (the scheduler). On one SQLite host these
// rows exist too and nothing ever expires under a running orchestrator.
extension SQLJobStore {
    /// Registers this host's orchestrator with a lease until `now + leaseSeconds`. Returns
    /// the state the row had before: "lost" when another host took it over meanwhile (its
    /// claims were put back; the host starts afresh), nil for a new host.
    public func registerHost(pid: Int32, leaseSeconds: Double, now: Moment, configVersion: Int?) throws(StoreError) -> String? {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> String? in
            let before = try connection.query("SELECT state FROM hosts WHERE name = ?1", [.text(host)]).first?["state"].string
            try connection.run(
                """
                INSERT INTO hosts(name, pid, state, started_at, beat_at, lease_until, note, config_version) VALUES (?1, ?2, 'running', ?3, ?3, ?4, NULL, ?5)
                ON CONFLICT(name) DO UPDATE SET pid = ?2, state = 'running', started_at = ?3, beat_at = ?3, lease_until = ?4, note = NULL, config_version = ?5
                """, [.text(host), .integer(Int64(pid)), .time(now), .time(now + leaseSeconds), configVersion.map { .integer(Int64($0)) } ?? .null])
            try insertEvent(Event(at: now, kind: .hostStart, message: "host \(host): orchestrator pid \(pid)\(before == "lost" ? ", back after it was taken over" : "")"))
            if before == "lost" { _ = try clearAlertInside("host:\(host)", now: now) }
            return before
        }
    }

    /// Renews this host's lease. False when the row says the host was taken over (or is
    /// missing): its claims are gone and it must register again before it claims.
    public func renewHost(leaseSeconds: Double, now: Moment) throws(StoreError) -> Bool {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> Bool in
            try connection.run(
                "UPDATE hosts SET beat_at = ?2, lease_until = ?3 WHERE name = ?1 AND state = 'running'",
                [.text(host), .time(now), .time(now + leaseSeconds)]) == 1
        }
    }

    /// A clean stop: the host is stopped, not lost, and gives up what it leads.
    public func releaseHost(now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE hosts SET state = 'stopped', beat_at = ?2, lease_until = NULL WHERE name = ?1 AND state = 'running'",
                               [.text(host), .time(now)])
            try connection.run("DELETE FROM leaders WHERE host = ?1", [.text(host)])
        }
    }

    /// Every other host whose lease ran out is lost: its claims go back to the queue (each
    /// counted as a crash toward poison), its devices are held as unreachable, its workers'
    /// rows say lost, and an alert says so until the host comes back.
    public func takeOverLostHosts(policy: FailurePolicy, now: Moment) throws(StoreError) -> [HostTakeover] {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> [HostTakeover] in
            let expired = try connection.query(
                "SELECT name, lease_until FROM hosts WHERE state = 'running' AND lease_until < ?1 AND name != ?2 ORDER BY name",
                [.time(now), .text(host)])
            var result: [HostTakeover] = []
            var generator = SystemRandomNumberGenerator()
            for row in expired {
                let lost = row["name"].string ?? ""
                let since = row["lease_until"].moment ?? now
                let reason = "host \(lost) stopped renewing its lease (expired \(isoTime(since))); taken over by host \(host)"
                try connection.run("UPDATE hosts SET state = 'lost', note = ?2 WHERE name = ?1", [.text(lost), .text(reason)])
                var requeued: [String] = []
                for jobRow in try connection.query("SELECT * FROM jobs WHERE status IN ('claimed', 'running') AND host = ?1", [.text(lost)]) {
                    let job = job(from: jobRow)
                    try apply(policy.changeForLostClaim(of: job, crashed: true, now: now, using: &generator), to: job, policy: policy, now: now, today: "")
                    requeued.append(job.id)
                }
                let devices = try connection.query("SELECT name FROM devices WHERE host = ?1 ORDER BY name", [.text(lost)]).compactMap { $0["name"].string }
                try connection.run("UPDATE devices SET healthy = 0, last_error = ?2 WHERE host = ?1", [.text(lost), .text("unreachable: \(reason)")])
                try connection.run("UPDATE workers SET state = 'lost', job = NULL WHERE host = ?1", [.text(lost)])
                try connection.run("DELETE FROM leaders WHERE host = ?1", [.text(lost)])
                let message = "\(reason): \(requeued.isEmpty ? "no claim" : "put back \(requeued.joined(separator: " "))"), \(devices.count) device(s) unreachable"
                try insertEvent(Event(at: now, kind: .hostLost, message: message))
                _ = try raiseAlertInside("host:\(lost)", kind: .host, message: message, now: now)
                result.append(HostTakeover(host: lost, requeued: requeued, devices: devices))
            }
            return result
        }
    }

    /// Takes `role` (or keeps it) for this host, for `leaseSeconds`, unless another host holds
    /// it with time left. Returns whether this host holds it now.
    public func lead(_ role: String, leaseSeconds: Double, now: Moment) throws(StoreError) -> Bool {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> Bool in
            let current = try connection.query("SELECT host, lease_until FROM leaders WHERE role = ?1", [.text(role)]).first
            if let holder = current?["host"].string, holder != host, (current?["lease_until"].moment ?? 0) >= now { return false }
            try connection.run(
                """
                INSERT INTO leaders(role, host, lease_until, since) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT(role) DO UPDATE SET host = ?2, lease_until = ?3,
                    since = CASE WHEN leaders.host = ?2 THEN leaders.since ELSE ?4 END
                """, [.text(role), .text(host), .time(now + leaseSeconds), .time(now)])
            if current?["host"].string != host {
                let previous = current?["host"].string.map { " from host \($0)" } ?? ""
                try insertEvent(Event(at: now, kind: .leader, message: "host \(host) leads \(role)\(previous)"))
            }
            return true
        }
    }

    /// The config version the running orchestrators use: this host's, else the one that beat
    /// last; nil when none runs (or it runs without a stored version).
    public func runningConfigVersion() throws(StoreError) -> Int? {
        try connection.query(
            "SELECT config_version FROM hosts WHERE state = 'running' AND config_version IS NOT NULL ORDER BY (name = ?1) DESC, beat_at DESC LIMIT 1",
            [.text(host)]).first?["config_version"].int.map { Int($0) }
    }

    public func hosts() throws(StoreError) -> [HostRecord] {
        try connection.query("SELECT * FROM hosts ORDER BY name").map { row in
            HostRecord(name: row["name"].string ?? "", pid: row["pid"].int.map { Int32($0) }, state: HostState(rawValue: row["state"].string ?? "") ?? .stopped,
                       startedAt: row["started_at"].moment, beatAt: row["beat_at"].moment, leaseUntil: row["lease_until"].moment,
                       note: row["note"].string)
        }
    }

    /// Who leads what: role → (host, lease end).
    public func leaders() throws(StoreError) -> [(role: String, host: String, leaseUntil: Moment)] {
        try connection.query("SELECT * FROM leaders ORDER BY role").map { row in
            (row["role"].string ?? "", row["host"].string ?? "", row["lease_until"].moment ?? 0)
        }
    }
}
