import PipelineModel
import SeqDatabase

// What the store says about claims, hosts, alerts, checks and notifications: records it
// makes from its rows and hands to the runtime and the surfaces.

/// A job a worker holds: every later write carries `token`.
public struct ClaimedJob: Sendable {
    public var job: Job
    public var token: String
}

/// A host of the farm as its lease row says: its orchestrator, when it last renewed, until
/// when the lease holds, and whether it is running, stopped cleanly or was lost (taken over).
public struct HostRecord: Sendable {
    public var name: String
    public var pid: Int32?
    public var state: HostState
    public var startedAt: Moment?
    public var beatAt: Moment?
    public var leaseUntil: Moment?
    public var note: String?
}

/// A host's lease row's state (the raw value). A store of a newer schema is refused before
/// any row is read, so every stored word is one of these.
public enum HostState: String, Sendable {
    /// Its orchestrator holds the lease.
    case running
    /// Its orchestrator stopped cleanly.
    case stopped
    /// Its lease ran out and another host took its claims over.
    case lost
}

/// What taking over a lost host did: its name, the claims put back, its devices held.
public struct HostTakeover: Sendable {
    public var host: String
    public var requeued: [String]
    public var devices: [String]
}

/// A condition the watchdog or the health check found, until it clears.
public struct Alert: Sendable {
    public var key: String
    public var kind: AlertKind
    public var message: String
    public var raisedAt: Moment
    public var seenAt: Moment
}

/// The latest result of a periodic check.
public struct Check: Sendable {
    public var name: String
    public var at: Moment
    public var ok: Bool
    public var message: String
}

/// What the pipeline health check looks at.
public struct PipelineHealth: Sendable {
    /// When the newest job was added: the content's age.
    public var newestJobCreatedAt: Moment?
    /// Jobs pending or retrying.
    public var waiting: Int
    /// Jobs claimed or running for longer than the limit.
    public var longClaims: [Job]
}

/// One raise or clear of an alert, on its way out to people.
public struct Notification: Sendable, Equatable {
    public var id: Int64
    public var at: Moment
    public var key: String
    public var kind: AlertKind
    public var state: AlertChange
    public var message: String
    public var attempts: Int
}
