import SeqDatabase
import SeqSystem
import Synchronization

/// Keeps a held shared lock's lease while the command runs, on a thread of its own, and
/// arms the kernel timer that ends the command when the lease cannot be kept.
///
/// The argument that two hosts never both run under the lock: the timer is set from the
/// moment each successful renewal was *sent*, to fire `margin` seconds before `lease` runs
/// out from then. The database computed the lease's end after it received that statement,
/// so by its clock the lease ends later than the holder's timer assumes; and the supervisor
/// ends the tree (SIGTERM, its grace, SIGKILL) within `margin`. Another host takes the lock
/// only once the database's clock is past the lease's end, by then the tree is gone. A renewal
/// stuck in a network that stopped answering cannot hold the timer back: it is the kernel's.
/// What this cannot cover is a holder whose whole machine stops (a frozen VM, SIGSTOP of the
/// supervisor) and wakes after the lease: its command may run a moment before the timer's
/// expiry is seen. That is what `SEQEXEC_FENCE` is for.
final class LeaseKeeper: @unchecked Sendable {
    let lock: SharedLock
    let id: Int64
    let lease: Double
    let margin: Double
    /// Readable once the command must end: the lease is about to run out unrenewed, or
    /// another run ended this one (replaced, cancelled, revoked).
    let timer: DeadlineTimer
    let wake: (read: FileDescriptor, write: FileDescriptor)
    let done: (read: FileDescriptor, write: FileDescriptor)

    struct State {
        var why: Why?
        var stop = false
        var lastError: String?
    }

    /// Why the timer fired early.
    enum Why: Sendable, Equatable {
        case ended(String, by: String)
        case lost
    }

    let state = Mutex(State())

    /// Starts keeping run `id`'s lease, whose last renewal (the acquisition) was sent at
    /// `sentAt` on the boot clock.
    init(lock: SharedLock, id: Int64, lease: Double, margin: Double, sentAt: Double) throws(Errno) {
        self.lock = lock
        self.id = id
        self.lease = lease
        self.margin = margin
        timer = try DeadlineTimer()
        wake = try FileSystem.pipe()
        done = try FileSystem.pipe()
        timer.fire(inSeconds: sentAt + lease - margin - Clock.secondsSinceBoot())
        try Threads.detach { [self] in keep() }
    }

    deinit {
        for descriptor in [wake.read, wake.write, done.read, done.write] { descriptor.close() }
    }

    /// Why the command had to end, once the timer fired; nil while the lease is kept.
    var why: Why? { state.withLock { $0.why } }
    var lastError: String? { state.withLock { $0.lastError } }

    /// The thread: renew every third of the lease (more often while the store does not
    /// answer), re-arming the timer after each success; at the end, give the lock back.
    func keep() {
        let interval = lease / 3
        var failing = false
        while true {
            let wait = failing ? min(interval, 0.5) : interval
            _ = Poll.readable([wake.read], timeoutMilliseconds: Int32(wait * 1000))
            if state.withLock({ $0.stop }) { break }
            guard state.withLock({ $0.why }) == nil else { continue }
            let sent = Clock.secondsSinceBoot()
            do {
                switch try lock.renew(id) {
                case .renewed:
                    failing = false
                    timer.fire(inSeconds: sent + lease - margin - Clock.secondsSinceBoot())
                case .ended(let kind, let by):
                    state.withLock { $0.why = .ended(kind, by: by) }
                    timer.fire(inSeconds: 0)
                case .lost:
                    state.withLock { $0.why = .lost }
                    timer.fire(inSeconds: 0)
                }
            } catch {
                failing = true
                state.withLock { $0.lastError = error.message }
            }
        }
        try? lock.leave(id)
        _ = try? done.write.writeAll([1])
    }

    /// Gives the lock back: the thread deletes the run's row. Waits up to `seconds` for it
    /// (a store that does not answer cannot hold the exit up; the lease then runs out).
    func release(waitingUpTo seconds: Double) {
        state.withLock { $0.stop = true }
        _ = try? wake.write.writeAll([1])
        _ = Poll.readable([done.read], timeoutMilliseconds: Int32(seconds * 1000))
    }
}
