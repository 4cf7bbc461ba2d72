import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// Recurring runs, the watchdog's alerts and checks, workers and events.
extension SQLJobStore {
    // MARK: recurring jobs

    public func recordRecurringStart(_ name: String, process: ProcessIdentity, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO heartbeats(name, state, last_start, runs, pid, start_time, beat_at) VALUES (?1, 'running', ?2, 1, ?3, ?4, ?2)
                ON CONFLICT(name) DO UPDATE SET state = 'running', last_start = ?2, runs = heartbeats.runs + 1, pid = ?3, start_time = ?4,
                    beat_at = ?2, progress = NULL, progress_at = NULL, waiting = NULL
                """, [.text(name), .time(now), .integer(Int64(process.pid)), .integer(Int64(process.startTime))])
            try insertEvent(Event(at: now, kind: .recurringStart, message: "\(name): run started (pid \(process.pid))"))
        }
    }

    public func recordRecurringState(_ name: String, state: RecurringState) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE heartbeats SET state = ?2 WHERE name = ?1", [.text(name), .text(state.rawValue)])
        }
    }

    public func recordRecurringEnd(_ name: String, succeeded: Bool, error: String?, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            if succeeded {
                try connection.run(
                    "UPDATE heartbeats SET state = 'idle', last_success = ?2, consecutive_failures = 0, pid = NULL, start_time = NULL WHERE name = ?1",
                    [.text(name), .time(now)])
                try insertEvent(Event(at: now, kind: .recurringSuccess, message: "\(name): run succeeded"))
            } else {
                try connection.run(
                    """
                    UPDATE heartbeats SET state = 'idle', last_failure = ?2, last_error = ?3,
                        consecutive_failures = consecutive_failures + 1, pid = NULL, start_time = NULL WHERE name = ?1
                    """, [.text(name), .time(now), optional(error)])
                try insertEvent(Event(at: now, kind: .recurringFailure, message: "\(name): \(error ?? "failed")"))
            }
        }
    }

    public func recordRecurringSkip(_ name: String, reason: String, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO heartbeats(name, last_skip, skip_reason) VALUES (?1, ?2, ?3)
                ON CONFLICT(name) DO UPDATE SET last_skip = ?2, skip_reason = ?3
                """, [.text(name), .time(now), .text(reason)])
            try insertEvent(Event(at: now, kind: .recurringSkip, message: "\(name): skipped: \(reason)"))
        }
    }

    public func recordRecurringStopped(_ name: String, reason: String, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE heartbeats SET state = 'idle', pid = NULL, start_time = NULL WHERE name = ?1", [.text(name)])
            try insertEvent(Event(at: now, kind: .recurringStopped, message: "\(name): \(reason)"))
        }
    }

    public func recordRecurringBeat(_ name: String, progress: String?, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            if let progress {
                try connection.run("UPDATE heartbeats SET beat_at = ?2, progress = ?3, progress_at = ?2 WHERE name = ?1",
                                   [.text(name), .time(now), .text(progress)])
            } else {
                try connection.run("UPDATE heartbeats SET beat_at = ?2 WHERE name = ?1", [.text(name), .time(now)])
            }
        }
    }

    public func recordRecurringPlan(_ name: String, nextDue: Moment?, waiting: String?) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO heartbeats(name, next_due, waiting) VALUES (?1, ?2, ?3)
                ON CONFLICT(name) DO UPDATE SET next_due = ?2, waiting = ?3
                """, [.text(name), optional(nextDue), optional(waiting)])
        }
    }

    // MARK: watchdog

    public func raiseAlert(_ key: String, kind: AlertKind, message: String, now: Moment) throws(StoreError) -> Bool {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> Bool in try raiseAlertInside(key, kind: kind, message: message, now: now) }
    }

    /// `raiseAlert` inside the caller's write transaction.
    func raiseAlertInside(_ key: String, kind: AlertKind, message: String, now: Moment) throws(StoreError) -> Bool {
        let active = try connection.query("SELECT 1 FROM alerts WHERE key = ?1 AND cleared_at IS NULL", [.text(key)]).first != nil
        if active {
            try connection.run("UPDATE alerts SET message = ?2, seen_at = ?3 WHERE key = ?1", [.text(key), .text(message), .time(now)])
            return false
        }
        try connection.run(
            """
            INSERT INTO alerts(key, kind, message, raised_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?4)
            ON CONFLICT(key) DO UPDATE SET kind = ?2, message = ?3, raised_at = ?4, seen_at = ?4, cleared_at = NULL
            """, [.text(key), .text(kind.rawValue), .text(message), .time(now)])
        try queueNotification(key: key, kind: kind, state: .raised, message: message, now: now)
        return true
    }

    public func clearAlert(_ key: String, now: Moment) throws(StoreError) -> Bool {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> Bool in try clearAlertInside(key, now: now) }
    }

    /// `clearAlert` inside the caller's write transaction.
    func clearAlertInside(_ key: String, now: Moment) throws(StoreError) -> Bool {
        guard try connection.run("UPDATE alerts SET cleared_at = ?2 WHERE key = ?1 AND cleared_at IS NULL", [.text(key), .time(now)]) == 1
        else { return false }
        let row = try connection.query("SELECT kind, message FROM alerts WHERE key = ?1", [.text(key)]).first
        try queueNotification(key: key, kind: AlertKind(rawValue: row?["kind"].string ?? ""), state: .cleared, message: row?["message"].string ?? "", now: now)
        return true
    }

    /// One raise or clear for the notifier (`alerts.notify`, `alerts.file`), in the same
    /// transaction as the alert itself: none is lost if the process dies after it.
    func queueNotification(key: String, kind: AlertKind, state: AlertChange, message: String, now: Moment) throws(StoreError) {
        try connection.run(
            "INSERT INTO notifications(at, key, kind, state, message, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?1)",
            [.time(now), .text(key), .text(kind.rawValue), .text(state.rawValue), .text(message)])
    }

    /// Raises and clears not delivered yet whose next attempt is due, oldest first.
    public func dueNotifications(now: Moment, limit: Int) throws(StoreError) -> [Notification] {
        let now = try databaseTime(now)
        return try connection.query(
            "SELECT * FROM notifications WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= ?1 ORDER BY id LIMIT ?2",
            [.time(now), .integer(Int64(limit))]).map { row in
            Notification(id: row["id"].int ?? 0, at: row["at"].moment ?? 0, key: row["key"].string ?? "", kind: AlertKind(rawValue: row["kind"].string ?? ""),
                         state: AlertChange(rawValue: row["state"].string ?? "") ?? .raised, message: row["message"].string ?? "", attempts: Int(row["attempts"].int ?? 0))
        }
    }

    /// Records one delivery attempt: delivered, or failed with its error and the next try
    /// (nil: given up).
    public func recordDelivery(_ id: Int64, delivered: Bool, error: String?, nextAt: Moment?, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        let nextAt = try nextAt.map { (t) throws(StoreError) -> Moment in try databaseTime(t) }
        try connection.write { () throws(StoreError) in
            if delivered {
                try connection.run("UPDATE notifications SET delivered_at = ?2, attempts = attempts + 1 WHERE id = ?1", [.integer(id), .time(now)])
            } else if let nextAt {
                try connection.run("UPDATE notifications SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                                   [.integer(id), .time(nextAt), .text(error ?? "")])
            } else {
                try connection.run("UPDATE notifications SET attempts = attempts + 1, failed_at = ?2, last_error = ?3 WHERE id = ?1",
                                   [.integer(id), .time(now), .text(error ?? "")])
            }
        }
    }

    public func alerts() throws(StoreError) -> [Alert] {
        try connection.query("SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at").map { row in
            Alert(key: row["key"].string ?? "", kind: AlertKind(rawValue: row["kind"].string ?? ""), message: row["message"].string ?? "",
                  raisedAt: row["raised_at"].moment ?? 0, seenAt: row["seen_at"].moment ?? 0)
        }
    }

    public func recordCheck(_ name: String, ok: Bool, message: String, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO checks(name, at, ok, message) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT(name) DO UPDATE SET at = ?2, ok = ?3, message = ?4
                """, [.text(name), .time(now), .integer(ok ? 1 : 0), .text(message)])
        }
    }

    public func checks() throws(StoreError) -> [Check] {
        try connection.query("SELECT * FROM checks ORDER BY name").map { row in
            Check(name: row["name"].string ?? "", at: row["at"].moment ?? 0, ok: row["ok"].int == 1, message: row["message"].string ?? "")
        }
    }

    public func pipelineHealth(now: Moment, claimedLongerThan seconds: Double) throws(StoreError) -> PipelineHealth {
        let now = try databaseTime(now)
        let newest = try connection.query("SELECT MAX(created_at) AS newest FROM jobs").first?["newest"].moment
        let waiting = Int(try connection.query(
            "SELECT COUNT(*) AS n FROM jobs \(waitingIndex) WHERE status IN ('pending', 'retrying')").first?["n"].int ?? 0)
        let long = try connection.query(
            "SELECT * FROM jobs WHERE status IN ('claimed', 'running') AND claimed_at < ?1 ORDER BY claimed_at",
            [.time(now - seconds)]).map(job(from:))
        return PipelineHealth(newestJobCreatedAt: newest, waiting: waiting, longClaims: long)
    }

    public func heartbeats() throws(StoreError) -> [Heartbeat] {
        try connection.query("SELECT * FROM heartbeats ORDER BY name").map { row in
            var beat = Heartbeat(name: row["name"].string ?? "")
            beat.state = row["state"].string.flatMap(RecurringState.init(rawValue:)) ?? .idle
            beat.lastStart = row["last_start"].moment
            beat.lastSuccess = row["last_success"].moment
            beat.lastFailure = row["last_failure"].moment
            beat.lastSkip = row["last_skip"].moment
            beat.skipReason = row["skip_reason"].string
            beat.lastError = row["last_error"].string
            beat.consecutiveFailures = Int(row["consecutive_failures"].int ?? 0)
            beat.runs = Int(row["runs"].int ?? 0)
            beat.nextDue = row["next_due"].moment
            beat.beatAt = row["beat_at"].moment
            beat.progress = row["progress"].string
            beat.progressAt = row["progress_at"].moment
            beat.waiting = row["waiting"].string
            beat.process = row.process(pid: "pid", startTime: "start_time")
            return beat
        }
    }

    // MARK: workers and events

    public func setWorker(_ record: WorkerRecord) throws(StoreError) {
        var record = record
        record.heartbeatBootSeconds = try record.heartbeatBootSeconds.map { (t) throws(StoreError) -> Double in try databaseTime(boot: t) }
        let now = try databaseTime(Moment.now())
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO workers(idx, pid, start_time, device, state, job, restarts, heartbeat_boot, host, state_since)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                ON CONFLICT(host, idx) DO UPDATE SET pid = ?2, start_time = ?3, device = ?4, state = ?5, job = ?6, restarts = ?7,
                    heartbeat_boot = ?8, state_since = ?10
                """,
                [.integer(Int64(record.index)), .integer(Int64(record.pid)), .integer(Int64(record.startTime)),
                 .text(record.device), .text(record.state.rawValue), optional(record.job), .integer(Int64(record.restarts)),
                 optional(record.heartbeatBootSeconds), .text(host), .time(now)])
        }
    }

    public func updateWorker(index: Int, state: WorkerState, job: String?, bootSeconds: Double) throws(StoreError) {
        let bootSeconds = try databaseTime(boot: bootSeconds)
        let now = try databaseTime(Moment.now())
        try writeOne { () throws(StoreError) in
            // A heartbeat in the same state keeps its since.
            try connection.run(
                """
                UPDATE workers SET state_since = CASE WHEN state = ?2 AND COALESCE(job, '') = COALESCE(?3, '') THEN state_since ELSE ?6 END,
                    state = ?2, job = ?3, heartbeat_boot = ?4 WHERE idx = ?1 AND host = ?5
                """,
                [.integer(Int64(index)), .text(state.rawValue), optional(job), .real(bootSeconds), .text(host), .time(now)])
        }
    }

    public func workers() throws(StoreError) -> [WorkerRecord] {
        try connection.query("SELECT * FROM workers ORDER BY host, idx").map { row in
            WorkerRecord(
                host: row["host"].string ?? "", index: Int(row["idx"].int ?? 0), pid: Int32(row["pid"].int ?? 0), startTime: UInt64(row["start_time"].int ?? 0),
                device: row["device"].string ?? "", state: WorkerState(rawValue: row["state"].string ?? ""), job: row["job"].string,
                restarts: Int(row["restarts"].int ?? 0), heartbeatBootSeconds: row["heartbeat_boot"].double, since: row["state_since"].moment)
        }
    }

    public func clearWorkers() throws(StoreError) {
        try connection.write { () throws(StoreError) in try connection.run("DELETE FROM workers WHERE host = ?1", [.text(host)]) }
    }

    public func addEvent(_ event: Event) throws(StoreError) {
        var event = event
        event.at = try databaseTime(event.at)
        try connection.write { () throws(StoreError) in try insertEvent(event) }
    }

    func insertEvent(_ event: Event) throws(StoreError) {
        try connection.run(
            "INSERT INTO events(at, kind, job, account, device, worker, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            [.time(event.at), .text(event.kind.rawValue), optional(event.job), optional(event.account), optional(event.device),
             event.worker.map { .integer(Int64($0)) } ?? .null, .text(event.message)])
    }

    public func events(since: Moment?, limit: Int) throws(StoreError) -> [Event] {
        let since = try since.map { (t) throws(StoreError) -> Moment in try databaseTime(t) }
        return try connection.query(
            "SELECT * FROM events WHERE CAST(?2 AS DOUBLE PRECISION) IS NULL OR at >= ?2 ORDER BY id DESC LIMIT ?1",
            [.integer(Int64(limit)), optional(since)]).reversed().map(Self.event(from:))
    }

    public func events(job: String) throws(StoreError) -> [Event] {
        try connection.query("SELECT * FROM events WHERE job = ?1 ORDER BY id", [.text(job)]).map(Self.event(from:))
    }

    public func eventCounts(kinds: [EventKind], since: Moment, bucketSeconds: Int) throws(StoreError) -> [(bucket: Int64, kind: EventKind, count: Int)] {
        // The kinds are this program's own names, never input; FLOOR, as PostgreSQL's cast rounds.
        let list = kinds.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let bucket = dialect == .sqlite ? "CAST(at / ?2 AS INTEGER)" : "CAST(FLOOR(at / ?2) AS BIGINT)"
        return try connection.query(
            "SELECT \(bucket) AS b, kind, COUNT(*) AS n FROM events WHERE at >= ?1 AND kind IN (\(list)) GROUP BY b, kind",
            [.time(since), .integer(Int64(max(1, bucketSeconds)))])
            .map { (Int64($0["b"].int ?? 0), EventKind(rawValue: $0["kind"].string ?? ""), Int($0["n"].int ?? 0)) }
    }

    static func event(from row: SQLRow) -> Event {
        Event(at: row["at"].moment ?? 0, kind: EventKind(rawValue: row["kind"].string ?? ""), job: row["job"].string, account: row["account"].string,
              device: row["device"].string, worker: row["worker"].int.map { Int($0) }, message: row["message"].string ?? "")
    }

    public func recordOutput(_ output: StepOutput) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            var tally = Tally()
            try keep(output, into: &tally)
            try record(tally)
        }
    }

    /// Writes `output` over its slot, inside the caller's transaction, and counts the run in
    /// `tally`. A job keeps the latest `StepOutput.runsKept` runs of each step (each with up
    /// to 4 of the step's own tries): one upsert, no trimming pass.
    func keep(_ output: StepOutput, into tally: inout Tally) throws(StoreError) {
        let keeping = try keepStatement(output, firstParameter: 1, from: nil)
        try connection.run(keeping.sql, keeping.values)
        tally.count(.stepAttempts, stepAttemptLabels(output))
    }

    /// The upsert of `output` into its slot, its parameters numbered from `first`; with
    /// `from`, written only when that CTE has a row (PostgreSQL: part of one statement).
    func keepStatement(_ output: StepOutput, firstParameter first: Int, from gate: String?) throws(StoreError) -> (sql: String, values: [SQLValue]) {
        let slot = (output.run % StepOutput.runsKept) * 4 + min(max(output.attempt, 1), 4) - 1
        let marks = (0..<8).map { "?\(first + $0)" }.joined(separator: ", ")
        return ("""
            INSERT INTO outputs(job, step, slot, run, attempt, at, ending, text) \(gate.map { "SELECT \(marks) FROM \($0)" } ?? "VALUES (\(marks))")
            ON CONFLICT(job, step, slot) DO UPDATE SET run = excluded.run, attempt = excluded.attempt, at = excluded.at,
                ending = excluded.ending, text = excluded.text
            """,
            [.text(output.job), .text(output.step), .integer(Int64(slot)), .integer(Int64(output.run)), .integer(Int64(output.attempt)),
             .time(try databaseTime(output.at)), .text(output.ending), .text(output.text)])
    }

    func stepAttemptLabels(_ output: StepOutput) -> [(String, String)] {
        [("step", output.step), ("outcome", output.succeeded ? "success" : "failure"), ("host", host)]
    }

    public func outputs(job: String) throws(StoreError) -> [StepOutput] {
        try connection.query("SELECT * FROM outputs WHERE job = ?1 ORDER BY run, at, attempt", [.text(job)]).map { row in
            StepOutput(job: job, run: Int(row["run"].int ?? 0), step: row["step"].string ?? "", attempt: Int(row["attempt"].int ?? 0),
                       at: row["at"].moment ?? 0, ending: row["ending"].string ?? "", succeeded: row["ending"].string == "exit 0",
                       text: row["text"].string ?? "")
        }
    }
}
