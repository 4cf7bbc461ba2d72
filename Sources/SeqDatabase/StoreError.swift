/// A failure of the store: what was being done, the database's message and its code
/// (SQLite's result code, PostgreSQL's SQLSTATE as a number, or `unreachable`).
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var code: Int32

    public init(_ message: String, code: Int32 = 0) {
        self.message = message
        self.code = code
    }

    public var description: String { message }

    /// The code of a store that cannot be reached: its server is down or restarting, or the
    /// session was cut. The statement did not run, or its reply was lost; the caller waits
    /// and tries again (the connection reconnects by itself).
    public static let unreachable: Int32 = -100

    /// The code of a server that answered and refused the connection for good: no such
    /// database or role, a password it did not take. Waiting would not change its answer.
    public static let refused: Int32 = -102

    /// Whether the store could not be reached (as opposed to refusing the statement).
    public var isUnreachable: Bool { code == Self.unreachable }
}

/// A time the store could not be reached: since when, how many reconnects failed, and
/// when the next may be tried.
public struct StoreOutage: Sendable {
    /// Wall-clock seconds of the first failure.
    public var since: Moment
    public var attempts = 0
    /// Monotonic nanoseconds before which no reconnect is tried.
    public var nextAttempt: Int64 = 0
    /// What the callers are told meanwhile.
    public var error: StoreError

    public init(since: Moment, error: StoreError) {
        self.since = since
        self.error = error
    }
}
