import SeqSystem

// The phases of a wait (see `LockWaiter.waitForTurn`): what is watched, what is said, how
// long the waiter sleeps, and when it looks again without an event.

extension LockWaiter {
    /// What a waiter keeps between looks: what it watches (pidfds of the processes that can
    /// end the wait, threads blocked in flock on the holders' records, all writing to
    /// `notify`), and when it last said what it waits for and last looked at the queue.
    struct Watch {
        let notify: (read: FileDescriptor, write: FileDescriptor)
        var pidfds: [ProcessIdentity: (fd: FileDescriptor, isWaiter: Bool)] = [:]
        /// The records (and guards) a flock watcher thread already waits on.
        var watchedFiles: Set<String> = []
        let isTerminal: Bool
        var lastStatus: Int64 = 0
        var lastLine = ""
        var lastFull = Clock.monotonicNanoseconds()
        /// The queue file as last evaluated: rename(2) gives every new version a new inode.
        var lastStamp: FileStatus?

        init(queueStamp: FileStatus?, isTerminal: Bool) throws(Errno) {
            notify = try FileSystem.pipe()
            lastStamp = queueStamp
            self.isTerminal = isTerminal
        }

        func close() {
            // The write end stays open: a watcher thread may still write to it.
            notify.read.close()
            for (_, watch) in pidfds { watch.fd.close() }
        }
    }

    /// How a sleep ended: a signal to stop, the caller's time limit, or something that may
    /// have moved the line (a waiter ahead gone, or a holder's lock or process).
    enum Wake {
        case signal(ReceivedSignal)
        case deadline
        case woke(waiterGone: Bool, holderMoved: Bool)
    }

    /// The record our claim will carry, made afresh at each look (its `since`).
    func ownerRecord(_ request: AcquireRequest, token: String) -> () -> OwnerRecord {
        let me = identity
        let host = Processes.hostName()
        let current = ProcessIdentity.current()
        return {
            var record = OwnerRecord(holder: me, host: host, since: Clock.wallTime(), command: request.command, token: token)
            record.slots = request.slots
            record.pidNamespace = Processes.pidNamespace
            // Waiting for the front: this process holds the claim, and supervises under it.
            if current != me { record.supervisor = current }
            return record
        }
    }

    func queueStamp() -> FileStatus? { try? FileSystem.status(WaitQueue.fileName, relativeTo: directory.descriptor) }

    /// Watches only what can end this wait, so one release wakes one waiter, not a herd. With
    /// N slots, only the N waiters nearest ahead matter: if one further ahead goes, our rank
    /// stays at N or more and we still cannot start. A waiter that moves on to hold the lock
    /// keeps its pidfd here, which fires when it exits after releasing. Returns whether
    /// something could not be watched, so the queue should be looked at again now.
    func watchWhatCanEndTheWait(live: [Claim], ahead: [QueueEntry], stalled: Int, slots: Int, _ watch: inout Watch) -> Bool {
        var lookNow = false
        for entry in ahead.suffix(slots) where watch.pidfds[entry.process] == nil {
            if let fd = Processes.openPidfd(entry.process) {
                watch.pidfds[entry.process] = (fd, true)
            } else if let fd = queue.waiters(entry).lazy.compactMap(Processes.openPidfd).first {
                // A live line whose pid is not found here (its waiter is in another pid
                // namespace): the process holding its waiter lock is the one to watch.
                watch.pidfds[entry.process] = (fd, true)
            } else {
                lookNow = true
            }
        }
        // Holders matter only to the waiters a freed slot would let in.
        for claim in live where ahead.count - stalled < slots {
            // (Pids of another pid namespace are not these processes: its flock watcher
            // alone says when it ends.)
            let pids = claim.record?.pidsAreOurs == true ? [claim.record?.holder, claim.record?.supervisor] : []
            for holder in pids.compactMap({ $0 }) where watch.pidfds[holder] == nil {
                if let fd = Processes.openPidfd(holder) { watch.pidfds[holder] = (fd, false) }
            }
            guard let owner = claim.ownerFile else { continue }
            let key = "\(owner.device):\(owner.inode)"
            if !watch.watchedFiles.contains(key) {
                if FlockWatcher.start(path: "\(claim.name)/\(ProjectLock.ownerFileName)", relativeTo: directory.descriptor, notify: watch.notify.write) {
                    watch.watchedFiles.insert(key)
                } else {
                    lookNow = true
                }
            }
            // With no pidfd for its claimant (another pid namespace), the claimant's own
            // flock is watched too: it wakes us when the claimant ends after its tree let the
            // record go (a command's `flock -u`).
            if claim.record?.pidsAreOurs == false, !watch.watchedFiles.contains("guard " + key),
               FlockWatcher.start(path: "\(claim.name)/\(ProjectLock.guardFileName)", relativeTo: directory.descriptor, notify: watch.notify.write) {
                watch.watchedFiles.insert("guard " + key)
            }
        }
        return lookNow
    }

    /// Seconds between waiting lines: on a terminal a line goes out only when it changed,
    /// looked at every second; off one, every `logInterval`.
    func statusEvery(_ watch: Watch) -> Int64 { Int64((watch.isTerminal ? 1 : logInterval) * 1e9) }

    /// Tells the person (or the log) what we wait for, as this waiter's own line. Several
    /// waiters may share one terminal, so none redraws a line: on a terminal each prints a
    /// whole line, fitted to the width, when what it waits for changes; off one, every
    /// `logInterval` seconds with the time waited. A line stderr cannot take now is dropped,
    /// never waited for: the next says it.
    func sayWhatWeWaitFor(_ request: AcquireRequest, live: [Claim], ahead: [QueueEntry], position: Int, total: Int,
                          memoryShort: Int64?, _ watch: inout Watch) {
        let now = Clock.monotonicNanoseconds()
        guard !reporter.quiet, watch.lastStatus == 0 || now - watch.lastStatus >= statusEvery(watch) else { return }
        let line = memoryShort.map { "\(reporter.toolName): '\(request.command)' waiting for memory: \(memoryText($0, request))" }
            ?? statusLine(command: request.command, live: live, ahead: ahead, position: position, total: total, elapsed: !watch.isTerminal)
        if !watch.isTerminal {
            reporter.writeReplaceable(line + "\n")
        } else if line != watch.lastLine, reporter.writeReplaceable(Self.fitted(line, columns: FileDescriptor.standardError.terminalColumns) + "\n") {
            watch.lastLine = line
        }
        watch.lastStatus = now
    }

    /// Sleeps on the kernel until a signal, a watched process's exit, a watched lock's
    /// release, the caller's deadline, an unsupervised holder's deadline, the next waiting
    /// line or the next safety look. `pollsOften`: what we wait for sends no event (memory
    /// recovering, our stderr taking writes again), so look every half second.
    func sleepUntilSomethingChanges(far: Bool, deadline: Int64?, nextDeadline: WallTime?, pollsOften: Bool, _ watch: inout Watch) -> Wake {
        let now = Clock.monotonicNanoseconds()
        var timeout = safetyNanos(far: far) - (now - watch.lastFull)
        if !reporter.quiet { timeout = min(timeout, statusEvery(watch) - (now - watch.lastStatus)) }
        if let deadline { timeout = min(timeout, deadline - now) }
        if let nextDeadline { timeout = min(timeout, Int64((nextDeadline.asDouble - Clock.wallTime().asDouble) * 1e9) + 1_000_000) }
        if pollsOften { timeout = min(timeout, 500_000_000) }
        let order = Array(watch.pidfds.keys)
        let fds = [signals.descriptor, watch.notify.read] + order.map { watch.pidfds[$0]!.fd }
        var waiterGone = false
        var holderMoved = false
        for index in Poll.readable(fds, timeoutMilliseconds: Int32(clamping: max(0, timeout) / 1_000_000 + 1)) {
            switch index {
            case 0:
                for received in signals.drain() where [.interrupt, .terminate, .hangup, .quit].contains(received.signal) {
                    return .signal(received)
                }
            case 1:
                _ = try? watch.notify.read.read(upTo: 256)
                holderMoved = true
            default:
                if let watched = watch.pidfds.removeValue(forKey: order[index - 2]) {
                    watched.fd.close()
                    if watched.isWaiter { waiterGone = true } else { holderMoved = true }
                }
            }
        }
        if let deadline, Clock.monotonicNanoseconds() >= deadline { return .deadline }
        return .woke(waiterGone: waiterGone, holderMoved: holderMoved)
    }

    func safetyNanos(far: Bool) -> Int64 { Int64((far ? max(safetyInterval, 30) : safetyInterval) * 1e9) }

    /// The net under the kernel's wake-ups: whether to look at the queue although no event
    /// said so. Always when polling; else once the safety interval is up, and then only if
    /// the queue file changed or we are near the head (the next may be stopped).
    func safetyLookIsDue(far: Bool, pollsOften: Bool, ahead: [QueueEntry], slots: Int, effective: Int, _ watch: inout Watch) -> Bool {
        if pollsOften { return true }
        let now = Clock.monotonicNanoseconds()
        guard now - watch.lastFull >= safetyNanos(far: far) else { return false }
        if queueStamp() != watch.lastStamp || effective <= slots || ahead.prefix(slots).contains(where: WaitQueue.isPassed) { return true }
        watch.lastFull = now
        return false
    }

    /// Who ended our wait, for its line. From the front, a signal is passed on: a --kill-all
    /// since we queued (it signals the front and this process alike) is named from its mark;
    /// any other sender is the caller's own business.
    func sender(of received: ReceivedSignal, me: ProcessIdentity, queuedAt: WallTime?) -> String {
        if received.senderPid > 0 && received.senderPid != me.pid {
            return " from pid \(received.senderPid)\(Processes.commandLine(received.senderPid).map { " ('\(GuardedCommand.displayCommand($0))')" } ?? "")"
        }
        if let mark = KillAllMark.read(in: directory), let queuedAt, mark.at >= queuedAt {
            return " from pid \(mark.pid) ('\(mark.command)')"
        }
        return ""
    }
}
