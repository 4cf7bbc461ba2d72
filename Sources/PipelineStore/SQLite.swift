import PipelineModel
import SeqDatabase
import CSQLite
import SeqSystem

/// One SQLite connection (a process has one): WAL mode, a busy timeout, statements cached.
/// Not thread-safe; a worker and the orchestrator are single-threaded processes.
public final class SQLiteConnection {
    let handle: OpaquePointer
    public let path: String
    var cache: [String: OpaquePointer] = [:]
    public var inTransaction = false

    /// Whether this connection only reads: the store is on a read-only mount or not
    /// writable by this user, and the command only reads (`status`, `jobs`, `serve`, …).
    public let readOnly: Bool

    /// Opens the database at `path`: read-write in WAL mode, or, when `readingOnly` allows
    /// and the file cannot be written, read-only.
    /// - Parameter create: make the file when it is missing (`init` only: a run whose store
    ///   was removed must not start again on a new, empty one).
    /// - Throws: `StoreError` naming the file when it cannot be opened or is not a database.
    public init(path: String, create: Bool = false, readingOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 10_000) throws(StoreError) {
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        var opened: (OpaquePointer, Bool)
        do throws(StoreError) {
            let db = try Self.open(path, flags: flags, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
            // journal_mode answers with a row; WAL lets readers (status) run beside a writer.
            do { try Self.execute(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON") } catch {
                sqlite3_close(db)
                throw error
            }
            opened = (db, false)
        } catch where readingOnly && [SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_FULL, SQLITE_IOERR].contains(error.code & 0xFF) {
            opened = (try Self.openReadOnly(path, busyTimeoutMilliseconds: busyTimeoutMilliseconds), true)
        } catch {
            // Said plainly when the file or its directory cannot be written (SQLite needs
            // both: the -wal and -shm files are made beside the store).
            let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
            if [SQLITE_FULL, SQLITE_IOERR].contains(error.code & 0xFF), Self.diskFull(path) {
                throw StoreError("cannot use store \(path): the disk holding it is full; free space on it and run again", code: SQLITE_FULL)
            }
            if [SQLITE_READONLY, SQLITE_CANTOPEN].contains(error.code & 0xFF),
               let refusal = FileSystem.writeRefusal(path) ?? FileSystem.writeRefusal(directory) {
                let why = refusal == .readOnlyFileSystem ? "it is on a read-only mount" : "this user may not write it or its directory (\(refusal))"
                throw StoreError("cannot write the store \(path): \(why); 'status', 'jobs' and 'serve' can read it, a command that writes needs it writable", code: SQLITE_READONLY)
            }
            throw StoreError("cannot use store \(path): \(error.message)", code: error.code)
        }
        handle = opened.0
        readOnly = opened.1
        self.path = path
    }

    /// Opens a connection with its busy timeout set before any statement: the first one
    /// (journal_mode) waits out a writer like every later one.
    static func open(_ path: String, flags: Int32, busyTimeoutMilliseconds: Int32) throws(StoreError) -> OpaquePointer {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw StoreError("\(message)\(advice(rc))", code: rc)
        }
        cseq_sqlite_busy_timeout(db, busyTimeoutMilliseconds)
        return db
    }

    static func execute(_ db: OpaquePointer, _ sql: String) throws(StoreError) {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &error)
        guard rc == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(error)
            throw StoreError(message + advice(rc), code: rc)
        }
    }

    /// A store that cannot be written, for reading: with its write-ahead log where SQLite
    /// can read it; on a read-only mount with no -shm file, as an immutable file (what a
    /// run left in the log then is not seen; a run cannot write there anyway).
    static func openReadOnly(_ path: String, busyTimeoutMilliseconds: Int32) throws(StoreError) -> OpaquePointer {
        let flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        if let db = try? open(path.hasPrefix("/") ? "file:" + uriPath(path) : path, flags: flags, busyTimeoutMilliseconds: busyTimeoutMilliseconds) {
            if (try? execute(db, "SELECT count(*) FROM sqlite_master")) != nil { return db }
            sqlite3_close(db)
        }
        let db: OpaquePointer
        do { db = try open("file:\(uriPath(path))?immutable=1", flags: flags, busyTimeoutMilliseconds: busyTimeoutMilliseconds) } catch {
            throw StoreError("cannot read store \(path): \(error.message)", code: error.code)
        }
        do { try execute(db, "SELECT count(*) FROM sqlite_master") } catch {
            sqlite3_close(db)
            throw StoreError("cannot read store \(path): \(error.message)", code: error.code)
        }
        return db
    }

    /// A path as the path of a `file:` URI: `%`, `?` and `#` escaped.
    static func uriPath(_ path: String) -> String { escaping(path, ["%": "%25", "?": "%3f", "#": "%23"]) }

    deinit {
        for (_, statement) in cache { sqlite3_finalize(statement) }
        sqlite3_close(handle)
    }

    var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    /// Whether the filesystem holding `path` has no room left for the store to grow (less
    /// than 64 KiB: SQLite's failures on a full disk are I/O errors as often as SQLITE_FULL).
    static func diskFull(_ path: String) -> Bool {
        let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        return (FileSystem.freeBytes(directory) ?? Int64.max) < 64 << 10
    }

    /// The advice for a failure of a statement: a full disk named as such, whatever code it came with.
    func failure(_ message: String, _ rc: Int32) -> StoreError {
        if [SQLITE_FULL, SQLITE_IOERR].contains(rc & 0xFF), Self.diskFull(path) {
            return StoreError("\(message) (the disk holding the store is full): free space on it and run again", code: SQLITE_FULL)
        }
        return StoreError(message + Self.advice(rc), code: rc)
    }

    /// What to do about a failure, by SQLite's primary result code: each says what is wrong
    /// with the file or its disk in the user's words, and the fix.
    static func advice(_ code: Int32) -> String {
        switch code & 0xFF {
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return " (the file is damaged, or not a seqpipe store): restore it from a copy, or export what it still reads ('seqpipe export-csv') into a new one"
        case SQLITE_FULL:
            return " (the disk holding the store is full): free space on it and run again"
        case SQLITE_READONLY:
            return " (the store is read-only: a read-only mount, or no write permission on it or its directory): 'status', 'jobs' and 'serve' can read it; a command that writes needs it writable"
        case SQLITE_IOERR:
            return " (an I/O error on the store's disk, or a file beside it removed): check the disk and the store's -wal and -shm files"
        case SQLITE_CANTOPEN:
            return " (the file, or the -wal and -shm files SQLite keeps beside it, cannot be opened): check the directory's permissions"
        default:
            return ""
        }
    }

    /// Runs one or more statements with no parameters and no results.
    public func execute(_ sql: String) throws(StoreError) {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? lastMessage
            sqlite3_free(error)
            throw failure(message, rc)
        }
    }

    func prepared(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let statement = cache[sql] { return statement }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw StoreError("\(lastMessage)\(Self.advice(rc)) in: \(sql)", code: rc) }
        cache[sql] = statement
        return statement
    }

    /// Runs one statement and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [SQLValue] = []) throws(StoreError) -> [SQLRow] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .null: sqlite3_bind_null(statement, index)
            case .integer(let number): sqlite3_bind_int64(statement, index, number)
            case .real(let number): sqlite3_bind_double(statement, index, number)
            case .text(let text): sqlite3_bind_text(statement, index, text, -1, cseq_sqlite_transient())
            }
        }
        var rows: [SQLRow] = []
        let count = sqlite3_column_count(statement)
        let columns = (0..<count).map { String(cString: sqlite3_column_name(statement, $0)) }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw failure(lastMessage, rc) }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(count))
            for column in 0..<count {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: values.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: values.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_NULL: values.append(.null)
                default: values.append(.text(String(cString: sqlite3_column_text(statement, column))))
                }
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }

    /// Runs one statement and returns how many rows it changed.
    @discardableResult
    public func run(_ sql: String, _ parameters: [SQLValue] = []) throws(StoreError) -> Int {
        try query(sql, parameters)
        return Int(sqlite3_changes(handle))
    }
}

extension SQLiteConnection: SQLDatabase {
    public var name: String { path }
    /// A file is there or not: it has no outages to ride out.
    public var outage: StoreOutage? { nil }
    public func takeRecovered() -> StoreOutage? { nil }
    /// Takes the write lock at once (waiting out the busy timeout), so a read-then-write never
    /// fails with SQLITE_BUSY halfway through.
    public var beginWrite: String { "BEGIN IMMEDIATE" }
}
