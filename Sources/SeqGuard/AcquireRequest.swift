import SeqSystem

/// What a caller asks of the lock.
public struct AcquireRequest: Sendable {
    public var command: String
    public var slots: Int = 1
    public var priority: Priority = .normal
    /// Give up after this many seconds of waiting; nil waits for ever.
    public var waitTimeout: Double?
    /// Nested-call tokens from the environment (`SEQEXEC_TOKENS`), by state directory name.
    public var inheritedTokens: [String: String] = [:]
    /// Admission: start only while the system's MemAvailable is at least this many bytes.
    public var minimumAvailableBytes: Int64?
    /// Told (one byte, then closed) once this request has its place in the queue or the lock.
    public var announce: FileDescriptor?
    /// The project whose history this lock keeps (the executor lock's): a claim found stale,
    /// its supervisor killed, gets its history line here. Nil for a lock without history.
    public var historyProject: String?
    /// The grace between SIGTERM and SIGKILL for an unsupervised holder's tree past its deadline.
    public var killGrace: Double = 5
    /// `--order newest-first`: marked so in the queue, and replaced by a newer such waiter.
    public var newestFirst = false

    public init(command: String) { self.command = command }
}

/// How waiting for the lock ended.
public enum Acquisition: Sendable {
    case acquired(HeldClaim, waitedSeconds: Double)
    /// A guarded command of the live holder called again: run straight through, no lock.
    case passThrough
    case gaveUp(waitedSeconds: Double, holder: String?)
    /// A newer waiter asking newest-first took our place (its pid and command).
    case replaced(by: QueueEntry)
    case interrupted(signal: Signal)
}
