import SeqSystem

/// What the store needs of a database connection: statements with `?N` parameters, rows by
/// column name, and write transactions that one writer at a time holds. SQLite and
/// PostgreSQL each give it; the store's SQL is written once for both, except the schema.
public protocol SQLDatabase: AnyObject {
    /// What messages call the store: its file, or its URL with the password hidden.
    var name: String { get }
    /// Runs one or more statements with no parameters and no results.
    func execute(_ sql: String) throws(StoreError)
    /// Runs one statement and returns its rows.
    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow]
    /// Runs one statement and returns how many rows it changed.
    @discardableResult
    func run(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int
    /// What opens a write transaction, serialised with every other writer of the store.
    var beginWrite: String { get }
    /// Set while a write transaction is open (they do not nest).
    var inTransaction: Bool { get set }
    /// Since when the store cannot be reached, while it cannot (a server's store only).
    var outage: StoreOutage? { get }
    /// The outage the last reconnect ended, once: the caller says the store is back.
    func takeRecovered() -> StoreOutage?
}

extension SQLDatabase {
    @discardableResult
    public func query(_ sql: String) throws(StoreError) -> [SQLRow] { try query(sql, []) }

    @discardableResult
    public func run(_ sql: String) throws(StoreError) -> Int { try run(sql, []) }

    /// A write transaction around `body`: committed when it returns, rolled back when it throws.
    @discardableResult
    public func write<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        precondition(!inTransaction, "nested write transaction")
        try execute(beginWrite)
        inTransaction = true
        defer { inTransaction = false }
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

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

    /// A time the store keeps (REAL seconds since the epoch) as the moment it is.
    public var moment: Moment? { double.map(Moment.init(seconds:)) }

    /// A moment as the store keeps it.
    public static func time(_ moment: Moment) -> SQLValue { .real(moment.seconds) }

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

    public init(columns: [String], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

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
