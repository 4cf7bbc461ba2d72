import CSQLite
import SeqSystem

/// A value bound to or read from a statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    public var int: Int64? {
        switch self {
        case .integer(let value): return value
        case .real(let value): return Int64(value)
        case .text(let value): return Int64(value)
        case .null: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .integer(let value): return Double(value)
        case .real(let value): return value
        case .text(let value): return Double(value)
        case .null: return nil
        }
    }

    public var string: String? {
        switch self {
        case .text(let value): return value
        case .integer(let value): return String(value)
        case .real(let value): return String(value)
        case .null: return nil
        }
    }
}

/// One result row, by column name.
public struct SQLRow: Sendable {
    public var columns: [String]
    public var values: [SQLValue]

    public subscript(_ name: String) -> SQLValue {
        guard let index = columns.firstIndex(of: name) else { return .null }
        return values[index]
    }

    /// A process recorded as its pid and start time in two columns; nil when either is empty.
    public func process(pid: String, startTime: String) -> ProcessIdentity? {
        guard let number = self[pid].int, let start = self[startTime].int else { return nil }
        return ProcessIdentity(pid: Int32(number), startTime: UInt64(start))
    }
}

/// A failure of the store: what was being done, SQLite's message and its result code.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var code: Int32

    public init(_ message: String, code: Int32 = 0) {
        self.message = message
        self.code = code
    }

    public var description: String { message }
}

/// One SQLite connection (a process has one): WAL mode, a busy timeout, statements cached.
/// Not thread-safe; a worker and the orchestrator are single-threaded processes.
public final class SQLiteConnection {
    let handle: OpaquePointer
    public let path: String
    var cache: [String: OpaquePointer] = [:]
    public var inTransaction = false

    /// Opens (creating) the database at `path`.
    /// - Throws: `StoreError` naming the file when it cannot be opened or is not a database.
    public init(path: String, busyTimeoutMilliseconds: Int32 = 10_000) throws(StoreError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw StoreError("cannot open store \(path): \(message)", code: rc)
        }
        handle = db
        self.path = path
        cseq_sqlite_busy_timeout(db, busyTimeoutMilliseconds)
        do {
            // journal_mode answers with a row; WAL lets readers (status) run beside a writer.
            _ = try query("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")
        } catch {
            sqlite3_close(db)
            throw StoreError("cannot use store \(path): \(error.message); is it an SQLite file?", code: error.code)
        }
    }

    deinit {
        for (_, statement) in cache { sqlite3_finalize(statement) }
        sqlite3_close(handle)
    }

    var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    /// Runs one or more statements with no parameters and no results.
    public func execute(_ sql: String) throws(StoreError) {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? lastMessage
            sqlite3_free(error)
            throw StoreError(message, code: rc)
        }
    }

    func prepared(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let statement = cache[sql] { return statement }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw StoreError("\(lastMessage) in: \(sql)", code: rc) }
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
            guard rc == SQLITE_ROW else { throw StoreError(lastMessage, code: rc) }
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
