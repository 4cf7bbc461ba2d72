import SeqDatabase
import SeqSystem

/// A named lock kept in a PostgreSQL database (`--store postgresql://…`): one line for every
/// host that uses the database. Each run is a row of `guard_runs`; its id (the database's
/// sequence) is its arrival, and every time is the database's clock. A row is alive while its
/// lease has not run out; its supervisor renews it. Who holds and who is next is decided under
/// a transaction-level advisory lock per lock name, so the hosts of a farm take turns deciding.
///
/// Not thread-safe: one connection, used by one thread at a time (the waiting loop, then the
/// lease keeper).
public final class SharedLock: @unchecked Sendable {
    public let name: String
    public let connection: PostgreSQLConnection
    /// What this host is called in the rows (`--host`, default the machine's name).
    public let host: String

    /// Connects to `url` and brings its guard tables to this seqexec's schema. A peer that
    /// stops answering is noticed within about `lease` seconds (TCP keepalives).
    /// - Throws: `StoreError` naming the URL and the fix.
    public init(name: String, url: String, host: String, lease: Double) throws(StoreError) {
        self.name = name
        self.host = host
        connection = try PostgreSQLConnection(url: url, deadPeerSeconds: lease, listening: [Self.channel])
        try Self.migrations.apply(to: connection)
    }

    /// The guard's schema versions (its own table, beside seqpipe's in the same database).
    static let migrations = PostgreSQLMigrations(table: "guard_schema_version", versions: [
        """
        CREATE TABLE IF NOT EXISTS guard_runs(
            id BIGSERIAL PRIMARY KEY,
            lock_name TEXT NOT NULL,
            host TEXT NOT NULL,
            pid BIGINT NOT NULL,
            start_time BIGINT NOT NULL,
            command TEXT NOT NULL,
            priority INTEGER NOT NULL,
            slots INTEGER NOT NULL,
            newest_first INTEGER NOT NULL,
            arrived_at DOUBLE PRECISION NOT NULL,
            lease_seconds DOUBLE PRECISION NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL,
            holding_since DOUBLE PRECISION,
            fence BIGINT,
            ended TEXT,
            ended_by TEXT);
        CREATE INDEX IF NOT EXISTS guard_runs_by_lock ON guard_runs(lock_name, id);
        CREATE SEQUENCE IF NOT EXISTS guard_fences;
        """,
    ], tool: "seqexec")

    /// Where a change to a lock's line is announced (the payload is the lock's name): a lock
    /// given back, a waiter replaced, a kill-all. Waiters wake on it rather than poll fast.
    static let channel = "seqexec_locks"

    /// Says in the current transaction (on commit) that the line of this lock changed.
    func announce() throws(StoreError) {
        try connection.query("SELECT pg_notify('\(Self.channel)', ?1)::text AS sent", [.text(name)])
    }

    /// Reads the announcements that woke a waiter (any lock's): the waiter looks again anyway.
    public func takeAnnouncements() { _ = connection.notifications() }

    /// The database's clock, in seconds since the epoch.
    static let now = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    /// The first key of the per-name advisory locks ("se"); the second is the name's hash.
    static let lockClass = 0x7365

    /// How another run ended this one, as its row's `ended` says.
    public enum Ending: String, Sendable, Equatable {
        /// A newer newest-first run took its place in the line.
        case replaced
        /// A `--cancel-running` run ended it while it held the lock.
        case cancelled
        /// A farm-wide `--kill-all`.
        case revoked

        /// The row's ending and by whom; nil while none. A word this seqexec does not know
        /// (a newer one wrote it) is taken as the strictest: revoked.
        static func of(_ row: SQLRow) -> (Ending, by: String)? {
            guard let word = row["ended"].string else { return nil }
            return (Ending(rawValue: word) ?? .revoked, row["ended_by"].string ?? "another run")
        }
    }

    /// A run of the lock, as its row says.
    public struct Run: Sendable {
        public var id: Int64
        public var host: String
        public var pid: Int32
        public var command: String
        public var priority: Priority
        public var slots: Int
        public var arrivedAt: Double
        public var leaseUntil: Double
        public var holdingSince: Double?
        public var fence: Int64?
        /// How another run ended this one, and by whom.
        public var ended: (Ending, by: String)?

        init(_ row: SQLRow) {
            id = row["id"].int ?? 0
            host = row["host"].string ?? ""
            pid = Int32(row["pid"].int ?? 0)
            command = row["command"].string ?? ""
            let rank = Int(row["priority"].int ?? 1)
            priority = Priority.allCases.first { $0.rank == rank } ?? .normal
            slots = Int(row["slots"].int ?? 1)
            arrivedAt = row["arrived_at"].double ?? 0
            leaseUntil = row["lease_until"].double ?? 0
            holdingSince = row["holding_since"].double
            fence = row["fence"].int
            ended = Ending.of(row)
        }

        /// `host ci-2 pid 4242 'make deploy'`.
        public var who: String { "host \(host) pid \(pid) '\(LockWaiter.shortened(command))'" }
    }

    /// What a new run asks for.
    public struct Arrival: Sendable {
        public var process: ProcessIdentity
        public var command: String
        public var priority: Priority
        public var slots: Int
        public var lease: Double
        public var newestFirst: Bool
        public var cancelRunning: Bool
    }

    /// A run's place, as one look under the name's lock found it.
    public enum Look: Sendable {
        case waiting(position: Int, total: Int, holders: [Run])
        case acquired(fence: Int64)
        /// Another run ended this one's wait, and by whom.
        case ended(Ending, by: String)
        /// The row is gone: its lease ran out (the host was stopped or cut off) and another
        /// run's look removed it.
        case lost
    }

    /// `body` in a transaction holding the name's advisory lock.
    func deciding<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try connection.execute("BEGIN")
        connection.inTransaction = true
        defer { connection.inTransaction = false }
        do {
            try connection.query("SELECT pg_advisory_xact_lock(\(Self.lockClass), hashtext(?1))::text AS locked", [.text(name)])
            let result = try body()
            try connection.execute("COMMIT")
            return result
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// Joins the line; returns the run's id (its arrival). A newest-first run replaces the
    /// older newest-first runs still waiting; `cancelRunning` ends the runs holding the lock.
    public func join(_ arrival: Arrival) throws(StoreError) -> Int64 {
        try deciding { () throws(StoreError) -> Int64 in
            let row = try connection.query("""
                INSERT INTO guard_runs(lock_name, host, pid, start_time, command, priority, slots, newest_first,
                                       arrived_at, lease_seconds, lease_until)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \(Self.now), ?9, \(Self.now) + ?9) RETURNING id
                """, [.text(name), .text(host), .integer(Int64(arrival.process.pid)), .integer(Int64(arrival.process.startTime)),
                      .text(arrival.command), .integer(Int64(arrival.priority.rank)), .integer(Int64(arrival.slots)),
                      .integer(arrival.newestFirst ? 1 : 0), .real(arrival.lease)])
            guard let id = row.first?["id"].int else { throw StoreError("\(connection.name): the new run's row has no id") }
            let me = "host \(host) pid \(arrival.process.pid) '\(LockWaiter.shortened(arrival.command))' (run \(id))"
            if arrival.newestFirst || arrival.cancelRunning { try announce() }
            if arrival.newestFirst {
                try connection.run("""
                    UPDATE guard_runs SET ended = '\(Ending.replaced.rawValue)', ended_by = ?3
                    WHERE lock_name = ?1 AND id < ?2 AND holding_since IS NULL AND ended IS NULL AND newest_first = 1
                    """, [.text(name), .integer(id), .text(me)])
            }
            if arrival.cancelRunning {
                try connection.run("""
                    UPDATE guard_runs SET ended = '\(Ending.cancelled.rawValue)', ended_by = ?2
                    WHERE lock_name = ?1 AND holding_since IS NOT NULL AND ended IS NULL
                    """, [.text(name), .text(me)])
            }
            return id
        }
    }

    /// One look for a waiting run: renews its lease, removes the runs whose leases ran out,
    /// and takes the lock when the run is first in line (priority, then arrival) and a slot is
    /// free (the strictest holder's `slots` wins). The lock taken gets the next fencing token.
    public func look(_ id: Int64) throws(StoreError) -> Look {
        try deciding { () throws(StoreError) -> Look in
            let renewed = try connection.query("""
                UPDATE guard_runs SET lease_until = \(Self.now) + lease_seconds WHERE id = ?1 RETURNING ended, ended_by
                """, [.integer(id)])
            guard let mine = renewed.first else { return .lost }
            if let (ending, by) = Ending.of(mine) { return .ended(ending, by: by) }
            try connection.run("DELETE FROM guard_runs WHERE lock_name = ?1 AND lease_until < \(Self.now)", [.text(name)])
            let runs = try self.runs()
            let holders = runs.filter { $0.holdingSince != nil }
            let waiting = runs.filter { $0.holdingSince == nil && $0.ended == nil }
            guard let position = waiting.firstIndex(where: { $0.id == id }) else { return .lost }
            let me = waiting[position]
            let slots = holders.map(\.slots).reduce(me.slots, min)
            guard position == 0, holders.count < slots else { return .waiting(position: position + 1, total: waiting.count, holders: holders) }
            let taken = try connection.query("""
                UPDATE guard_runs SET holding_since = \(Self.now), fence = nextval('guard_fences'),
                                      lease_until = \(Self.now) + lease_seconds
                WHERE id = ?1 RETURNING fence
                """, [.integer(id)])
            guard let fence = taken.first?["fence"].int else { return .lost }
            return .acquired(fence: fence)
        }
    }

    /// What a holder's renewal found.
    public enum Renewal: Sendable, Equatable {
        case renewed
        case ended(Ending, by: String)
        /// The lease had run out by the database's clock: the lock may be someone else's.
        case lost
    }

    /// Renews a holder's lease, only while it has not run out (one statement, no lock).
    public func renew(_ id: Int64) throws(StoreError) -> Renewal {
        let rows = try connection.query("""
            UPDATE guard_runs SET lease_until = \(Self.now) + lease_seconds
            WHERE id = ?1 AND lease_until >= \(Self.now) RETURNING ended, ended_by
            """, [.integer(id)])
        guard let row = rows.first else { return .lost }
        if let (ending, by) = Ending.of(row) { return .ended(ending, by: by) }
        return .renewed
    }

    /// Leaves the line, or gives the lock back.
    public func leave(_ id: Int64) throws(StoreError) {
        try deciding { () throws(StoreError) in
            try connection.run("DELETE FROM guard_runs WHERE id = ?1", [.integer(id)])
            try announce()
        }
    }

    /// Every run of the lock whose lease has not run out, holders first, then the line in
    /// order; and the database's clock now.
    public func runs() throws(StoreError) -> [Run] {
        try connection.query("""
            SELECT id, host, pid, command, priority, slots, arrived_at, lease_until, holding_since, fence, ended, ended_by
            FROM guard_runs WHERE lock_name = ?1 AND lease_until >= \(Self.now)
            ORDER BY holding_since IS NULL, priority, id
            """, [.text(name)]).map(Run.init)
    }

    /// The database's clock now.
    public func clock() throws(StoreError) -> Double {
        try connection.query("SELECT \(Self.now) AS now").first?["now"].double ?? 0
    }

    /// Whether run `id` holds the lock now (a nested call inside it runs straight through).
    public func holds(_ id: Int64) throws(StoreError) -> Bool {
        try !connection.query("""
            SELECT 1 AS one FROM guard_runs WHERE id = ?1 AND lock_name = ?2 AND holding_since IS NOT NULL
                AND ended IS NULL AND lease_until >= \(Self.now)
            """, [.integer(id), .text(name)]).isEmpty
    }

    /// The farm-wide emergency stop: every run of the lock is marked revoked by `by`; each
    /// holder's supervisor ends its tree at its next renewal, each waiter leaves at its next
    /// look. Returns the runs it marked.
    public func revokeAll(by: String) throws(StoreError) -> [Run] {
        try deciding { () throws(StoreError) -> [Run] in
            try announce()
            return try connection.query("""
                UPDATE guard_runs SET ended = '\(Ending.revoked.rawValue)', ended_by = ?2
                WHERE lock_name = ?1 AND ended IS NULL AND lease_until >= \(Self.now)
                RETURNING id, host, pid, command, priority, slots, arrived_at, lease_until, holding_since, fence, ended, ended_by
                """, [.text(name), .text(by)]).map(Run.init)
        }
    }
}
