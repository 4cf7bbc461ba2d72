import SeqGuard
import SeqSystem

// Jobs, claims and their outcomes.
extension SQLiteJobStore {
    // MARK: jobs

    public func addJobs(_ jobs: [Job]) throws(StoreError) -> [String] {
        try connection.write { () throws(StoreError) -> [String] in
            var ids: [String] = []
            let now = nowSeconds()
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
                         job.completedAt.map { .text(Clock.isoUTC(WallTime(seconds: Int64($0), nanoseconds: 0)).prefix(10).description) } ?? .null,
                         .integer(Int64(job.attempts)), .integer(Int64(job.maxAttempts)), optional(job.retryAt),
                         optional(job.error), optional(job.errorType), .real(now)])
                } catch where error.code == 19 {
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
        job.claimedAt = row["claimed_at"].double
        job.completedAt = row["completed_at"].double
        job.attempts = Int(row["attempts"].int ?? 0)
        job.maxAttempts = Int(row["max_attempts"].int ?? 3)
        job.runs = Int(row["runs"].int ?? 0)
        job.progress = Int(row["progress"].int ?? 0)
        job.crashes = Int(row["crashes"].int ?? 0)
        job.infraAttempts = Int(row["infra_attempts"].int ?? 0)
        job.retryAt = row["retry_at"].double
        job.error = row["error"].string
        job.errorType = row["error_type"].string
        job.avoidDevice = row["avoid_device"].string
        return job
    }

    public func jobs() throws(StoreError) -> [Job] {
        try connection.query("SELECT * FROM jobs ORDER BY priority DESC, seq").map(job(from:))
    }

    public func job(_ id: String) throws(StoreError) -> Job? {
        try connection.query("SELECT * FROM jobs WHERE id = ?1", [.text(id)]).first.map(job(from:))
    }

    public func retry(_ id: String) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            let changed = try connection.run(
                """
                UPDATE jobs SET status = 'pending', attempts = 0, crashes = 0, infra_attempts = 0, retry_at = NULL, error = NULL,
                    error_type = NULL, claim_token = NULL
                WHERE id = ?1 AND status IN ('failed', 'cancelled', 'retrying', 'pending')
                """, [.text(id)])
            if changed == 1 { try insertEvent(Event(at: nowSeconds(), kind: "job-retry", job: id, message: "put back to pending by hand")) }
            return changed == 1
        }
    }

    public func cancel(_ id: String) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            let changed = try connection.run(
                "UPDATE jobs SET status = 'cancelled', claim_token = NULL WHERE id = ?1 AND status IN ('pending', 'retrying', 'failed')",
                [.text(id)])
            if changed == 1 { try insertEvent(Event(at: nowSeconds(), kind: "job-cancelled", job: id, message: "cancelled by hand")) }
            return changed == 1
        }
    }

    // MARK: claims

    /// Walks the waiting jobs in claim order through `jobs_waiting` and stops at the first
    /// eligible one: a claim costs the jobs it skips, not the whole queue (a sort of every
    /// waiting job made 2,000 jobs take quadratic time).
    static let claimStatement = """
        UPDATE jobs SET status = 'claimed', worker = ?1, device = ?2, claim_token = ?3, claimed_at = ?4,
            claimed_boot = ?6, heartbeat_boot = ?6, attempts = attempts + 1, runs = runs + 1, retry_at = NULL
        WHERE id = (
            SELECT j.id FROM jobs j INDEXED BY jobs_waiting JOIN accounts a ON a.name = j.account
            WHERE j.status IN ('pending', 'retrying')
              AND (j.retry_at IS NULL OR j.retry_at <= ?4)
              AND a.paused = 0
              AND (a.cooldown_until IS NULL OR a.cooldown_until <= ?4)
              AND (a.daily_limit = 0 OR (SELECT COUNT(*) FROM jobs d
                   WHERE d.account = j.account AND d.status = 'success' AND d.completed_day = ?5) < a.daily_limit)
              AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.account = j.account AND b.status IN ('claimed', 'running'))
              AND (j.avoid_device IS NULL OR j.avoid_device != ?2
                   OR NOT EXISTS (SELECT 1 FROM devices o WHERE o.name != ?2 AND o.healthy = 1
                                  AND (o.cooldown_until IS NULL OR o.cooldown_until <= ?4)))
              AND EXISTS (SELECT 1 FROM devices v WHERE v.name = ?2 AND v.healthy = 1
                          AND (v.cooldown_until IS NULL OR v.cooldown_until <= ?4))
            ORDER BY j.priority DESC, j.seq
            LIMIT 1)
        RETURNING *
        """

    public func claim(worker: Int, device: String, now: Double, today: String, bootSeconds: Double) throws(StoreError) -> ClaimedJob? {
        let token = Processes.randomHex(bytes: 8)
        return try connection.write { () throws(StoreError) -> ClaimedJob? in
            guard let row = try connection.query(
                Self.claimStatement,
                [.integer(Int64(worker)), .text(device), .text(token), .real(now), .text(today), .real(bootSeconds)]).first
            else { return nil }
            let job = job(from: row)
            try connection.run("UPDATE workers SET state = 'running', job = ?2, heartbeat_boot = ?3 WHERE idx = ?1",
                               [.integer(Int64(worker)), .text(job.id), .real(bootSeconds)])
            return ClaimedJob(job: job, token: token)
        }
    }

    public func markRunning(_ claim: ClaimedJob, bootSeconds: Double) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            try connection.run(
                "UPDATE jobs SET status = 'running', heartbeat_boot = ?3 WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running')",
                [.text(claim.job.id), .text(claim.token), .real(bootSeconds)]) == 1
        }
    }

    public func recordProgress(_ claim: ClaimedJob, progress: Int, bootSeconds: Double) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            try connection.run(
                "UPDATE jobs SET progress = ?3, heartbeat_boot = ?4 WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running')",
                [.text(claim.job.id), .text(claim.token), .integer(Int64(progress)), .real(bootSeconds)]) == 1
        }
    }

    public func finish(_ claim: ClaimedJob, outcome: JobOutcome, policy: FailurePolicy, now: Double, today: String) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            guard let row = try connection.query(
                "SELECT * FROM jobs WHERE id = ?1 AND claim_token = ?2 AND status IN ('claimed', 'running')",
                [.text(claim.job.id), .text(claim.token)]).first
            else { return false }
            let job = job(from: row)
            let id = Self.text(job.id)
            let device = job.device ?? ""
            func event(_ kind: String, _ message: String) throws(StoreError) {
                try insertEvent(Event(at: now, kind: kind, job: job.id, account: job.account, device: job.device, worker: job.worker, message: message))
            }
            switch outcome {
            case .success:
                try connection.run(
                    """
                    UPDATE jobs SET status = 'success', completed_at = ?2, completed_day = ?3, claim_token = NULL,
                        error = NULL, error_type = NULL, retry_at = NULL, avoid_device = NULL WHERE id = ?1
                    """, [id, .real(now), .text(today)])
                try connection.run("UPDATE accounts SET infra_failures = 0, cooldown_level = 0 WHERE name = ?1", [.text(job.account)])
                try connection.run("UPDATE devices SET infra_failures = 0, cooldown_level = 0 WHERE name = ?1", [.text(device)])
                try event("job-success", "done in run \(job.runs)")
            case .permanent(let type, let message):
                try connection.run(
                    "UPDATE jobs SET status = 'failed', completed_at = ?2, claim_token = NULL, error = ?3, error_type = ?4 WHERE id = ?1",
                    [id, .real(now), .text(message), .text(type)])
                try connection.run("UPDATE accounts SET paused = 1, paused_reason = ?2 WHERE name = ?1",
                                   [.text(job.account), .text("\(type) (job \(job.id))")])
                try event("account-paused", "\(type): \(message); its jobs wait for 'seqpipe account resume \(job.account)'")
            case .infrastructure(let message), .handOff(let message):
                // Not the job's fault: its attempts stay uncharged, the account's and the
                // device's counters take it. A separate, larger budget still ends a job that
                // never gets through, so no job retries forever.
                if case .handOff = outcome {
                    try connection.run("UPDATE jobs SET avoid_device = ?2 WHERE id = ?1", [id, .text(device)])
                    try event("job-handoff", "device \(device) could not run it after its server and device restarts; another device takes it")
                }
                let infraAttempts = job.infraAttempts + 1
                if infraAttempts >= policy.maxInfrastructureAttempts {
                    try connection.run(
                        """
                        UPDATE jobs SET status = 'failed', completed_at = ?2, claim_token = NULL, infra_attempts = ?3, attempts = MAX(attempts - 1, 0),
                            error = ?4, error_type = 'infrastructure' WHERE id = ?1
                        """, [id, .real(now), .integer(Int64(infraAttempts)), .text(message)])
                    try event("job-failed", "after \(infraAttempts) infrastructure failures: \(message)")
                } else {
                    let retryAt = now + Double.random(in: 0...max(policy.infraRetrySeconds, 0))
                    try connection.run(
                        """
                        UPDATE jobs SET status = 'retrying', attempts = MAX(attempts - 1, 0), claim_token = NULL, infra_attempts = ?4,
                            retry_at = ?2, error = ?3, error_type = 'infrastructure' WHERE id = ?1
                        """, [id, .real(retryAt), .text(message), .integer(Int64(infraAttempts))])
                    try event("job-infrastructure", message)
                }
                for (table, name) in [("accounts", job.account), ("devices", device)] {
                    try chargeInfrastructure(table: table, name: name, policy: policy, now: now, job: job)
                }
            case .retryable(let message), .memory(let message):
                var crashes = job.crashes
                var type = "retryable"
                if case .memory = outcome { crashes += 1; type = "memory" }
                if crashes >= policy.poisonAfter {
                    try connection.run(
                        "UPDATE jobs SET status = 'failed', completed_at = ?2, claim_token = NULL, crashes = ?3, error = ?4, error_type = 'poison' WHERE id = ?1",
                        [id, .real(now), .integer(Int64(crashes)), .text(message)])
                    try event("job-poison", "quarantined after \(crashes) crashes: \(message)")
                } else if job.attempts >= job.maxAttempts {
                    try connection.run(
                        "UPDATE jobs SET status = 'failed', completed_at = ?2, claim_token = NULL, crashes = ?3, error = ?4, error_type = ?5 WHERE id = ?1",
                        [id, .real(now), .integer(Int64(crashes)), .text(message), .text(type)])
                    try event("job-failed", "after \(job.attempts) attempts: \(message)")
                } else {
                    let retryAt = now + policy.backoff(failures: job.attempts)
                    try connection.run(
                        "UPDATE jobs SET status = 'retrying', claim_token = NULL, crashes = ?3, retry_at = ?2, error = ?4, error_type = ?5 WHERE id = ?1",
                        [id, .real(retryAt), .integer(Int64(crashes)), .text(message), .text(type)])
                    try event("job-retrying", "attempt \(job.attempts) of \(job.maxAttempts) failed: \(message)")
                }
            case .invalid(let message):
                try connection.run(
                    "UPDATE jobs SET status = 'failed', completed_at = ?2, claim_token = NULL, error = ?3, error_type = 'invalid' WHERE id = ?1",
                    [id, .real(now), .text(message)])
                try event("job-failed", message)
            case .stopped:
                try connection.run(
                    "UPDATE jobs SET status = 'pending', attempts = MAX(attempts - 1, 0), claim_token = NULL, retry_at = NULL WHERE id = ?1",
                    [id])
                try event("job-released", "stopped before it finished; back to pending")
            }
            if let worker = job.worker {
                try connection.run("UPDATE workers SET state = 'idle', job = NULL WHERE idx = ?1", [.integer(Int64(worker))])
            }
            return true
        }
    }

    /// One more infrastructure failure for an account or a device; the Nth in a row puts it on
    /// a cooldown that doubles each time, until a success.
    func chargeInfrastructure(table: String, name: String, policy: FailurePolicy, now: Double, job: Job) throws(StoreError) {
        guard let row = try connection.query("SELECT infra_failures, cooldown_level FROM \(table) WHERE name = ?1", [.text(name)]).first
        else { return }
        let failures = Int(row["infra_failures"].int ?? 0) + 1
        let level = Int(row["cooldown_level"].int ?? 0)
        if failures >= policy.cooldownAfter {
            let seconds = policy.cooldown(level: level)
            try connection.run(
                "UPDATE \(table) SET infra_failures = 0, cooldown_level = ?2, cooldown_until = ?3 WHERE name = ?1",
                [.text(name), .integer(Int64(level + 1)), .real(now + seconds)])
            let what = table == "accounts" ? "account" : "device"
            try insertEvent(Event(
                at: now, kind: "\(what)-cooldown", job: job.id, account: table == "accounts" ? name : nil,
                device: table == "devices" ? name : nil, worker: job.worker,
                message: "\(failures) infrastructure failures in a row: cooldown \(durationText(seconds)) (level \(level + 1))"))
        } else {
            try connection.run("UPDATE \(table) SET infra_failures = ?2 WHERE name = ?1", [.text(name), .integer(Int64(failures))])
        }
    }

    public func requeueClaims(worker: Int?, crashed: Bool, policy: FailurePolicy, now: Double) throws(StoreError) -> [String] {
        try connection.write { () throws(StoreError) -> [String] in
            let rows = try connection.query(
                "SELECT * FROM jobs WHERE status IN ('claimed', 'running') AND (?1 IS NULL OR worker = ?1)",
                [worker.map { .integer(Int64($0)) } ?? .null])
            var ids: [String] = []
            for row in rows {
                let job = job(from: row)
                let id = Self.text(job.id)
                // Spread over the window, so a recovered fleet is not flooded at once.
                let retryAt = now + Double.random(in: 0...max(policy.requeueSpreadSeconds, 0))
                let event: Event
                if crashed {
                    let crashes = job.crashes + 1
                    if crashes >= policy.poisonAfter {
                        try connection.run(
                            "UPDATE jobs SET status = 'failed', claim_token = NULL, crashes = ?2, completed_at = ?3, error = 'its worker died during the job', error_type = 'poison' WHERE id = ?1",
                            [id, .integer(Int64(crashes)), .real(now)])
                        event = Event(at: now, kind: "job-poison", job: job.id, account: job.account, device: job.device, worker: job.worker,
                                      message: "quarantined: its worker died \(crashes) times during it")
                    } else {
                        try connection.run(
                            "UPDATE jobs SET status = 'retrying', claim_token = NULL, crashes = ?2, retry_at = ?3, error = 'its worker died during the job', error_type = 'crash' WHERE id = ?1",
                            [id, .integer(Int64(crashes)), .real(retryAt)])
                        event = Event(at: now, kind: "job-requeued", job: job.id, account: job.account, device: job.device, worker: job.worker,
                                      message: "worker died mid-job (crash \(crashes) of \(policy.poisonAfter)); requeued")
                    }
                } else {
                    try connection.run(
                        "UPDATE jobs SET status = 'pending', claim_token = NULL, attempts = MAX(attempts - 1, 0), retry_at = ?2 WHERE id = ?1",
                        [id, .real(retryAt)])
                    event = Event(at: now, kind: "job-requeued", job: job.id, account: job.account, device: job.device, worker: job.worker,
                                  message: "orphaned claim (no orchestrator held it); requeued")
                }
                try insertEvent(event)
                ids.append(job.id)
            }
            return ids
        }
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

    public func successes(on day: String) throws(StoreError) -> [String: Int] {
        var result: [String: Int] = [:]
        for row in try connection.query(
            "SELECT account, COUNT(*) AS n FROM jobs WHERE status = 'success' AND completed_day = ?1 GROUP BY account", [.text(day)]) {
            result[row["account"].string ?? ""] = Int(row["n"].int ?? 0)
        }
        return result
    }
}
