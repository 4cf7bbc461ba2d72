import SeqDatabase
import SeqSystem

/// A shared lock this run holds (`--store`): its row, its fencing token, and once the command
/// runs, the keeper of its lease.
struct SharedHold {
    let lock: SharedLock
    let id: Int64
    let fence: Int64
    /// When the look that took the lock was sent, on the boot clock: the lease counts from it.
    let sentAt: Double
    var keeper: LeaseKeeper?

    /// Gives the lock back (the keeper process does, once it runs).
    func release() {
        if let keeper { keeper.release(waitingUpTo: 2) } else { try? lock.leave(id) }
    }
}

extension GuardedRun {
    /// The shared lock's entry in SEQEXEC_TOKENS; its value is the run's id.
    var sharedTokenKey: String { "store-" + lanes[home].directory.name }

    /// Phase 1 with `--store`: the named lock's line in the database, instead of the local
    /// locks (the local state directory keeps the history and submitted runs). Nil once the
    /// lock is held or an ancestor holds it; the exit status when the wait ended without it.
    mutating func takeSharedLock(url: String) throws(GuardFailure) -> Int32? {
        let name = configuration.lockName ?? ""
        let lock: SharedLock
        do {
            lock = try SharedLock(name: name, url: url, host: configuration.hostName ?? Processes.hostName(), lease: configuration.lease)
        } catch {
            throw GuardFailure("cannot use the shared lock '\(name)': \(error.message)", cause: error)
        }
        // The run has its place once it is in the line (or passes through): `--submit` returns.
        var announce = configuration.announce
        func placed() {
            _ = try? announce?.writeAll([0x71])
            announce?.close()
            announce = nil
        }
        defer { placed() }
        if let inherited = inheritedTokens[sharedTokenKey].flatMap({ Int64($0) }), (try? lock.holds(inherited)) == true {
            reporter.step("nested call inside the holder of '\(name)': not taking it again")
            return nil
        }
        let asking = SharedLock.Arrival(process: front, command: command, priority: configuration.priority, slots: configuration.slots,
                                         lease: configuration.lease, newestFirst: configuration.newestFirst,
                                         cancelRunning: configuration.cancelRunning)
        let id = try storeCall(lock) { () throws(StoreError) in try lock.join(asking) }
        placed()
        reporter.step("queued for '\(name)' in \(lock.connection.name) as run \(id)")
        return try waitInLine(lock, id: id, asking: asking)
    }

    /// Looks at the line until run `id` holds the lock (nil), or its wait ends: replaced,
    /// revoked, given up, interrupted (the exit status). A place that ran out (the host was
    /// stopped or cut off past its lease) is taken again at the back.
    mutating func waitInLine(_ lock: SharedLock, id first: Int64, asking: SharedLock.Arrival) throws(GuardFailure) -> Int32? {
        let name = lock.name
        var id = first
        let deadline = configuration.waitTimeout.map { arrival(plus: $0) }
        var said = (line: "", at: Int64(0))
        var saidUnreachable = false
        while true {
            let sentAt = Clock.secondsSinceBoot()
            var position = 2
            var lost = false
            do throws(StoreError) {
                switch try lock.look(id) {
                case .acquired(let fence):
                    shared = SharedHold(lock: lock, id: id, fence: fence, sentAt: sentAt)
                    reporter.step("acquired '\(name)' (fence \(fence)) after \(formatDuration(waitedSoFar()))")
                    return nil
                case .ended(let kind, let by):
                    try? lock.leave(id)
                    return endedWhileWaiting(kind, by: by)
                case .lost:
                    lost = true
                case .waiting(let place, let total, let holders):
                    position = place
                    saidUnreachable = false
                    say(waitingLine(name, position: place, total: total, holders: holders), &said)
                }
            } catch where error.isUnreachable {
                if !saidUnreachable { reporter.notice("\(error.message); still waiting for '\(name)'") }
                saidUnreachable = true
            } catch {
                try? lock.leave(id)
                throw GuardFailure("cannot wait for the shared lock '\(name)': \(error.message)", cause: error)
            }
            if lost {
                reporter.notice("the place of '\(command)' in the line for '\(name)' ran out (stopped or cut off from the store for longer than its \(formatDuration(configuration.lease)) lease); joining again at the back")
                id = try storeCall(lock) { () throws(StoreError) in try lock.join(asking) }
                continue
            }
            if let deadline, Clock.monotonicNanoseconds() >= deadline {
                try? lock.leave(id)
                reporter.error("gave up after \(formatDuration(waitedSoFar())) waiting for '\(name)'; '\(command)' was not run")
                record(.gaveUp, status: ExitCode.gaveUpWaiting)
                return ExitCode.gaveUpWaiting
            }
            // A lock given back is announced, and the line looks at once; the looks between
            // renew this run's place and notice a holder whose lease ran out (the next in line
            // looks most often).
            let pause = Int32(min(position <= 1 ? 0.25 : 1, configuration.lease / 3) * 1000)
            let ready = Poll.readable([signals.descriptor] + (lock.connection.socket.map { [$0] } ?? []), timeoutMilliseconds: pause)
            if ready.contains(1) { lock.takeAnnouncements() }
            guard ready.contains(0) else { continue }
            for received in signals.drain() where [.interrupt, .terminate, .hangup, .quit].contains(received.signal) {
                try? lock.leave(id)
                reporter.error("interrupted by \(received.signal.name) while waiting for '\(name)'; '\(command)' was not run")
                record(.interrupted, status: received.signal.shellExitCode)
                return received.signal.shellExitCode
            }
        }
    }

    /// Monotonic nanoseconds `seconds` after this run arrived.
    func arrival(plus seconds: Double) -> Int64 { arrival + Int64(seconds * 1e9) }

    /// A store call made before the lock is held: an error is the run's end, said with the fix.
    func storeCall<T>(_ lock: SharedLock, _ body: () throws(StoreError) -> T) throws(GuardFailure) -> T {
        do { return try body() } catch {
            throw GuardFailure("cannot join the line for '\(lock.name)': \(error.message)", cause: error)
        }
    }

    /// Another run ended this one's wait: a newer newest-first run, or a farm-wide kill-all.
    func endedWhileWaiting(_ kind: SharedLock.Ending, by: String) -> Int32 {
        if kind == .revoked {
            reporter.error("the lock '\(configuration.lockName ?? "")' was revoked by \(by) while '\(command)' waited; it was not run")
            record(.interrupted, status: Signal.terminate.shellExitCode)
            return Signal.terminate.shellExitCode
        }
        reporter.error("replaced by a newer run, \(by) (--order newest-first); '\(command)' was not run")
        record(.replaced, status: ExitCode.replaced)
        return ExitCode.replaced
    }

    /// `seqexec: 'make deploy' waiting for 'staging': 2nd of 3 in line, held by host ci-2 pid 42 'make deploy'`.
    func waitingLine(_ name: String, position: Int, total: Int, holders: [SharedLock.Run]) -> String {
        let held = holders.isEmpty ? "" : ", held by " + holders.map(\.who).joined(separator: ", ")
        return "\(reporter.toolName): '\(LockWaiter.shortened(command))' waiting for '\(name)' (shared): \(position) of \(total) in line\(held)"
    }

    /// Says a waiting line when it changed, or every 30 s.
    func say(_ line: String, _ said: inout (line: String, at: Int64)) {
        let now = Clock.monotonicNanoseconds()
        guard !reporter.quiet, line != said.line || now - said.at >= 30_000_000_000 else { return }
        _ = reporter.writeReplaceable(line + "\n")
        said = (line, now)
    }

    /// Before the command starts: its environment names the lock (SEQEXEC_TOKENS, so a nested
    /// call passes through) and the fencing token (SEQEXEC_FENCE); the lease keeper starts, and
    /// its timer is what ends the command early.
    mutating func keepSharedLease(_ supervisor: inout Supervisor, tokens: inout String) throws(GuardFailure) {
        guard var hold = shared else { return }
        let entry = "\(sharedTokenKey)=\(hold.id)"
        tokens = tokens.isEmpty ? entry : tokens + "," + entry
        environment.setVariable(fenceVariable, String(hold.fence))
        let grace = min(configuration.killGrace, configuration.lease / 5)
        let margin = grace + max(0.2, configuration.lease / 10)
        let keeper: LeaseKeeper
        do {
            keeper = try LeaseKeeper(lock: hold.lock, id: hold.id, lease: configuration.lease, margin: margin, sentAt: hold.sentAt, grace: grace)
        } catch {
            throw GuardFailure("cannot start the lease keeper: \(error)", errno: error)
        }
        hold.keeper = keeper
        shared = hold
        supervisor.cancel = keeper.timer.descriptor
        supervisor.spared.insert(keeper.pid)
        supervisor.cancelGrace = grace
        let name = configuration.lockName ?? ""
        let lease = configuration.lease
        supervisor.cancelNotice = {
            switch keeper.why {
            case .ended(.revoked, let by)?: return "the lock '\(name)' was revoked by \(by): ending its process tree"
            case .ended(_, let by)?: return "cancelled by a newer run, \(by) (--cancel-running): ending its process tree"
            default:
                let reason = keeper.lastError.map { " (\($0))" } ?? ""
                return "cannot renew the lease on '\(name)'\(reason): ending the process tree before the \(formatDuration(lease)) lease runs out"
            }
        }
    }

    /// How a run that the lease keeper ended ended: its history ending and exit status.
    func sharedEnding() -> (HistoryRecord.Ending, Int32)? {
        guard let keeper = shared?.keeper else { return nil }
        switch keeper.why {
        case .ended(.revoked, _)?: return (.signal, Signal.terminate.shellExitCode)
        case .ended?: return (.replaced, ExitCode.replaced)
        default: return (.leaseLost, ExitCode.leaseLost)
        }
    }
}

/// The variable a command under a shared lock finds its fencing token in: a number that
/// grows with every hand-over of the lock, for the resource to refuse a stale holder.
public let fenceVariable = "SEQEXEC_FENCE"
