import SeqSystem

/// Takes a project's lock in queue order. Waiting sleeps on the kernel: a pidfd for each
/// waiter ahead and each holder, and a thread blocked in flock on each holder's owner file
/// (it returns when the holder and its whole tree are gone, even after a SIGKILL).
public struct LockWaiter {
    public var lock: ProjectLock
    public var queue: WaitQueue
    public var reporter: Reporter
    public var signals: SignalReceiver
    /// Seconds between status lines when stderr is not a terminal.
    public var logInterval: Double = 30
    /// Seconds between full re-checks if no event came (a net under the kernel's wake-ups).
    public var safetyInterval: Double = 2

    var directory: StateDirectory { lock.directory }
    var reportedProblems: Set<String> = []
    /// Our own waiter's lock, held from our first queue line until we leave the queue.
    var waiterLock: (token: String, fd: FileDescriptor)?
    /// The process named in our queue line and lock record: the one the caller started (a
    /// guarded run's front), which need not be this one. This one holds the waiter's lock.
    public var identity: ProcessIdentity

    public init(directory: StateDirectory, reporter: Reporter, signals: SignalReceiver, identity: ProcessIdentity = .current()) {
        self.lock = ProjectLock(directory: directory)
        self.queue = WaitQueue(directory: directory)
        self.reporter = reporter
        self.signals = signals
        self.identity = identity
    }

    enum Evaluation {
        case acquired(HeldClaim)
        case passThrough
        /// `memoryShort` is MemAvailable when it is our turn but memory keeps us queued;
        /// `blocked`, that it is our turn but our stderr takes nothing (we let others pass).
        case waiting(live: [Claim], ahead: [QueueEntry], position: Int, total: Int, memoryShort: Int64?, blocked: Bool)
        /// A newer newest-first waiter took our place; our line is gone.
        case replaced(by: QueueEntry)
    }

    /// Waits for a slot, in queue order, and takes it.
    public mutating func acquire(_ request: AcquireRequest, token: String) throws(GuardFailure) -> Acquisition {
        // Out of the queue one way or another: our waiter's lock goes with the line.
        defer { leaveQueue() }
        do { return try waitForTurn(request, token: token) } catch {
            // A failure mid-wait (the state turned unusable) leaves no line behind.
            if waiterLock != nil { try? removeLine(of: identity) }
            throw error
        }
    }

    /// The wait, in its phases: a first look (most callers start at once, with no line);
    /// then, until it is our turn, end an overdue unsupervised holder, watch what can end the
    /// wait, say what we wait for, sleep until something changes, and look again.
    mutating func waitForTurn(_ request: AcquireRequest, token: String) throws(GuardFailure) -> Acquisition {
        let me = identity
        let started = Clock.monotonicNanoseconds()
        let record = ownerRecord(request, token: token)
        var mine: QueueEntry?
        var state = try evaluate(me: me, mine: &mine, request: request, record: record(), firstCall: true)
        if let announce = request.announce {
            _ = try? announce.writeAll([0x71])
            announce.close()
        }
        switch state {
        case .acquired(let held): return .acquired(held, waitedSeconds: 0)
        case .passThrough: return .passThrough
        case .replaced(let newer): return .replaced(by: newer)
        case .waiting: break
        }
        reporter.step("queued: \(request.command) (pid \(me.pid))")

        var watch: Watch
        do { watch = try Watch(queueStamp: queueStamp(), isTerminal: reporter.stderrIsTerminal && !reporter.quiet) } catch {
            try? removeLine(of: me)
            throw GuardFailure("cannot create a pipe: \(error)", errno: error)
        }
        defer { watch.close() }
        let deadline = request.waitTimeout.map { started + Int64($0 * 1e9) }
        func waited() -> Double { Double(Clock.monotonicNanoseconds() - started) / 1e9 }

        while case .waiting(let live, let ahead, let position, let total, let memoryShort, let blocked) = state {
            // A holder whose seqexec and supervisor were killed runs on unsupervised: its own
            // deadline still holds, and the waiter that finds it past it ends its tree.
            // (One liveness look per claim: the usual holder is supervised and skipped here.)
            let unsupervised = live.filter(\.isUnsupervised)
            if !ProjectLock.endOverdue(unsupervised, killGrace: request.killGrace, reporter: reporter).isEmpty {
                state = try evaluate(me: me, mine: &mine, request: request, record: record(), firstCall: false)
                continue
            }
            // Stopped waiters near the head (Ctrl-Z), and those whose stderr takes nothing, keep
            // their places but take no turn: a waiter counts its place without them (a few
            // /proc looks, near the head only).
            let stalled = position <= request.slots + 8 ? ahead.prefix(8).filter(WaitQueue.isPassed).count : 0
            var full = watchWhatCanEndTheWait(live: live, ahead: ahead, stalled: stalled, slots: request.slots, &watch)
            sayWhatWeWaitFor(request, live: live, ahead: ahead, position: position, total: total, memoryShort: memoryShort, &watch)
            var quick = false
            if !full {
                // A waiter that cannot be next wakes through the pidfd of the one just ahead; its
                // safety net is rarer, and skipped while the queue file has not changed.
                // The one just behind the next in line looks often too: the next may be stopped.
                let far = position - stalled > request.slots + 1
                let nextDeadline = unsupervised.compactMap { $0.record?.deadline }.min()
                let pollsOften = memoryShort != nil || blocked
                switch sleepUntilSomethingChanges(far: far, deadline: deadline, nextDeadline: nextDeadline, pollsOften: pollsOften, &watch) {
                case .signal(let received):
                    try? removeLine(of: me)
                    reporter.error("interrupted by \(received.signal.name)\(sender(of: received, me: me, queuedAt: mine?.queuedAt)) while waiting; '\(request.command)' was not run")
                    return .interrupted(signal: received.signal)
                case .deadline:
                    try? removeLine(of: me)
                    let holder = memoryShort.map { "memory (\(memoryText($0, request)))" }
                        ?? live.first?.record.map { "'\($0.command)' (pid \($0.holder.pid))" }
                    return .gaveUp(waitedSeconds: waited(), holder: holder)
                case .woke(let waiterGone, let holderMoved):
                    full = waiterGone
                    quick = holderMoved
                }
                if !full { full = safetyLookIsDue(far: far, pollsOften: pollsOften || nextDeadline.map({ Clock.wallTime() >= $0 }) == true,
                                                  ahead: ahead, slots: request.slots, effective: position - stalled, &watch) }
            }
            if full || (quick && worthChecking(me: me, slots: request.slots)) {
                watch.lastFull = Clock.monotonicNanoseconds()
                watch.lastStamp = queueStamp()
                state = try evaluate(me: me, mine: &mine, request: request, record: record(), firstCall: false)
            }
        }
        if case .replaced(let newer) = state { return .replaced(by: newer) }
        guard case .acquired(let held) = state else { return .passThrough }
        reporter.step("acquired \(held.name) after \(formatDuration(waited()))")
        return .acquired(held, waitedSeconds: waited())
    }

    /// The one place claims and the queue are decided, under the mutex: stale claims and dead
    /// waiters are removed, garbage is reported and dropped, and a slot is taken if it is our turn.
    mutating func evaluate(
        me: ProcessIdentity, mine: inout QueueEntry?, request: AcquireRequest, record: OwnerRecord, firstCall: Bool
    ) throws(GuardFailure) -> Evaluation {
        var problems: [String] = []
        let result = try directory.withMutex { () throws(GuardFailure) -> Evaluation in
            let names = try directory.names()
            queue.removeOldTemporaries(among: names)
            // A kill-all under way: nothing queued starts (it ends us shortly).
            let doorClosed = KillAllDoor.isClosed(in: directory, names: names)
            let live = try liveClaims(try lock.inspect(names: names), request: request, problems: &problems)
            if firstCall, let token = request.inheritedTokens[directory.name],
               live.contains(where: { $0.record?.token == token }) {
                return .passThrough
            }
            let snapshot = try queue.read()
            var changed = !snapshot.rejectedLines.isEmpty
            for line in snapshot.rejectedLines {
                problems.append("dropped a malformed line of \(directory.path)/\(WaitQueue.fileName): '\(line)'")
            }
            // Only the lines ahead of ours decide our turn, so only their liveness is read
            // (a /proc look each): a waiter far back pays for its place, not for the queue.
            var entries = snapshot.entries
            let before = QueueSnapshot(entries: entries).ordered
            let ahead = before.firstIndex { $0.process == me }.map { before[..<$0] } ?? before[...]
            let deadEntries = ahead.filter { !queue.isLive($0) }
            let dead = Set(deadEntries.map(\.process))
            if !dead.isEmpty {
                entries.removeAll { dead.contains($0.process) }
                queue.forget(deadEntries)
                changed = true
            }
            if !entries.contains(where: { $0.process == me }), let held = try joinTheLine(
                me: me, mine: &mine, entries: &entries, changed: &changed, request: request, record: record, live: live, doorClosed: doorClosed) {
                return .acquired(held)
            }
            // Newest first: a live newer waiter that asked it too takes our place.
            if request.newestFirst, let arrived = entries.first(where: { $0.process == me })?.queuedAt,
               let newer = entries.last(where: { $0.process != me && $0.queuedAt > arrived && $0.extra.contains(WaitQueue.newestFirstMark) && queue.isLive($0) }) {
                entries.removeAll { $0.process == me }
                try queue.write(entries)
                return .replaced(by: newer)
            }
            let ordered = QueueSnapshot(entries: entries).ordered
            let free = doorClosed ? 0 : Self.freeSlots(asking: request.slots, live: live)
            let rank = ordered.firstIndex { $0.process == me } ?? 0
            // Our turn counts those ahead that can take theirs: when a slot is free and someone
            // ahead has not taken it, a waiter that is stopped (Ctrl-Z) or blocked keeps its
            // place but does not hold up those behind it.
            var turn = rank
            if free > 0 && rank >= free {
                turn -= ordered[..<rank].filter(WaitQueue.isPassed).count
            }
            // Our stderr takes nothing (a full pipe, a terminal stopped with Ctrl-S): we do not
            // take a turn we could not report in, and the line moves past us until it does.
            // Asked only when it is our turn (a poll(2), without waiting).
            let blocked = turn < free && reporter.outputIsBlocked
            var memoryShort: Int64?
            if blocked {
                // Our turn, but we would take it blocked: stay in line, marked, and let others by.
            } else if turn < free, let needed = request.minimumAvailableBytes,
               let available = SystemMemory.available(), available < needed {
                // Our turn, but starting now would push the machine into swap: stay first in line.
                memoryShort = available
            } else if turn < free, let held = try lock.claim(slots: request.slots, record: record) {
                entries.removeAll { $0.process == me }
                if changed || !firstCall { try queue.write(entries) }
                return .acquired(held)
            }
            // What we wait for, when the queue and the holders do not say it: `--status` reads it.
            if let index = entries.firstIndex(where: { $0.process == me }),
               Self.markWhy(&entries[index], memoryShort: memoryShort, needed: request.minimumAvailableBytes, blocked: blocked) {
                mine?.extra = entries[index].extra
                changed = true
            }
            if changed { try queue.write(entries) }
            return .waiting(live: live, ahead: Array(ordered[..<rank]), position: rank + 1, total: ordered.count,
                            memoryShort: memoryShort, blocked: blocked)
        }
        for problem in problems where !reportedProblems.contains(problem) {
            reportedProblems.insert(problem)
            reporter.error(problem)
        }
        return result
    }

    /// The live claims among `claims`; the stale ones are removed (and their runs recorded as
    /// lost), each with a line in `problems`.
    func liveClaims(_ claims: [Claim], request: AcquireRequest, problems: inout [String]) throws(GuardFailure) -> [Claim] {
        var live: [Claim] = []
        for claim in claims {
            if claim.isLive {
                live.append(claim)
                if let problem = claim.problem { problems.append("lock \(directory.path)/\(claim.name) is held but has an \(problem)") }
                continue
            }
            let who = claim.record.map { " (holder pid \($0.holder.pid) '\($0.command)' is gone)" } ?? " (\(claim.problem ?? "no holder"))"
            var recorded = ""
            if let project = request.historyProject, let owner = claim.record, (try? History(directory: directory).appendLost(owner, project: project)) != nil {
                recorded = "; its run is recorded as holder_killed"
            }
            problems.append("removed stale lock \(directory.path)/\(claim.name)\(who)\(recorded)")
            try lock.removeStale(claim)
        }
        return live
    }

    /// Our line, which `entries` lacks: on first arrival, or when it was lost. A caller that
    /// can start at once takes its slot instead (returned); otherwise the line is added.
    mutating func joinTheLine(
        me: ProcessIdentity, mine: inout QueueEntry?, entries: inout [QueueEntry], changed: inout Bool,
        request: AcquireRequest, record: OwnerRecord, live: [Claim], doorClosed: Bool
    ) throws(GuardFailure) -> HeldClaim? {
        // First arrival, or our line was lost: (re)add it with its original arrival time,
        // holding our waiter's lock first so the line is live from the moment it exists.
        var entry = mine ?? QueueEntry(process: me, queuedAt: Clock.wallTime(), command: request.command, priority: request.priority)
        if mine == nil && request.newestFirst { entry.extra.append(WaitQueue.newestFirstMark) }
        // A caller that can start at once never needs a line: the mutex is held from
        // this look to the claim, so nobody can see the queue in between.
        if mine == nil, request.minimumAvailableBytes == nil, !doorClosed,
           (QueueSnapshot(entries: entries + [entry]).ordered.firstIndex { $0.process == me } ?? 0) < Self.freeSlots(asking: request.slots, live: live),
           let held = try lock.claim(slots: request.slots, record: record) {
            if changed { try queue.write(entries) }
            return held
        }
        if waiterLock == nil {
            let token = Processes.randomHex(bytes: 8)
            do throws(Errno) {
                if let fd = try queue.waiterLock(token).tryAcquire() { waiterLock = (token, fd) }
            } catch {
                throw GuardFailure("cannot create a waiter's lock in \(directory.path): \(error); check free space and permissions", errno: error)
            }
        }
        entry.token = waiterLock?.token
        mine = entry
        entries.append(entry)
        changed = true
        return nil
    }

    /// Writes into `entry` why it waits beyond what the queue and holders say (memory short,
    /// blocked output); whether that changed it.
    static func markWhy(_ entry: inout QueueEntry, memoryShort: Int64?, needed: Int64?, blocked: Bool) -> Bool {
        var extra = entry.extra.filter { !$0.hasPrefix("why=") && $0 != WaitQueue.blockedMark }
        if let memoryShort { extra.append("why=memory-\(memoryShort >> 20)-\((needed ?? 0) >> 20)") }
        if blocked { extra.append(WaitQueue.blockedMark) }
        guard extra != entry.extra else { return false }
        entry.extra = extra
        return true
    }

    /// Whether a live claim of `directory` carries `token`: a process up the tree holds this
    /// lock, and a nested call must not wait for it.
    public static func isHeld(by token: String, in directory: StateDirectory) -> Bool {
        let claims = try? directory.withMutex { () throws(GuardFailure) in try ProjectLock(directory: directory).inspect() }
        return claims?.contains { $0.isLive && $0.record?.token == token } ?? false
    }

    /// A lockless look, so that a herd of woken waiters does not queue on the mutex: could it
    /// be our turn? Only then is the full evaluation worth it.
    func worthChecking(me: ProcessIdentity, slots: Int) -> Bool {
        guard let snapshot = try? queue.read(), let claims = try? lock.inspect() else { return true }
        guard let rank = snapshot.ordered.firstIndex(where: { $0.process == me }) else { return true }
        let free = Self.freeSlots(asking: slots, live: claims.filter(\.isLive))
        if free > 0 && rank >= free {
            return rank - snapshot.ordered[..<rank].filter(WaitQueue.isPassed).count < free
        }
        return rank < free
    }

    /// How many more commands may start now: the strictest `--slots` among the caller's and
    /// the live holders' (a holder that asked to be alone is alone), less those running. A
    /// holder whose record cannot be read counts as alone.
    static func freeSlots(asking slots: Int, live: [Claim]) -> Int {
        live.map { $0.record?.slots ?? 1 }.reduce(slots, min) - live.count
    }

    /// Gives our waiter's lock up (the line is gone or going).
    mutating func leaveQueue() {
        guard let (token, fd) = waiterLock else { return }
        queue.waiterLock(token).remove(holding: fd)
        fd.close()
        waiterLock = nil
    }

    /// Removes this process's queue line (given up, interrupted).
    func removeLine(of me: ProcessIdentity) throws(GuardFailure) {
        try directory.withMutex { () throws(GuardFailure) in
            let snapshot = try queue.read()
            let kept = snapshot.entries.filter { $0.process != me }
            if kept.count != snapshot.entries.count || !snapshot.rejectedLines.isEmpty { try queue.write(kept) }
        }
    }

    func memoryText(_ available: Int64, _ request: AcquireRequest) -> String {
        "MemAvailable \(formatMegabytes(available)) is below --min-available \(formatMegabytes(request.minimumAvailableBytes ?? 0))"
    }

    /// "seqexec: 'make lint' waiting for 'make test' (pid N, 12s) — position 2 of 3": this
    /// waiter's own command first, so several waiters' lines say which is which.
    /// Commands are cut to `commandWidth` characters: a 100 KB argument list is not repeated
    /// in every waiter's line.
    func statusLine(command: String, live: [Claim], ahead: [QueueEntry], position: Int, total: Int, elapsed: Bool = true) -> String {
        let me = "\(reporter.toolName): '\(Self.shortened(command))'"
        let place = "position \(position) of \(total)"
        if let record = live.first?.record {
            let time = elapsed ? ", \(formatDuration(record.since.seconds(until: Clock.wallTime()), wholeSeconds: true))" : ""
            return "\(me) waiting for '\(Self.shortened(record.command))' (pid \(record.holder.pid)\(time)) — \(place)"
        }
        if live.first != nil { return "\(me) waiting for a lock holder with an unreadable record — \(place)" }
        if let first = ahead.first { return "\(me) waiting behind '\(Self.shortened(first.command))' (pid \(first.process.pid)) — \(place)" }
        return "\(me) waiting — \(place)"
    }

    static let commandWidth = 200

    /// `command` cut to `commandWidth` characters, with "…".
    static func shortened(_ command: String) -> String {
        command.count <= commandWidth ? command : String(command.prefix(commandWidth - 1)) + "…"
    }

    /// A line cut to the terminal's width (less one column, so it never wraps), with "…".
    static func fitted(_ line: String, columns: Int?) -> String {
        guard let columns, columns > 1, line.count > columns - 1 else { return line }
        return String(line.prefix(columns - 2)) + "…"
    }
}

