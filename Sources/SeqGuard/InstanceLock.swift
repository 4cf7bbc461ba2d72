import SeqSystem

/// A single-instance lock for a long-lived program (one seqpipe orchestrator per store):
/// the same mkdir claim and flock'd owner record as the project lock, taken without waiting,
/// with a heartbeat in the record so a silent holder can be told from a busy one.
public struct InstanceLock: Sendable {
    public var directory: StateDirectory

    public init(directory: StateDirectory) { self.directory = directory }

    /// What trying to take the lock found.
    public enum Attempt: Sendable {
        case acquired(HeldClaim)
        /// A live holder; `draining` when its recorded holder process is gone but processes it
        /// started still keep the claim (they inherited the owner descriptor).
        case held(OwnerRecord?, draining: Bool)
    }

    /// Takes the lock if no live process holds it; a stale claim (no flock on its record) is
    /// removed first.
    public func tryAcquire(command: String) throws(GuardFailure) -> Attempt {
        try directory.withMutex { () throws(GuardFailure) -> Attempt in
            let lock = ProjectLock(directory: directory)
            for claim in try lock.inspect() {
                if claim.isLive {
                    let draining = claim.record.map { !$0.holder.isAlive } ?? false
                    return .held(claim.record, draining: draining)
                }
                try lock.removeStale(claim)
            }
            var record = OwnerRecord(
                holder: ProcessIdentity.current(), host: Processes.hostName(), since: Clock.wallTime(),
                command: command, token: Processes.randomHex(bytes: 12))
            record.pidNamespace = Processes.pidNamespace
            record.heartbeat = Clock.wallTime()
            record.heartbeatBootSeconds = Clock.secondsSinceBoot()
            guard let held = try lock.claim(slots: 1, record: record) else {
                return .held(nil, draining: false)
            }
            return .acquired(held)
        }
    }

    /// Rewrites the record with a fresh heartbeat.
    public func beat(_ held: inout HeldClaim) {
        var record = held.record
        record.heartbeat = Clock.wallTime()
        record.heartbeatBootSeconds = Clock.secondsSinceBoot()
        let directory = directory
        var copy = held
        try? directory.withMutex { ProjectLock(directory: directory).update(&copy, record: record) }
        held = copy
    }

    /// The live holder's record, if any.
    public func holder() -> OwnerRecord? {
        let directory = directory
        let claims = try? directory.withMutex { () throws(GuardFailure) -> [Claim] in try ProjectLock(directory: directory).inspect() }
        return claims?.first { $0.isLive }?.record
    }

    /// Gives the lock up.
    public func release(_ held: HeldClaim) {
        let directory = directory
        try? directory.withMutex { ProjectLock(directory: directory).release(held) }
    }
}
