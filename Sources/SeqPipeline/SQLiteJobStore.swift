import SeqGuard
import SeqSystem

/// The SQLite store: one file, WAL mode, every write in `BEGIN IMMEDIATE`.
public final class SQLiteJobStore: JobStore {
    public let connection: SQLiteConnection

    public init(path: String) throws(StoreError) {
        connection = try SQLiteConnection(path: path)
    }

    /// Schema versions, applied in order; `PRAGMA user_version` says how many are in.
    static let migrations: [String] = [
        """
        CREATE TABLE devices(
            name TEXT PRIMARY KEY,
            status_url TEXT, health_command TEXT, restart_command TEXT, stop_command TEXT,
            healthy INTEGER NOT NULL DEFAULT 1,
            health_failures INTEGER NOT NULL DEFAULT 0,
            infra_failures INTEGER NOT NULL DEFAULT 0,
            cooldown_until REAL, cooldown_level INTEGER NOT NULL DEFAULT 0,
            response_ms INTEGER, last_check REAL, last_error TEXT,
            added_at REAL NOT NULL);
        CREATE TABLE accounts(
            name TEXT PRIMARY KEY,
            daily_limit INTEGER NOT NULL DEFAULT 0,
            paused INTEGER NOT NULL DEFAULT 0, paused_reason TEXT,
            infra_failures INTEGER NOT NULL DEFAULT 0,
            cooldown_until REAL, cooldown_level INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE jobs(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            account TEXT NOT NULL REFERENCES accounts(name),
            payload TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending','claimed','running','success','failed','retrying','cancelled')),
            priority INTEGER NOT NULL DEFAULT 0,
            worker INTEGER, device TEXT, claim_token TEXT,
            claimed_at REAL, claimed_boot REAL, heartbeat_boot REAL,
            completed_at REAL, completed_day TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 3,
            runs INTEGER NOT NULL DEFAULT 0, progress INTEGER NOT NULL DEFAULT 0,
            crashes INTEGER NOT NULL DEFAULT 0, infra_attempts INTEGER NOT NULL DEFAULT 0,
            retry_at REAL, error TEXT, error_type TEXT,
            created_at REAL NOT NULL);
        CREATE INDEX jobs_waiting ON jobs(priority DESC, seq) WHERE status IN ('pending', 'retrying');
        CREATE UNIQUE INDEX jobs_one_active_per_account ON jobs(account) WHERE status IN ('claimed','running');
        CREATE UNIQUE INDEX jobs_one_active_per_worker ON jobs(worker) WHERE status IN ('claimed','running');
        CREATE INDEX jobs_done_by_day ON jobs(account, completed_day) WHERE status = 'success';
        CREATE TABLE workers(
            idx INTEGER PRIMARY KEY, pid INTEGER NOT NULL, start_time INTEGER NOT NULL,
            device TEXT NOT NULL, state TEXT NOT NULL, job TEXT,
            restarts INTEGER NOT NULL DEFAULT 0, heartbeat_boot REAL);
        CREATE TABLE events(
            id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
            job TEXT, account TEXT, device TEXT, worker INTEGER, message TEXT NOT NULL);
        """,
        // 2: recurring jobs' heartbeats.
        """
        CREATE TABLE heartbeats(
            name TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'idle',
            last_start REAL, last_success REAL, last_failure REAL, last_skip REAL,
            skip_reason TEXT, last_error TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0, runs INTEGER NOT NULL DEFAULT 0,
            pid INTEGER, start_time INTEGER);
        """,
        // 3: the watchdog, pools and dependencies, graded device recovery.
        """
        ALTER TABLE heartbeats ADD COLUMN next_due REAL;
        ALTER TABLE heartbeats ADD COLUMN beat_at REAL;
        ALTER TABLE heartbeats ADD COLUMN progress TEXT;
        ALTER TABLE heartbeats ADD COLUMN progress_at REAL;
        ALTER TABLE heartbeats ADD COLUMN waiting TEXT;
        ALTER TABLE devices ADD COLUMN server_restart_command TEXT;
        ALTER TABLE jobs ADD COLUMN avoid_device TEXT;
        CREATE TABLE alerts(
            key TEXT PRIMARY KEY, kind TEXT NOT NULL, message TEXT NOT NULL,
            raised_at REAL NOT NULL, seen_at REAL NOT NULL, cleared_at REAL);
        CREATE TABLE checks(name TEXT PRIMARY KEY, at REAL NOT NULL, ok INTEGER NOT NULL, message TEXT NOT NULL);
        CREATE INDEX events_at ON events(at);
        """,
    ]

    public static var schemaVersion: Int { migrations.count }

    public func migrate() throws(StoreError) {
        let current = Int(try connection.query("PRAGMA user_version").first?["user_version"].int ?? 0)
        if current > Self.migrations.count {
            throw StoreError("store \(connection.path) has schema version \(current), newer than this seqpipe's \(Self.migrations.count); use a newer seqpipe")
        }
        for version in current..<Self.migrations.count {
            try connection.write { () throws(StoreError) in
                // Read again under the write lock: another process may have migrated meanwhile.
                let now = Int(try connection.query("PRAGMA user_version").first?["user_version"].int ?? 0)
                guard now == version else { return }
                try connection.execute(Self.migrations[version])
                try connection.execute("PRAGMA user_version = \(version + 1)")
            }
        }
    }

    // MARK: devices and accounts

    public func addDevice(_ device: Device) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO devices(name, status_url, health_command, restart_command, stop_command, added_at, server_restart_command)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                ON CONFLICT(name) DO UPDATE SET status_url = ?2, health_command = ?3, restart_command = ?4, stop_command = ?5,
                    server_restart_command = ?7
                """,
                [.text(device.name), optional(device.statusURL), optional(device.healthCommand),
                 optional(device.restartCommand), optional(device.stopCommand), .real(nowSeconds()), optional(device.serverRestartCommand)])
        }
    }

    public func removeDevice(_ name: String) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            try connection.run("DELETE FROM devices WHERE name = ?1", [.text(name)]) == 1
        }
    }

    public func devices() throws(StoreError) -> [Device] {
        try connection.query("SELECT * FROM devices ORDER BY name").map { row in
            var device = Device(name: row["name"].string ?? "")
            device.statusURL = row["status_url"].string
            device.healthCommand = row["health_command"].string
            device.restartCommand = row["restart_command"].string
            device.stopCommand = row["stop_command"].string
            device.serverRestartCommand = row["server_restart_command"].string
            device.healthy = row["healthy"].int == 1
            device.healthFailures = Int(row["health_failures"].int ?? 0)
            device.infraFailures = Int(row["infra_failures"].int ?? 0)
            device.cooldownUntil = row["cooldown_until"].double
            device.cooldownLevel = Int(row["cooldown_level"].int ?? 0)
            device.responseMilliseconds = row["response_ms"].int.map { Int($0) }
            device.lastCheck = row["last_check"].double
            device.lastError = row["last_error"].string
            return device
        }
    }

    public func addAccount(_ name: String, dailyLimit: Int) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                "INSERT INTO accounts(name, daily_limit) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET daily_limit = ?2",
                [.text(name), .integer(Int64(dailyLimit))])
        }
    }

    public func accounts() throws(StoreError) -> [Account] {
        try connection.query("SELECT * FROM accounts ORDER BY name").map { row in
            var account = Account(name: row["name"].string ?? "")
            account.dailyLimit = Int(row["daily_limit"].int ?? 0)
            account.paused = row["paused"].int == 1
            account.pausedReason = row["paused_reason"].string
            account.infraFailures = Int(row["infra_failures"].int ?? 0)
            account.cooldownUntil = row["cooldown_until"].double
            account.cooldownLevel = Int(row["cooldown_level"].int ?? 0)
            return account
        }
    }

    public func resumeAccount(_ name: String) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            let changed = try connection.run(
                "UPDATE accounts SET paused = 0, paused_reason = NULL, cooldown_until = NULL, cooldown_level = 0, infra_failures = 0 WHERE name = ?1",
                [.text(name)])
            if changed == 1 { try insertEvent(Event(at: nowSeconds(), kind: "account-resumed", account: name, message: "resumed by hand")) }
            return changed == 1
        }
    }

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

    // MARK: device health

    public func recordHealth(device: String, ok: Bool, responseMilliseconds: Int?, error: String?, now: Double) throws(StoreError) -> Int {
        try connection.write { () throws(StoreError) -> Int in
            if ok {
                try connection.run(
                    """
                    UPDATE devices SET healthy = 1, health_failures = 0, response_ms = ?2, last_check = ?3, last_error = NULL,
                        cooldown_until = CASE WHEN healthy = 0 THEN NULL ELSE cooldown_until END
                    WHERE name = ?1
                    """, [.text(device), responseMilliseconds.map { .integer(Int64($0)) } ?? .null, .real(now)])
                return 0
            }
            let row = try connection.query(
                "UPDATE devices SET healthy = 0, health_failures = health_failures + 1, last_check = ?2, last_error = ?3 WHERE name = ?1 RETURNING health_failures",
                [.text(device), .real(now), optional(error)]).first
            return Int(row?["health_failures"].int ?? 0)
        }
    }

    public func holdDevice(_ name: String, until: Double, reason: String) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                "UPDATE devices SET healthy = 0, cooldown_until = ?2, last_error = ?3 WHERE name = ?1",
                [.text(name), .real(until), .text(reason)])
            try insertEvent(Event(at: nowSeconds(), kind: "device-unhealthy", device: name, message: reason))
        }
    }

    // MARK: recurring jobs

    public func recordRecurringStart(_ name: String, process: ProcessIdentity, now: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO heartbeats(name, state, last_start, runs, pid, start_time, beat_at) VALUES (?1, 'running', ?2, 1, ?3, ?4, ?2)
                ON CONFLICT(name) DO UPDATE SET state = 'running', last_start = ?2, runs = runs + 1, pid = ?3, start_time = ?4,
                    beat_at = ?2, progress = NULL, progress_at = NULL, waiting = NULL
                """, [.text(name), .real(now), .integer(Int64(process.pid)), .integer(Int64(process.startTime))])
            try insertEvent(Event(at: now, kind: "recurring-start", message: "\(name): run started (pid \(process.pid))"))
        }
    }

    public func recordRecurringState(_ name: String, state: String) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE heartbeats SET state = ?2 WHERE name = ?1", [.text(name), .text(state)])
        }
    }

    public func recordRecurringEnd(_ name: String, succeeded: Bool, error: String?, now: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            if succeeded {
                try connection.run(
                    "UPDATE heartbeats SET state = 'idle', last_success = ?2, consecutive_failures = 0, pid = NULL, start_time = NULL WHERE name = ?1",
                    [.text(name), .real(now)])
                try insertEvent(Event(at: now, kind: "recurring-success", message: "\(name): run succeeded"))
            } else {
                try connection.run(
                    """
                    UPDATE heartbeats SET state = 'idle', last_failure = ?2, last_error = ?3,
                        consecutive_failures = consecutive_failures + 1, pid = NULL, start_time = NULL WHERE name = ?1
                    """, [.text(name), .real(now), optional(error)])
                try insertEvent(Event(at: now, kind: "recurring-failure", message: "\(name): \(error ?? "failed")"))
            }
        }
    }

    public func recordRecurringSkip(_ name: String, reason: String, now: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO heartbeats(name, last_skip, skip_reason) VALUES (?1, ?2, ?3)
                ON CONFLICT(name) DO UPDATE SET last_skip = ?2, skip_reason = ?3
                """, [.text(name), .real(now), .text(reason)])
            try insertEvent(Event(at: now, kind: "recurring-skip", message: "\(name): skipped: \(reason)"))
        }
    }

    public func recordRecurringStopped(_ name: String, reason: String, now: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE heartbeats SET state = 'idle', pid = NULL, start_time = NULL WHERE name = ?1", [.text(name)])
            try insertEvent(Event(at: now, kind: "recurring-stopped", message: "\(name): \(reason)"))
        }
    }

    public func recordRecurringBeat(_ name: String, progress: String?, now: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            if let progress {
                try connection.run("UPDATE heartbeats SET beat_at = ?2, progress = ?3, progress_at = ?2 WHERE name = ?1",
                                   [.text(name), .real(now), .text(progress)])
            } else {
                try connection.run("UPDATE heartbeats SET beat_at = ?2 WHERE name = ?1", [.text(name), .real(now)])
            }
        }
    }

    public func recordRecurringPlan(_ name: String, nextDue: Double?, waiting: String?) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO heartbeats(name, next_due, waiting) VALUES (?1, ?2, ?3)
                ON CONFLICT(name) DO UPDATE SET next_due = ?2, waiting = ?3
                """, [.text(name), optional(nextDue), optional(waiting)])
        }
    }

    // MARK: watchdog

    public func raiseAlert(_ key: String, kind: String, message: String, now: Double) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            let active = try connection.query("SELECT 1 FROM alerts WHERE key = ?1 AND cleared_at IS NULL", [.text(key)]).first != nil
            if active {
                try connection.run("UPDATE alerts SET message = ?2, seen_at = ?3 WHERE key = ?1", [.text(key), .text(message), .real(now)])
                return false
            }
            try connection.run(
                """
                INSERT INTO alerts(key, kind, message, raised_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?4)
                ON CONFLICT(key) DO UPDATE SET kind = ?2, message = ?3, raised_at = ?4, seen_at = ?4, cleared_at = NULL
                """, [.text(key), .text(kind), .text(message), .real(now)])
            return true
        }
    }

    public func clearAlert(_ key: String, now: Double) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            try connection.run("UPDATE alerts SET cleared_at = ?2 WHERE key = ?1 AND cleared_at IS NULL", [.text(key), .real(now)]) == 1
        }
    }

    public func alerts() throws(StoreError) -> [Alert] {
        try connection.query("SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at").map { row in
            Alert(key: row["key"].string ?? "", kind: row["kind"].string ?? "", message: row["message"].string ?? "",
                  raisedAt: row["raised_at"].double ?? 0, seenAt: row["seen_at"].double ?? 0)
        }
    }

    public func recordCheck(_ name: String, ok: Bool, message: String, now: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO checks(name, at, ok, message) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT(name) DO UPDATE SET at = ?2, ok = ?3, message = ?4
                """, [.text(name), .real(now), .integer(ok ? 1 : 0), .text(message)])
        }
    }

    public func checks() throws(StoreError) -> [Check] {
        try connection.query("SELECT * FROM checks ORDER BY name").map { row in
            Check(name: row["name"].string ?? "", at: row["at"].double ?? 0, ok: row["ok"].int == 1, message: row["message"].string ?? "")
        }
    }

    public func pipelineHealth(now: Double, claimedLongerThan seconds: Double) throws(StoreError) -> PipelineHealth {
        let newest = try connection.query("SELECT MAX(created_at) AS newest FROM jobs").first?["newest"].double
        let waiting = Int(try connection.query(
            "SELECT COUNT(*) AS n FROM jobs INDEXED BY jobs_waiting WHERE status IN ('pending', 'retrying')").first?["n"].int ?? 0)
        let long = try connection.query(
            "SELECT * FROM jobs WHERE status IN ('claimed', 'running') AND claimed_at < ?1 ORDER BY claimed_at",
            [.real(now - seconds)]).map(job(from:))
        return PipelineHealth(newestJobCreatedAt: newest, waiting: waiting, longClaims: long)
    }

    public func heartbeats() throws(StoreError) -> [Heartbeat] {
        try connection.query("SELECT * FROM heartbeats ORDER BY name").map { row in
            var beat = Heartbeat(name: row["name"].string ?? "")
            beat.state = row["state"].string ?? "idle"
            beat.lastStart = row["last_start"].double
            beat.lastSuccess = row["last_success"].double
            beat.lastFailure = row["last_failure"].double
            beat.lastSkip = row["last_skip"].double
            beat.skipReason = row["skip_reason"].string
            beat.lastError = row["last_error"].string
            beat.consecutiveFailures = Int(row["consecutive_failures"].int ?? 0)
            beat.runs = Int(row["runs"].int ?? 0)
            beat.nextDue = row["next_due"].double
            beat.beatAt = row["beat_at"].double
            beat.progress = row["progress"].string
            beat.progressAt = row["progress_at"].double
            beat.waiting = row["waiting"].string
            if let pid = row["pid"].int, let start = row["start_time"].int {
                beat.process = ProcessIdentity(pid: Int32(pid), startTime: UInt64(start))
            }
            return beat
        }
    }

    // MARK: workers and events

    public func setWorker(_ record: WorkerRecord) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO workers(idx, pid, start_time, device, state, job, restarts, heartbeat_boot)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                ON CONFLICT(idx) DO UPDATE SET pid = ?2, start_time = ?3, device = ?4, state = ?5, job = ?6, restarts = ?7, heartbeat_boot = ?8
                """,
                [.integer(Int64(record.index)), .integer(Int64(record.pid)), .integer(Int64(record.startTime)),
                 .text(record.device), .text(record.state), optional(record.job), .integer(Int64(record.restarts)),
                 optional(record.heartbeatBootSeconds)])
        }
    }

    public func updateWorker(index: Int, state: String, job: String?, bootSeconds: Double) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE workers SET state = ?2, job = ?3, heartbeat_boot = ?4 WHERE idx = ?1",
                               [.integer(Int64(index)), .text(state), optional(job), .real(bootSeconds)])
        }
    }

    public func workers() throws(StoreError) -> [WorkerRecord] {
        try connection.query("SELECT * FROM workers ORDER BY idx").map { row in
            WorkerRecord(
                index: Int(row["idx"].int ?? 0), pid: Int32(row["pid"].int ?? 0), startTime: UInt64(row["start_time"].int ?? 0),
                device: row["device"].string ?? "", state: row["state"].string ?? "", job: row["job"].string,
                restarts: Int(row["restarts"].int ?? 0), heartbeatBootSeconds: row["heartbeat_boot"].double)
        }
    }

    public func clearWorkers() throws(StoreError) {
        try connection.write { () throws(StoreError) in try connection.run("DELETE FROM workers") }
    }

    public func addEvent(_ event: Event) throws(StoreError) {
        try connection.write { () throws(StoreError) in try insertEvent(event) }
    }

    func insertEvent(_ event: Event) throws(StoreError) {
        try connection.run(
            "INSERT INTO events(at, kind, job, account, device, worker, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            [.real(event.at), .text(event.kind), optional(event.job), optional(event.account), optional(event.device),
             event.worker.map { .integer(Int64($0)) } ?? .null, .text(event.message)])
    }

    public func events(since: Double?, limit: Int) throws(StoreError) -> [Event] {
        try connection.query(
            "SELECT * FROM events WHERE ?2 IS NULL OR at >= ?2 ORDER BY id DESC LIMIT ?1",
            [.integer(Int64(limit)), optional(since)]).reversed().map { row in
            Event(at: row["at"].double ?? 0, kind: row["kind"].string ?? "", job: row["job"].string, account: row["account"].string,
                  device: row["device"].string, worker: row["worker"].int.map { Int($0) }, message: row["message"].string ?? "")
        }
    }

    static func text(_ value: String) -> SQLValue { .text(value) }
}

func optional(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
func optional(_ value: Double?) -> SQLValue { value.map { .real($0) } ?? .null }

/// A job's payload: flat string fields, stored as a JSON object.
enum Payload {
    static func encode(_ fields: [(String, String)]) -> String {
        JSON.encode(.object(fields.map { ($0.0, .string($0.1)) }))
    }

    static func decode(_ text: String) -> [(String, String)] {
        guard case .object(let fields)? = JSON.decode(text) else { return [] }
        return fields.compactMap { key, value in
            switch value {
            case .string(let text): return (key, text)
            case .integer(let number): return (key, String(number))
            case .number(let number): return (key, String(number))
            case .bool(let flag): return (key, flag ? "true" : "false")
            default: return nil
            }
        }
    }
}
