/// A component's schema on a PostgreSQL database, as versions applied in order. seqpipe's
/// store and seqexec's shared locks each have theirs in the same database (their tables do not
/// meet), counted in their own table and applied by this one runner.
public struct PostgreSQLMigrations: Sendable {
    /// The table that says how many versions are in (`schema_version` for seqpipe).
    public var table: String
    /// The statements of each version, in order.
    public var versions: [String]
    /// Who needs to be newer when the database is ahead: "seqpipe", "seqexec".
    public var tool: String

    public init(table: String, versions: [String], tool: String) {
        self.table = table
        self.versions = versions
        self.tool = tool
    }

    /// The session advisory lock every migration of the database takes (the store's write
    /// lock's key plus one, as seqpipe has always used).
    public static let lockKey: Int64 = PostgreSQLConnection.writeLockKey + 1

    /// Brings the database to the last version: each in its own transaction, all under one
    /// session advisory lock, so two hosts migrating at once take turns and the second finds
    /// the work done.
    /// - Throws: `StoreError` when the database is at a newer version than this tool knows.
    public func apply(to connection: PostgreSQLConnection) throws(StoreError) {
        // Already there (every use but the first): one read, no lock.
        let made = try connection.query("SELECT to_regclass(?1)::text AS made", [.text(table)]).first?["made"].string != nil
        if made, try current(on: connection) == versions.count { return }
        try connection.execute("SELECT pg_advisory_lock(\(Self.lockKey))")
        defer { try? connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))") }
        try connection.execute("CREATE TABLE IF NOT EXISTS \(table)(version BIGINT NOT NULL)")
        let current = try self.current(on: connection)
        if current > versions.count {
            throw StoreError("\(connection.name) has \(tool)'s schema version \(current), newer than this \(tool)'s \(versions.count); use a newer \(tool)")
        }
        for version in current..<versions.count {
            try connection.write { () throws(StoreError) in
                try connection.execute(versions[version])
                try connection.run("INSERT INTO \(table)(version) VALUES (?1)", [.integer(Int64(version + 1))])
            }
        }
    }

    /// How many versions are in.
    public func current(on connection: PostgreSQLConnection) throws(StoreError) -> Int {
        Int(try connection.query("SELECT MAX(version) AS v FROM \(table)").first?["v"].int ?? 0)
    }
}
