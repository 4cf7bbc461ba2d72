import SeqDatabase

/// What an alert is about, as the store records it (the alert's key names the instance:
/// `hung:feed`, `server-port:d1`). The stored word is the raw value; one this version does not
/// name (a newer version wrote it) is read and shown as it is.
public typealias AlertKind = StoredWord<AlertKindWords>
public enum AlertKindWords {}

extension StoredWord where Of == AlertKindWords {
    /// The store's file was deleted, renamed or replaced under the run, or it cannot be reached.
    public static let store = Self("store")
    /// A host of the farm lost its lease and was taken over.
    public static let host = Self("host")
    /// A fence could not end an earlier attempt's processes.
    public static let fence = Self("fence")
    /// A device server's port is taken by a process that is not its.
    public static let serverPort = Self("server-port")
    /// A recurring job's run hung (no heartbeat), or stayed stuck past its limit.
    public static let hung = Self("hung")
    public static let stuck = Self("stuck")
    /// The pipeline's health check failed (stale content, long claims).
    public static let health = Self("health")
    /// MemAvailable fell below the scheduler's critical mark.
    public static let memory = Self("memory")
}

/// Whether a notification says an alert was raised or cleared.
public enum AlertChange: String, Sendable {
    case raised, cleared
}
