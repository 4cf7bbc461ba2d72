import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// Which database a store is on: the SQL is the same but for the schema, an index hint and
/// the claim's row locks.
public enum SQLDialect: Sendable {
    /// One file, WAL mode, every write in `BEGIN IMMEDIATE`.
    case sqlite
    /// A server shared by a farm's hosts; every write under one advisory lock.
    case postgresql
}

/// The store: SQLite by default (a path), PostgreSQL for a farm of hosts (a
/// `postgresql://` URL). Both run the same statements and the same outcome policy.
public final class SQLJobStore: JobStore {
    public let connection: any SQLDatabase
    public let dialect: SQLDialect
    /// The database clock's lead over this host's, as last measured (PostgreSQL only).
    var skew: (wall: Double, boot: Double, measuredAt: Int64)?
    /// The host this process works for (`run --host`, default the machine's name): its
    /// workers, claims and devices are this host's.
    public var host: String = Processes.hostName()
    /// The hour whose old metrics this connection last pruned.
    var prunedHour: Int64?

    public var outage: StoreOutage? { connection.outage }
    public func takeRecovered() -> StoreOutage? { connection.takeRecovered() }
    public func ping() throws(StoreError) { try connection.query("SELECT 1 AS one") }

    /// The SQLite store at `path` (created if missing).
    /// - Parameter readingOnly: the caller only reads, so a store that cannot be written is
    ///   opened read-only rather than refused.
    public init(path: String, create: Bool = false, readingOnly: Bool = false) throws(StoreError) {
        connection = try SQLiteConnection(path: path, create: create, readingOnly: readingOnly)
        dialect = .sqlite
    }

    /// The PostgreSQL store at `url`.
    public init(url: String) throws(StoreError) {
        connection = try PostgreSQLConnection(url: url)
        dialect = .postgresql
    }

    /// A store by location: a `postgresql://` (or `postgres://`) URL, else a file path.
    public static func open(_ location: String, create: Bool = false, readingOnly: Bool = false) throws(StoreError) -> SQLJobStore {
        isURL(location) ? try SQLJobStore(url: location) : try SQLJobStore(path: location, create: create, readingOnly: readingOnly)
    }

    /// A store as a command uses it: opened for `host`, checked to have been made by `init`
    /// (`noSchema` otherwise) and brought to the current schema. With `waiting`, a server's
    /// store that cannot be reached (restarting as a run's member starts) is tried again for
    /// as long as `waiting` answers true; it is told each failure and whether it is the first.
    public static func openForUse(_ location: String, host: String, readingOnly: Bool = false,
                                  waiting: ((StoreError, Bool) -> Bool)? = nil) throws(StoreError) -> SQLJobStore {
        var first = true
        while true {
            do throws(StoreError) {
                let store = try open(location, readingOnly: readingOnly)
                store.host = host
                guard try store.isInitialized() else { throw StoreError("no seqpipe store in \(store.connection.name)", code: noSchema) }
                try store.migrate()
                return store
            } catch where error.isUnreachable {
                guard let waiting, waiting(error, first) else { throw error }
                first = false
            }
        }
    }

    /// The code of a PostgreSQL database that `init` has not made a store of.
    public static let noSchema: Int32 = -101

    public static func isURL(_ location: String) -> Bool {
        location.hasPrefix("postgresql://") || location.hasPrefix("postgres://")
    }

    /// The schema version this seqpipe brings its store to.
    public var schemaVersion: Int { dialect == .sqlite ? Self.migrations.count : Self.postgresMigrations.count }

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
        // 8: hosts. A device belongs to a host ('' for any, as before), a worker is (host,
        // index), a claim names its host; each host's orchestrator holds a lease row, and
        // the farm's one scheduler holds the leader row.
        """
        ALTER TABLE devices ADD COLUMN host TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN host TEXT;
        DROP INDEX jobs_one_active_per_worker;
        CREATE UNIQUE INDEX jobs_one_active_per_worker ON jobs(host, worker) WHERE status IN ('claimed','running');
        DROP TABLE workers;
        CREATE TABLE workers(
            host TEXT NOT NULL DEFAULT '', idx INTEGER NOT NULL, pid INTEGER NOT NULL, start_time INTEGER NOT NULL,
            device TEXT NOT NULL, state TEXT NOT NULL, job TEXT,
            restarts INTEGER NOT NULL DEFAULT 0, heartbeat_boot REAL, PRIMARY KEY(host, idx));
        CREATE TABLE hosts(
            name TEXT PRIMARY KEY, pid INTEGER, state TEXT NOT NULL, started_at REAL, beat_at REAL,
            lease_until REAL, note TEXT);
        CREATE TABLE leaders(role TEXT PRIMARY KEY, host TEXT NOT NULL, lease_until REAL NOT NULL, since REAL NOT NULL);
        """,
        // 9: the pipeline's config, kept in the store in numbered versions: a run and its
        // members use one version, and every host of a farm reads the same one.
        """
        CREATE TABLE configs(version INTEGER PRIMARY KEY, text TEXT NOT NULL, loaded_at REAL NOT NULL, source TEXT NOT NULL);
        ALTER TABLE hosts ADD COLUMN config_version INTEGER;
        """,
        // 10: cumulative counts for /metrics (Prometheus counters and histograms), written in
        // the transaction of what they count and never pruned: bucket -1 is a plain counter,
        // 0... a histogram's bucket (by its family's bounds; the last is +Inf).
        """
        CREATE TABLE counters(
            family TEXT NOT NULL, labels TEXT NOT NULL, bucket INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
            PRIMARY KEY(family, labels, bucket));
        """,
        // 11: a device paused by hand takes no claims until resumed; since when a worker is in
        // its state (the page's worker panel).
        """
        ALTER TABLE devices ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE devices ADD COLUMN paused_reason TEXT;
        ALTER TABLE workers ADD COLUMN state_since REAL;
        """,
        // 12: the tail of each step run's output, the latest few runs of each step per job (a
        // slot each, overwritten), for `show` and the page.
        """
        CREATE TABLE outputs(
            job TEXT NOT NULL, step TEXT NOT NULL, slot INTEGER NOT NULL, run INTEGER NOT NULL,
            attempt INTEGER NOT NULL, at REAL NOT NULL, ending TEXT NOT NULL, text TEXT NOT NULL,
            PRIMARY KEY(job, step, slot));
        ALTER TABLE jobs ADD COLUMN first_claimed_at REAL;
        """,
    ]

    public static var schemaVersion: Int { migrations.count }

    /// PostgreSQL's schema versions: SQLite's, each in PostgreSQL's types (one schema, written
    /// once), applied in order under an advisory lock; the `schema_version` table says how
    /// many are in.
    static let postgresMigrations: [String] = migrations.map(postgresTypes)

    /// SQLite's column types as PostgreSQL's: an autoincrementing key as an identity column,
    /// INTEGER as BIGINT (SQLite's are 64-bit), REAL as DOUBLE PRECISION.
    static func postgresTypes(_ sql: String) -> String {
        var word = ""
        var out = ""
        func flush() {
            switch word {
            case "INTEGER": out += "BIGINT"
            case "REAL": out += "DOUBLE PRECISION"
            default: out += word
            }
            word = ""
        }
        for character in sql {
            if character.isLetter || character.isNumber || character == "_" { word.append(character) } else {
                flush()
                out.append(character)
            }
        }
        flush()
        return out.replacing("BIGINT PRIMARY KEY AUTOINCREMENT", with: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    }

    /// What SQLite's quick check finds wrong with the store's file (its first problem), or
    /// nil: a run refuses a damaged store rather than claim nothing from it in silence.
    /// Always nil for PostgreSQL, whose server checks its own pages.
    public func damage() throws(StoreError) -> String? {
        guard dialect == .sqlite else { return nil }
        let answer = try connection.query("PRAGMA quick_check(1)").first?.values.first?.string ?? "ok"
        return answer == "ok" ? nil : answer
    }

    /// Whether `init` made the store: a SQLite file always is; a PostgreSQL database is once
    /// it has the schema.
    public func isInitialized() throws(StoreError) -> Bool {
        guard dialect == .postgresql else { return true }
        return try connection.query("SELECT to_regclass('schema_version') IS NOT NULL AS made").first?["made"].int == 1
    }

    public func migrate() throws(StoreError) {
        if dialect == .postgresql { return try migratePostgreSQL() }
        let current = Int(try connection.query("PRAGMA user_version").first?["user_version"].int ?? 0)
        if current > Self.migrations.count {
            throw StoreError("store \(connection.name) has schema version \(current), newer than this seqpipe's \(Self.migrations.count); use a newer seqpipe")
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

    /// PostgreSQL: the shared runner, with seqpipe's versions counted in `schema_version`.
    func migratePostgreSQL() throws(StoreError) {
        guard let connection = connection as? PostgreSQLConnection else { return }
        try PostgreSQLMigrations(table: "schema_version", versions: Self.postgresMigrations, tool: "seqpipe").apply(to: connection)
    }

    static func text(_ value: String) -> SQLValue { .text(value) }

    // MARK: time

    /// A time on this host's wall clock as the store's clock reads it. SQLite: the same (one
    /// host). PostgreSQL: shifted by the database clock's lead over this host's, measured
    /// with `clock_timestamp()` at most every 10 s and rounded to whole seconds (clocks
    /// within half a second agree), so the leases, silences, cooldowns and retry times of
    /// hosts with skewed clocks are all on the database's clock.
    func databaseTime(_ hostWall: Moment) throws(StoreError) -> Moment {
        guard dialect == .postgresql else { return hostWall }
        return hostWall + (try measuredSkew().wall)
    }

    /// A reading of this host's boot-time clock (lease ages on one host) on the store's
    /// clock: itself for SQLite, the database's wall clock for PostgreSQL, where the boot
    /// clocks of different hosts cannot be compared.
    func databaseTime(boot: Double) throws(StoreError) -> Double {
        guard dialect == .postgresql else { return boot }
        return boot + (try measuredSkew().boot)
    }

    func measuredSkew() throws(StoreError) -> (wall: Double, boot: Double) {
        let now = Clock.monotonicNanoseconds()
        if let skew, now - skew.measuredAt < 10_000_000_000 { return (skew.wall, skew.boot) }
        let database = try connection.query("SELECT EXTRACT(EPOCH FROM clock_timestamp()) AS now").first?["now"].double ?? Moment.now().seconds
        let measured = (wall: (database - Moment.now().seconds).rounded(), boot: (database - Clock.secondsSinceBoot()).rounded())
        skew = (measured.wall, measured.boot, now)
        return measured
    }

    /// The store's clock now: what `status` and the watchdog compare its times with.
    public func currentTime() throws(StoreError) -> Moment { try databaseTime(Moment.now()) }

    /// A write of one statement that reads no other row (a token-guarded update of one job,
    /// a worker's own row): on PostgreSQL it commits by itself, outside the store's write lock,
    /// which row locks make safe; on SQLite it is a write transaction like any other.
    @discardableResult
    func writeOne<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        dialect == .postgresql ? try body() : try connection.write(body)
    }

    /// A unique index refused the row (SQLite's SQLITE_CONSTRAINT, PostgreSQL's 23505).
    static func isUniqueViolation(_ error: StoreError) -> Bool { error.code == 19 || error.code == 23505 }

    /// SQLite's hint to walk the waiting jobs by `jobs_waiting` (PostgreSQL plans it itself).
    var waitingIndex: String { dialect == .sqlite ? "INDEXED BY jobs_waiting" : "" }
}

func optional(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
func optional(_ value: Double?) -> SQLValue { value.map { .real($0) } ?? .null }
func optional(_ value: Moment?) -> SQLValue { value.map(SQLValue.time) ?? .null }

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
