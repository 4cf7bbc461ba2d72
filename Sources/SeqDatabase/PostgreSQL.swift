import CPostgreSQL
import SeqSystem

/// One connection to a PostgreSQL store, through libpq (loaded on first use). Not
/// thread-safe, like the SQLite one: each process of a run has its own.
///
/// Writers take one transaction-level advisory lock (`writeLockKey`) first, so writes are
/// serialised across every host of a farm the way SQLite's `BEGIN IMMEDIATE` serialises the
/// processes of one host: a claim's read of accounts, devices and jobs and its update are
/// one step that no other write interleaves with. Reads need no lock (MVCC).
public final class PostgreSQLConnection: SQLDatabase {
    let api: UnsafePointer<cseq_libpq>
    /// The live connection; nil while the server cannot be reached.
    var handle: OpaquePointer?
    /// What libpq is given: the URL, with a connect timeout unless it names one (a host
    /// that does not answer must not hold a member up for minutes).
    let connectionString: String
    public let name: String
    /// Statements every new session runs first (the server's keepalives, the channels it
    /// listens on), or "".
    let sessionSettings: String
    var translated: [String: String] = [:]
    /// Statements prepared on this connection, by SQL text and parameter types: each is
    /// parsed and planned once, not once per call (and again after a reconnect).
    var prepared: [String: String] = [:]
    public var inTransaction = false
    /// Set from the first failure that found the connection gone until a new one is made.
    public private(set) var outage: StoreOutage?
    /// The advisory lock every writer of this database takes (an arbitrary constant: "seqp").
    public static let writeLockKey: Int64 = 0x7365_7170

    /// Connects to `url` (`postgresql://USER:PASSWORD@HOST:PORT/DB?host=/socket/dir`). With
    /// `deadPeerSeconds`, a peer that stops answering is noticed within about that long on both
    /// ends: TCP keepalives and a user timeout on this side, the server's keepalives on its
    /// side (a URL that names its own keepalive settings keeps them; a Unix socket needs none).
    /// - Throws: `StoreError` naming the URL (password hidden) and the fix.
    public init(url: String, deadPeerSeconds: Double? = nil, listening channels: [String] = []) throws(StoreError) {
        name = Self.redacted(url)
        var error = [CChar](repeating: 0, count: 512)
        guard let api = cseq_libpq_load(&error, error.count) else {
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw StoreError("cannot use the PostgreSQL store \(name): libpq is not installed (\(reason)); install it (apt-get install libpq5)")
        }
        self.api = api
        var settings: [String] = url.contains("connect_timeout=") ? [] : ["connect_timeout=10"]
        var sessionSettings = ""
        if let deadPeerSeconds, !url.contains("keepalives") {
            let idle = max(1, Int(deadPeerSeconds / 2)), interval = max(1, Int(deadPeerSeconds / 6))
            settings += ["keepalives=1", "keepalives_idle=\(idle)", "keepalives_interval=\(interval)", "keepalives_count=3",
                         "tcp_user_timeout=\(Int(deadPeerSeconds * 1000))"]
            sessionSettings = "SET tcp_keepalives_idle = \(idle); SET tcp_keepalives_interval = \(interval); SET tcp_keepalives_count = 3"
        }
        connectionString = settings.isEmpty ? url : url + (url.contains("?") ? "&" : "?") + settings.joined(separator: "&")
        self.sessionSettings = ([sessionSettings] + channels.map { "LISTEN \($0)" }).filter { !$0.isEmpty }.joined(separator: "; ")
        do { handle = try connect() } catch where Self.isRefusal(error.message) {
            // At the first connection, a refusal is the URL's fault, not an outage: said at
            // once rather than waited out. (Later, a refusal mid-run is waited out like any
            // lost session: a restarting server refuses too.)
            throw StoreError(error.message, code: StoreError.refused)
        }
    }

    /// Whether libpq's message says the server answered and refused for good (a FATAL that
    /// is not one of the transient ones, or a password it wanted and did not get). libpq
    /// gives a failed connection no SQLSTATE, so its words are all there is.
    static func isRefusal(_ message: String) -> Bool {
        if message.contains("no password supplied") || message.contains("password authentication failed") { return true }
        guard message.contains("FATAL:") else { return false }
        let transient = ["starting up", "shutting down", "in recovery", "not yet accepting", "not accepting connections",
                         "too many", "connection slots", "terminating connection"]
        return !transient.contains { message.contains($0) }
    }

    deinit { if let handle { api.pointee.PQfinish(handle) } }

    /// A new session, or a `StoreError` that says why none could be had.
    func connect() throws(StoreError) -> OpaquePointer {
        guard let connection = api.pointee.PQconnectdb(connectionString) else {
            throw StoreError("cannot connect to \(name): out of memory", code: StoreError.unreachable)
        }
        guard api.pointee.PQstatus(connection) == Int32(CSEQ_CONNECTION_OK) else {
            let message = Self.firstLine(api.pointee.PQerrorMessage(connection))
            api.pointee.PQfinish(connection)
            throw StoreError("cannot connect to \(name): \(message); check the URL, that the server runs (pg_ctl status) and that this user may connect",
                             code: StoreError.unreachable)
        }
        cseq_pq_quiet(api, connection)
        if !sessionSettings.isEmpty, let result = api.pointee.PQexec(connection, sessionSettings) { api.pointee.PQclear(result) }
        return connection
    }

    /// The live session, made again when the last one was lost: at most one attempt per
    /// backoff step (full jitter, 0.2 s doubling to 5 s), so a member polling its loop does
    /// not hammer a server that is starting up.
    func live() throws(StoreError) -> OpaquePointer {
        if let handle { return handle }
        // Never a statement of a transaction on a new session: the rest of it is gone.
        guard !inTransaction, var outage else { throw StoreError("\(name): no connection", code: StoreError.unreachable) }
        let now = Clock.monotonicNanoseconds()
        guard now >= outage.nextAttempt else { throw outage.error }
        do {
            let connection = try connect()
            handle = connection
            prepared = [:]
            self.outage = nil
            recovered = outage
            return connection
        } catch {
            outage.attempts += 1
            let cap = min(5.0, 0.2 * Double(1 << min(outage.attempts, 5)))
            outage.nextAttempt = now + Int64(Double.random(in: (cap / 2)...cap) * 1e9)
            outage.error = StoreError("store \(name) unreachable since \(Clock.localDateTime(outage.since.wallTime)): \(error.message)", code: StoreError.unreachable)
            self.outage = outage
            throw outage.error
        }
    }

    /// The outage that the last reconnect ended, until a member takes it to say the store is back.
    var recovered: StoreOutage?

    public func takeRecovered() -> StoreOutage? {
        defer { recovered = nil }
        return recovered
    }

    /// Drops a session the server or the network ended: the next call connects again.
    func lose(_ message: String) -> StoreError {
        if let handle { api.pointee.PQfinish(handle) }
        handle = nil
        let error = StoreError("store \(name) unreachable since \(Clock.localDateTime(Clock.wallTime())): \(message); retrying", code: StoreError.unreachable)
        if outage == nil { outage = StoreOutage(since: Moment.now(), error: error) }
        return error
    }

    /// Whether `location` is a PostgreSQL URL (`postgresql://` or `postgres://`) rather than a path.
    public static func isURL(_ location: String) -> Bool {
        location.hasPrefix("postgresql://") || location.hasPrefix("postgres://")
    }

    /// The URL with its password replaced by `***`, in the authority and in a `password=` parameter.
    public static func redacted(_ url: String) -> String {
        var text = Array(url)
        if let scheme = find(Array("://"), in: text, from: 0) {
            let start = scheme + 3
            let end = text[start...].firstIndex { $0 == "/" || $0 == "?" } ?? text.endIndex
            if let at = text[start..<end].lastIndex(of: "@"), let colon = text[start..<at].firstIndex(of: ":") {
                text.replaceSubrange((colon + 1)..<at, with: Array("***"))
            }
        }
        if let password = find(Array("password="), in: text, from: 0) {
            let start = password + 9
            let end = text[start...].firstIndex { $0 == "&" || $0 == " " } ?? text.endIndex
            text.replaceSubrange(start..<end, with: Array("***"))
        }
        return String(text)
    }

    static func find(_ needle: [Character], in haystack: [Character], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }

    static func string(_ text: UnsafeMutablePointer<CChar>?) -> String { text.map { String(cString: $0) } ?? "" }

    static func firstLine(_ text: UnsafeMutablePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        let message = String(cString: text)
        return message.split(separator: "\n").first.map { String($0) } ?? message
    }

    /// `?N` parameters as PostgreSQL's `$N`, outside quoted text.
    func postgresText(_ sql: String) -> String {
        if let done = translated[sql] { return done }
        var result = ""
        var quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                result.append(character)
            } else if character == "?" {
                result.append("$")
            } else {
                result.append(character)
            }
        }
        translated[sql] = result
        return result
    }

    func check(_ result: OpaquePointer?, _ sql: String, on connection: OpaquePointer) throws(StoreError) -> OpaquePointer {
        let gone = api.pointee.PQstatus(connection) != Int32(CSEQ_CONNECTION_OK)
        guard let result else {
            let message = Self.firstLine(api.pointee.PQerrorMessage(connection))
            if gone { throw lose(message) }
            throw StoreError("\(name): \(message)")
        }
        let status = api.pointee.PQresultStatus(result)
        guard status == Int32(CSEQ_PGRES_COMMAND_OK) || status == Int32(CSEQ_PGRES_TUPLES_OK) else {
            let message = Self.firstLine(api.pointee.PQresultErrorMessage(result))
            let state = Self.string(api.pointee.PQresultErrorField(result, Int32(CSEQ_PG_DIAG_SQLSTATE)))
            api.pointee.PQclear(result)
            // The session is over (the server shut down or restarted, the backend was
            // terminated, the network cut it): classes 08 and 57P, or an error libpq made
            // itself (no SQLSTATE: "server closed the connection unexpectedly" while sending).
            if gone || state.isEmpty || state.hasPrefix("08") || state.hasPrefix("57P") { throw lose(message) }
            throw StoreError("\(name): \(message)\(state.isEmpty ? "" : " (SQLSTATE \(state))") in: \(sql)", code: Self.code(state))
        }
        return result
    }

    /// A SQLSTATE as a number for `StoreError.code` (23505, a unique violation, is 23505).
    static func code(_ state: String) -> Int32 { Int32(state) ?? -1 }

    public func execute(_ sql: String) throws(StoreError) {
        let handle = try live()
        let result = try check(api.pointee.PQexec(handle, sql), sql, on: handle)
        api.pointee.PQclear(result)
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
        try perform(sql, parameters).rows
    }

    @discardableResult
    public func run(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int {
        try perform(sql, parameters).changed
    }

    /// Sends the statement with typed text parameters and decodes the rows by column type.
    func perform(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> (rows: [SQLRow], changed: Int) {
        let handle = try live()
        let text = postgresText(sql)
        var types: [Oid] = []
        var values: [String?] = []
        for parameter in parameters {
            switch parameter {
            case .null: types.append(0); values.append(nil)
            case .integer(let number): types.append(20); values.append(String(number))
            case .real(let number): types.append(701); values.append(number.isFinite ? String(number) : nil)
            case .text(let string): types.append(25); values.append(string)
            }
        }
        let key = types.map { String($0) }.joined(separator: ",") + "|" + sql
        let statement: String
        if let name = prepared[key] {
            statement = name
        } else {
            statement = "s\(prepared.count + 1)"
            let made = try check(api.pointee.PQprepare(handle, statement, text, Int32(types.count), types), sql, on: handle)
            api.pointee.PQclear(made)
            prepared[key] = statement
        }
        let raw = Self.withCStrings(values) { pointers in
            api.pointee.PQexecPrepared(handle, statement, Int32(parameters.count), pointers, nil, nil, 0)
        }
        let result = try check(raw, sql, on: handle)
        defer { api.pointee.PQclear(result) }
        let rowCount = api.pointee.PQntuples(result)
        let columnCount = api.pointee.PQnfields(result)
        let columns = (0..<columnCount).map { Self.string(api.pointee.PQfname(result, $0)) }
        let kinds = (0..<columnCount).map { api.pointee.PQftype(result, $0) }
        var rows: [SQLRow] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var decoded: [SQLValue] = []
            decoded.reserveCapacity(Int(columnCount))
            for column in 0..<columnCount {
                if api.pointee.PQgetisnull(result, row, column) != 0 {
                    decoded.append(.null)
                    continue
                }
                let value = Self.string(api.pointee.PQgetvalue(result, row, column))
                switch kinds[Int(column)] {
                case 20, 21, 23: decoded.append(Int64(value).map { .integer($0) } ?? .text(value))
                case 700, 701, 1700: decoded.append(Double(value).map { .real($0) } ?? .text(value))
                case 16: decoded.append(.integer(value == "t" ? 1 : 0))
                default: decoded.append(.text(value))
                }
            }
            rows.append(SQLRow(columns: columns, values: decoded))
        }
        let changed = Int(Self.string(api.pointee.PQcmdTuples(result))) ?? 0
        return (rows, changed)
    }

    static func withCStrings<R>(_ values: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let storage: [UnsafeMutablePointer<CChar>?] = values.map { value in value.map { strdupSwift($0) } }
        defer { for pointer in storage { pointer?.deallocate() } }
        return body(storage.map { UnsafePointer($0) })
    }

    static func strdupSwift(_ text: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(text.utf8)
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
        for (index, byte) in utf8.enumerated() { pointer[index] = CChar(bitPattern: byte) }
        pointer[utf8.count] = 0
        return pointer
    }

    /// The session's socket, to wait on for notifications; nil while there is no session.
    public var socket: FileDescriptor? { handle.map { FileDescriptor(rawValue: api.pointee.PQsocket($0)) } }

    /// The notifications that arrived (channel, payload), read from the socket without
    /// waiting. A session found gone is dropped (the next statement reconnects and listens again).
    public func notifications() -> [(channel: String, payload: String)] {
        guard let handle else { return [] }
        if api.pointee.PQconsumeInput(handle) == 0 {
            _ = lose(Self.firstLine(api.pointee.PQerrorMessage(handle)))
            return []
        }
        var result: [(String, String)] = []
        while let notice = api.pointee.PQnotifies(handle) {
            result.append((Self.string(notice.pointee.relname), Self.string(notice.pointee.extra)))
            api.pointee.PQfreemem(notice)
        }
        return result
    }

    /// One round trip: the transaction and the store's write lock.
    public var beginWrite: String { "BEGIN; SELECT pg_advisory_xact_lock(\(Self.writeLockKey))" }
}
