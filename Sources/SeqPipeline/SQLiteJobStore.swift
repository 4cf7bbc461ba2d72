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
        // 4: an account's rest between two of its jobs.
        """
        ALTER TABLE accounts ADD COLUMN rest_until REAL;
        """,
        // 5: alerts going out: each raise and clear, until delivered (or given up).
        """
        CREATE TABLE notifications(
            id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL,
            state TEXT NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
            delivered_at REAL, failed_at REAL, last_error TEXT);
        CREATE INDEX notifications_due ON notifications(next_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
        """,
        // 6: metrics per device and per account, rolled up by the hour (bounded: see Metrics).
        """
        CREATE TABLE metrics(
            hour INTEGER NOT NULL, subject TEXT NOT NULL, outcome TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0, response_ms_sum INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(hour, subject, outcome));
        """,
        // 7: device servers run by their workers, and whether each phone is up.
        """
        ALTER TABLE devices ADD COLUMN server_argv TEXT;
        ALTER TABLE devices ADD COLUMN server_state TEXT;
        ALTER TABLE devices ADD COLUMN server_pid INTEGER;
        ALTER TABLE devices ADD COLUMN server_start_time INTEGER;
        ALTER TABLE devices ADD COLUMN server_port INTEGER;
        ALTER TABLE devices ADD COLUMN server_since REAL;
        ALTER TABLE devices ADD COLUMN server_note TEXT;
        ALTER TABLE devices ADD COLUMN phone_state TEXT;
        ALTER TABLE devices ADD COLUMN phone_since REAL;
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
