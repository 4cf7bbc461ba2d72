import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// Jobs, claims and their outcomes.
extension SQLJobStore {
    // MARK: jobs

    public func addJobs(_ jobs: [Job]) throws(StoreError) -> [String] {
        let ids = try insertJobs(jobs)
        // PostgreSQL plans the claim from its statistics: after a bulk add, fresh ones let it
        // walk jobs_waiting in order and stop at the first eligible job, not sort the queue.
        if dialect == .postgresql && jobs.count >= 50 { try connection.execute("ANALYZE jobs; ANALYZE accounts") }
        return ids
    }

    func insertJobs(_ jobs: [Job]) throws(StoreError) -> [String] {
        try connection.write { () throws(StoreError) -> [String] in
            var ids: [String] = []
            let now = try databaseTime(Moment.now())
            for job in jobs {
                try connection.run("INSERT INTO accounts(name) VALUES (?1) ON CONFLICT(name) DO NOTHING", [.text(job.account)])
                let id = job.id.isEmpty ? "j-" + Processes.randomHex(bytes: 5) : job.id
                do throws(StoreError) {
                    try connection.run(
                        """
                        INSERT INTO jobs(id, account, payload, status, priority, worker, claimed_at, completed_at, completed_day,
                                         attempts, max_attempts, retry_at, error, error_type, created_at, runs)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?10)
                        """,
                        [.text(id), .text(job.account), .text(Payload.encode(job.payload)), .text(job.status.rawValue),
                         .integer(Int64(job.priority)), job.worker.map { .integer(Int64($0)) } ?? .null,
                         optional(job.claimedAt), optional(job.completedAt),
                         job.completedAt.map { .text($0.iso.prefix(10).description) } ?? .null,
                         .integer(Int64(job.attempts)), .integer(Int64(job.maxAttempts)), optional(job.retryAt),
                         optional(job.error), optional(job.errorType), .time(now)])
                } catch where Self.isUniqueViolation(error) {
                    throw StoreError("job '\(id)' is already in the store (or another active job of account '\(job.account)' is); give each job its own id", code: error.code)
                }
                ids.append(id)
            }
            return ids
        }
    }

    func job(from row: SQLRow) -> Job {
        var job = Job(id: row["id"].string ?? "", account: row["account"].string ?? "")
        job.payload = Payload.decode(row["payload"].string ?? "{}")
        job.status = JobStatus(rawValue: row["status"].string ?? "") ?? .pending
        job.priority = Int(row["priority"].int ?? 0)
        job.worker = row["worker"].int.map { Int($0) }
        job.device = row["device"].string
        job.claimedAt = row["claimed_at"].moment
        job.completedAt = row["completed_at"].moment
        job.attempts = Int(row["attempts"].int ?? 0)
        job.maxAttempts = Int(row["max_attempts"].int ?? 3)
        job.runs = Int(row["runs"].int ?? 0)
        job.progress = Int(row["progress"].int ?? 0)
        job.crashes = Int(row["crashes"].int ?? 0)
        job.infraAttempts = Int(row["infra_attempts"].int ?? 0)
        job.retryAt = row["retry_at"].moment
        job.error = row["error"].string
        job.errorType = row["error_type"].string
        job.avoidDevice = row["avoid_device"].string
        job.host = row["host"].string
        job.createdAt = row["created_at"].moment
        return job
    }

    public func jobs() throws(StoreError) -> [Job] {
        try connection.query("SELECT * FROM jobs ORDER BY priority DESC, seq").map(job(from:))
    }

    public func jobCounts() throws(StoreError) -> [JobStatus: Int] {
        var counts: [JobStatus: Int] = [:]
        for row in try connection.query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") {
            if let status = row["status"].string.flatMap(JobStatus.init(rawValue:)) { counts[status] = Int(row["n"].int ?? 0) }
        }
        return counts
    }

    public func claimedJobs() throws(StoreError) -> [Job] {
        try connection.query("SELECT * FROM jobs WHERE status IN ('claimed', 'running') ORDER BY priority DESC, seq").map(job(from:))
    }

    public func jobs(in statuses: [JobStatus], limit: Int) throws(StoreError) -> (total: Int, jobs: [Job]) {
        // The statuses are the store's own names, never input.
        let filter = "WHERE status IN (\(statuses.map { "'\($0.rawValue)'" }.joined(separator: ", ")))"
        let total = try connection.query("SELECT COUNT(*) AS n FROM jobs \(filter)").first?["n"].int ?? 0
        let rows = try connection.query("SELECT * FROM jobs \(filter) ORDER BY priority DESC, seq LIMIT \(max(0, limit))")
        return (Int(total), rows.map(job(from:)))
    }

    public func jobs(matching query: JobQuery, limit: Int) throws(StoreError) -> (total: Int, jobs: [Job]) {
        var conditions: [String] = []
        var values: [SQLValue] = []
        for (column, value) in [("status", query.status), ("account", query.account), ("device", query.device), ("error_type", query.errorType)] {
            guard let value, !value.isEmpty else { continue }
            values.append(.text(value))
            conditions.append("\(column) = ?\(values.count)")
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        // A text search reads what the other filters leave and matches in Swift, exactly as
        // `seqpipe jobs` does (any case, payload values only).
        if let search = query.search, !search.isEmpty {
            let found = try connection.query("SELECT * FROM jobs \(filter) ORDER BY priority DESC, seq", values).map(job(from:)).filter(query.matches)
            return (found.count, Array(found.prefix(limit)))
        }
        let total = try connection.query("SELECT COUNT(*) AS n FROM jobs \(filter)", values).first?["n"].int ?? 0
        let rows = try connection.query("SELECT * FROM jobs \(filter) ORDER BY priority DESC, seq LIMIT \(max(0, limit))", values)
        return (Int(total), rows.map(job(from:)))
    }

    public func queueAges(since: Moment) throws(StoreError) -> (oldestWaiting: Moment?, meanClaimWait: Double?) {
        let oldest = try connection.query("SELECT MIN(created_at) AS t FROM jobs WHERE status IN ('pending', 'retrying')").first?["t"].moment
        let mean = try connection.query("SELECT AVG(claimed_at - created_at) AS w FROM jobs WHERE claimed_at >= ?1", [.time(since)]).first?["w"].double
        return (oldest, mean)
    }

    public func job(_ id: String) throws(StoreError) -> Job? {
        try connection.query("SELECT * FROM jobs WHERE id = ?1", [.text(id)]).first.map(job(from:))
    }

    public func retry(_ id: String, by: String) throws(StoreError) -> HandResult<JobStatus> {
        try byHand(id, allowed: [.failed, .cancelled, .retrying], already: .pending) { () throws(StoreError) in
            // attempts (those charged) start again; runs, the attempt number, goes on.
            try connection.run(
                """
                UPDATE jobs SET status = 'pending', attempts = 0, crashes = 0, infra_attempts = 0, retry_at = NULL, error = NULL,
                    error_type = NULL, claim_token = NULL WHERE id = ?1
                """, [.text(id)])
            try insertEvent(Event(at: try databaseTime(Moment.now()), kind: .jobRetry, job: id, message: "put back to pending by \(by)"))
        }
    }

    public func cancel(_ id: String, by: String) throws(StoreError) -> HandResult<JobStatus> {
        try byHand(id, allowed: [.pending, .retrying, .failed], already: .cancelled) { () throws(StoreError) in
            try connection.run("UPDATE jobs SET status = 'cancelled', claim_token = NULL WHERE id = ?1", [.text(id)])
            try insertEvent(Event(at: try databaseTime(Moment.now()), kind: .jobCancelled, job: id, message: "cancelled by \(by)"))
        }
    }

    /// Reads the job's status and makes `change` only from one of `allowed`, in one
    /// transaction, so what is said is what the store found.
    private func byHand(_ id: String, allowed: Set<JobStatus>, already: JobStatus,
                        _ change: () throws(StoreError) -> Void) throws(StoreError) -> HandResult<JobStatus> {
        try connection.write { () throws(StoreError) -> HandResult<JobStatus> in
            guard let status = try connection.query("SELECT status FROM jobs WHERE id = ?1", [.text(id)]).first?["status"].string
                .flatMap(JobStatus.init(rawValue:)) else { return .missing }
            if status == already { return .unchanged(status) }
            guard allowed.contains(status) else { return .refused(status) }
            try change()
            return .changed(from: status)
        }
    }

    // MARK: claims

    /// Walks the waiting jobs in claim order through `jobs_waiting` and stops at the first
    /// eligible one: a claim costs the jobs it skips, not the whole queue (a sort of every
    /// waiting job made 2,000 jobs take quadratic time).
    /// On PostgreSQL the chosen job and its account are locked `FOR UPDATE SKIP LOCKED` in the
    /// same statement (writers are serialised by the store's advisory lock too).
    var claimStatement: String { dialect == .sqlite ? Self.sqliteClaim : Self.postgresClaim }
    static let sqliteClaim = claimText(index: "INDEXED BY jobs_waiting", rowLocks: "")
    /// PostgreSQL also marks the worker running in the same statement (one round trip fewer
    /// under the store's write lock).
    static let postgresClaim = """
        WITH claimed AS (\(claimText(index: "", rowLocks: "FOR UPDATE OF j, a SKIP LOCKED"))),
        touched AS (UPDATE workers SET state = 'running', job = claimed.id, heartbeat_boot = ?6, state_since = ?4 FROM claimed
                    WHERE workers.idx = ?1 AND workers.host = ?7)
        SELECT * FROM claimed
        """

    static func claimText(index: String, rowLocks: String) -> String { """
        UPDATE jobs SET status = 'claimed', worker = ?1, device = ?2, claim_token = ?3, claimed_at = ?4, host = ?7,
            claimed_boot = ?6, heartbeat_boot = ?6, attempts = attempts + 1, runs = runs + 1, retry_at = NULL,
            first_claimed_at = COALESCE(first_claimed_at, ?4)
        WHERE id = (
            SELECT j.id FROM jobs j \(index) JOIN accounts a ON a.name = j.account
            WHERE j.status IN ('pending', 'retrying')
              AND (j.retry_at IS NULL OR j.retry_at <= ?4)
              AND a.paused = 0
              AND (a.cooldown_until IS NULL OR a.cooldown_until <= ?4)
              AND (a.rest_until IS NULL OR a.rest_until <= ?4)
              AND (a.daily_limit = 0 OR (SELECT COUNT(*) FROM jobs d
                   WHERE d.account = j.account AND d.status = 'success' AND d.completed_day = ?5) < a.daily_limit)
              AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.account = j.account AND b.status IN ('claimed', 'running'))
              AND (j.avoid_device IS NULL OR j.avoid_device != ?2
                   OR NOT EXISTS (SELECT 1 FROM devices o WHERE o.name != ?2 AND o.healthy = 1 AND o.paused = 0
                                  AND (o.cooldown_until IS NULL OR o.cooldown_until <= ?4)))
              AND NOT EXISTS (SELECT 1 FROM hosts h WHERE h.name = ?7 AND h.state = 'lost')
              AND EXISTS (SELECT 1 FROM devices v WHERE v.name = ?2 AND v.host IN (?7, '') AND v.healthy = 1 AND v.paused = 0
                          AND (v.cooldown_until IS NULL OR v.cooldown_until <= ?4))
            ORDER BY j.priority DESC, j.seq
            LIMIT 1 \(rowLocks))
        RETURNING *
        """
    }

    public func claim(worker: Int, device: String, token: String, now: Moment, today: String, bootSeconds: Double) throws(StoreError) -> ClaimedJob? {
        let now = try databaseTime(now)
        let bootSeconds = try databaseTime(boot: bootSeconds)
        return try connection.write { () throws(StoreError) -> ClaimedJob? in
            guard let row = try connection.query(
                claimStatement,
                [.integer(Int64(worker)), .text(device), .text(token), .time(now), .text(today), .real(bootSeconds), .text(host)]).first
            else { return nil }
            let job = job(from: row)
            if dialect == .sqlite {
                try connection.run("UPDATE workers SET state = 'running', job = ?2, heartbeat_boot = ?3, state_since = ?5 WHERE idx = ?1 AND host = ?4",
                                   [.integer(Int64(worker)), .text(job.id), .real(bootSeconds), .text(host), .time(now)])
            }
            return ClaimedJob(job: job, token: token)
        }
    }

    public func claimed(token: String) throws(StoreError) -> ClaimedJob? {
        try connection.query("SELECT * FROM jobs WHERE claim_token = ?1 AND status IN ('claimed', 'running')", [.text(token)])
            .first.map { ClaimedJob(job: job(from: $0), token: token) }
    }

    public func markRunning(_ claim: ClaimedJob, bootSeconds: Double) throws(StoreError) -> Bool {
        let bootSeconds = try databaseTime(boot: bootSeconds)
        return try writeOne { () throws(StoreError) -> Bool in
            try connection.run(
                "UPDATE jobs SET status = 'running', heartbeat_boot = ?3 WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running')",
                [.text(claim.job.id), .text(claim.token), .real(bootSeconds)]) == 1
        }
    }

    public func recordProgress(_ claim: ClaimedJob, progress: Int, bootSeconds: Double, completed step: CompletedStep?) throws(StoreError) -> Bool {
        let bootSeconds = try databaseTime(boot: bootSeconds)
        if dialect == .postgresql, let step { return try recordProgressInOneStatement(claim, progress: progress, bootSeconds: bootSeconds, step: step) }
        return try writeOne { () throws(StoreError) -> Bool in
            let recorded = try connection.run(
                "UPDATE jobs SET progress = ?3, heartbeat_boot = ?4 WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running')",
                [.text(claim.job.id), .text(claim.token), .integer(Int64(progress)), .real(bootSeconds)]) == 1
            if recorded, let step {
                var tally = stepTally(step, of: claim)
                if let output = step.output { try keep(output, into: &tally) }
                try record(tally)
            }
            return recorded
        }
    }

    public func finish(_ claim: ClaimedJob, outcome: JobOutcome, policy: FailurePolicy, now: Moment, today: String) throws(StoreError) -> Bool {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> Bool in
            guard let row = try connection.query(
                "SELECT * FROM jobs WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running')",
                [.text(claim.job.id), .text(claim.token)]).first
            else { return false }
            let job = job(from: row)
            var generator = SystemRandomNumberGenerator()
            let change = policy.change(for: outcome, of: job, device: job.device ?? "", now: now, using: &generator)
            try apply(change, to: job, policy: policy, now: now, today: today)
            try record(Self.tally(of: job, outcome: outcome.label, change: change, now: now))
            if let worker = job.worker {
                try connection.run("UPDATE workers SET state = 'idle', job = NULL, state_since = ?3 WHERE idx = ?1 AND host = ?2",
                                   [.integer(Int64(worker)), .text(job.host ?? host), .time(now)])
            }
            return true
        }
    }

    /// Writes what the policy decided: the job's row, its account and device, the events.
    /// Inside the caller's transaction.
    func apply(_ change: JobChange, to job: Job, policy: FailurePolicy, now: Moment, today: String) throws(StoreError) {
        var assignments = ["status = ?2", "claim_token = NULL"]
        var values: [SQLValue] = [Self.text(job.id), .text(change.status.rawValue)]
        func assign(_ column: String, _ value: SQLValue) {
            values.append(value)
            assignments.append("\(column) = ?\(values.count)")
        }
        func assign(_ column: String, _ field: JobChange.Field<String>) {
            switch field {
            case .keep: break
            case .set(let text): assign(column, .text(text))
            case .clear: assignments.append("\(column) = NULL")
            }
        }
        if change.completes {
            assign("completed_at", .time(now))
            if change.status == .success { assign("completed_day", .text(today)) }
        }
        if change.refundsAttempt { assignments.append("attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END") }
        if let crashes = change.crashes { assign("crashes", .integer(Int64(crashes))) }
        if let attempts = change.infrastructureAttempts { assign("infra_attempts", .integer(Int64(attempts))) }
        switch change.retryAt {
        case .keep: break
        case .set(let moment): assign("retry_at", .time(moment))
        case .clear: assignments.append("retry_at = NULL")
        }
        assign("error", change.error)
        assign("error_type", change.errorType)
        assign("avoid_device", change.avoidDevice)
        try connection.run("UPDATE jobs SET \(assignments.joined(separator: ", ")) WHERE id = ?1", values)

        for event in change.events { try insertEvent(event) }
        try countMetric(subjects: ["account:\(job.account)"] + (job.device.map { ["device:\($0)"] } ?? []), outcome: change.status.rawValue, now: now)
        let device = job.device ?? ""
        if let until = change.accountRestsUntil {
            try connection.run("UPDATE accounts SET rest_until = ?2 WHERE name = ?1", [.text(job.account), .time(until)])
        }
        if let reason = change.pauseAccount {
            try connection.run("UPDATE accounts SET paused = 1, paused_reason = ?2 WHERE name = ?1", [.text(job.account), .text(reason)])
        }
        switch change.infrastructure {
        case .untouched: break
        case .reset:
            try connection.run("UPDATE accounts SET infra_failures = 0, cooldown_level = 0 WHERE name = ?1", [.text(job.account)])
            try connection.run("UPDATE devices SET infra_failures = 0, cooldown_level = 0 WHERE name = ?1", [.text(device)])
        case .charge:
            // After the job's own events: the cooldowns it caused, if any.
            for (table, name) in [("accounts", job.account), ("devices", device)] {
                try chargeInfrastructure(table: table, name: name, policy: policy, now: now, job: job)
            }
        }
    }

    /// One more infrastructure failure for an account or a device (`FailurePolicy.charge`).
    func chargeInfrastructure(table: String, name: String, policy: FailurePolicy, now: Moment, job: Job) throws(StoreError) {
        guard let row = try connection.query("SELECT infra_failures, cooldown_level FROM \(table) WHERE name = ?1", [.text(name)]).first
        else { return }
        let before = Int(row["infra_failures"].int ?? 0)
        let charged = policy.charge(failures: before, level: Int(row["cooldown_level"].int ?? 0))
        guard let seconds = charged.cooldownSeconds else {
            try connection.run("UPDATE \(table) SET infra_failures = ?2 WHERE name = ?1", [.text(name), .integer(Int64(charged.failures))])
            return
        }
        try connection.run(
            "UPDATE \(table) SET infra_failures = 0, cooldown_level = ?2, cooldown_until = ?3 WHERE name = ?1",
            [.text(name), .integer(Int64(charged.level)), .time(now + seconds)])
        try insertEvent(Event(
            at: now, kind: .cooldown(of: table), job: job.id, account: table == "accounts" ? name : nil,
            device: table == "devices" ? name : nil, worker: job.worker,
            message: "\(before + 1) infrastructure failures in a row: cooldown \(formatDuration(seconds)) (level \(charged.level))"))
    }

    public func requeueClaims(worker: Int?, crashed: Bool, policy: FailurePolicy, now: Moment) throws(StoreError) -> [String] {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> [String] in
            let rows = try connection.query(
                """
                SELECT * FROM jobs WHERE status IN ('claimed', 'running') AND (CAST(?1 AS BIGINT) IS NULL OR worker = ?1)
                    AND (host = ?2 OR host IS NULL)
                """,
                [worker.map { .integer(Int64($0)) } ?? .null, .text(host)])
            var generator = SystemRandomNumberGenerator()
            var ids: [String] = []
            for row in rows {
                let job = job(from: row)
                let change = policy.changeForLostClaim(of: job, crashed: crashed, now: now, using: &generator)
                try apply(change, to: job, policy: policy, now: now, today: "")
                try record(Self.tally(of: job, outcome: "lost", change: change, now: now))
                ids.append(job.id)
            }
            return ids
        }
    }

    /// PostgreSQL: the progress, the step's output and its counts in one statement (one round
    /// trip, one transaction), each written only when the claim still holds.
    func recordProgressInOneStatement(_ claim: ClaimedJob, progress: Int, bootSeconds: Double, step: CompletedStep) throws(StoreError) -> Bool {
        var values: [SQLValue] = [.text(claim.job.id), .text(claim.token), .integer(Int64(progress)), .real(bootSeconds)]
        var parts = ["p AS (UPDATE jobs SET progress = ?3, heartbeat_boot = ?4 WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running') RETURNING id)"]
        var tally = stepTally(step, of: claim)
        if let output = step.output {
            let keeping = try keepStatement(output, firstParameter: values.count + 1, from: "p")
            parts.append("o AS (\(keeping.sql))")
            values += keeping.values
            tally.count(.stepAttempts, stepAttemptLabels(output))
        }
        let counting = tallyStatement(tally, firstParameter: values.count + 1, from: "p")
        parts.append("c AS (\(counting.sql))")
        values += counting.values
        return try connection.query("WITH " + parts.joined(separator: ",\n") + "\nSELECT COUNT(*) AS n FROM p", values).first?["n"].int == 1
    }

    /// What a completed step adds to the counts: its time.
    func stepTally(_ step: CompletedStep, of claim: ClaimedJob) -> Tally {
        var tally = Tally()
        tally.observe(.stepDuration, [("step", step.name), ("host", claim.job.host ?? host)], seconds: step.seconds)
        return tally
    }

    /// What an attempt's end adds to the counts: the attempt by outcome, its duration, and
    /// the job when it reached a final state.
    static func tally(of job: Job, outcome: String, change: JobChange, now: Moment) -> Tally {
        var tally = Tally()
        let host = job.host ?? ""
        tally.count(.attempts, [("outcome", outcome), ("account", job.account), ("device", job.device ?? ""), ("host", host)])
        if let claimed = job.claimedAt { tally.observe(.attemptDuration, [("outcome", outcome), ("host", host)], seconds: now - claimed) }
        if change.completes {
            tally.count(.finished, [("outcome", change.status == .success ? "success" : "failed"), ("account", job.account), ("device", job.device ?? ""), ("host", host)])
        }
        return tally
    }

    public func remainingWork(today: String) throws(StoreError) -> Int {
        Int(try connection.query(
            """
            SELECT COUNT(*) AS n FROM jobs j JOIN accounts a ON a.name = j.account
            WHERE j.status IN ('claimed', 'running')
               OR (j.status IN ('pending', 'retrying') AND a.paused = 0
                   AND (a.daily_limit = 0 OR (SELECT COUNT(*) FROM jobs d WHERE d.account = j.account
                        AND d.status = 'success' AND d.completed_day = ?1) < a.daily_limit))
            """, [.text(today)]).first?["n"].int ?? 0)
    }

    public func runnableNow(today: String, now: Moment) throws(StoreError) -> Int {
        let now = try databaseTime(now)
        return Int(try connection.query(
            """
            SELECT COUNT(*) AS n FROM jobs j JOIN accounts a ON a.name = j.account
            WHERE j.status IN ('claimed', 'running')
               OR (j.status IN ('pending', 'retrying') AND a.paused = 0
                   AND (j.retry_at IS NULL OR j.retry_at <= ?2)
                   AND (a.cooldown_until IS NULL OR a.cooldown_until <= ?2) AND (a.rest_until IS NULL OR a.rest_until <= ?2)
                   AND (a.daily_limit = 0 OR (SELECT COUNT(*) FROM jobs d WHERE d.account = j.account
                        AND d.status = 'success' AND d.completed_day = ?1) < a.daily_limit))
            """, [.text(today), .time(now)]).first?["n"].int ?? 0)
    }

    public func successes(on day: String) throws(StoreError) -> [String: Int] {
        var result: [String: Int] = [:]
        for row in try connection.query(
            "SELECT account, COUNT(*) AS n FROM jobs WHERE status = 'success' AND completed_day = ?1 GROUP BY account", [.text(day)]) {
            result[row["account"].string ?? ""] = Int(row["n"].int ?? 0)
        }
        return result
    }
}
