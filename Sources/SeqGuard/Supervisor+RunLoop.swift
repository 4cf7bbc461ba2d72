import SeqSystem

extension Supervisor {
    /// One supervised command from its start to its end: a poll loop over the deadlines
    /// (time limit, stop grace, tick, output cap, memory samples) and the signals, each look
    /// a named phase. A class, because the tree's reaping reports into `status` while the
    /// tree is being ended: two stored properties of one object, not one inout value.
    final class RunLoop {
        let supervisor: Supervisor
        let child: ProcessIdentity
        let display: String
        let started: Int64
        var reporter: Reporter { supervisor.reporter }

        var result: SupervisedRun
        var status: TerminationStatus?
        var tree: ProcessTree
        var monitor: MemoryMonitor?
        let deadline: Int64?
        /// Memory is first sampled (and the OOM count read) this long after the start.
        let firstLook: Int64
        var nextSample: Int64
        var oomBaselineDue = true
        var warned = false
        /// With --memory-action largest: processes already ended, left out of later samples.
        var victims = Set<ProcessIdentity>()
        var commandEndedForMemory = false
        var stopDeadline: Int64?
        var nextTick: Int64?
        var nextOutputCheck: Int64
        var released: Int64 = 0
        var outputSeen: Int64 = 0
        /// The cgroup's usage crossed the limit: its charge is looked at every 50 ms until it
        /// is back under (page cache counts in the usage and is reclaimed, not the tree's).
        var kernelNear = false
        var nextKernelLook = Int64.max
        /// The kernel enforces the memory limit: the /proc samples only warn at half of it.
        var kernelEnforced: Bool { supervisor.cgroup?.limits.memoryBytes != nil }

        init(_ supervisor: Supervisor, child: ProcessIdentity, display: String, started: Int64) {
            self.supervisor = supervisor
            self.child = child
            self.display = display
            self.started = started
            result = SupervisedRun(ending: .timedOut, child: child)
            tree = ProcessTree(signals: supervisor.signals, spared: supervisor.spared)
            if let cgroup = supervisor.cgroup { tree.cgroupMembers = cgroup.processes }
            monitor = supervisor.memory.map { policy in
                var monitor = MemoryMonitor(policy: policy)
                monitor.spared = supervisor.spared
                return monitor
            }
            deadline = supervisor.timeout.map { started + Int64($0 * 1e9) }
            firstLook = started + Int64(MemoryMonitor.startupDelay * 1e9)
            nextSample = firstLook
            nextTick = supervisor.tick.map { started + Int64($0.interval * 1e9) }
            nextOutputCheck = started + 50_000_000
            if supervisor.cgroup?.limits.memoryBytes != nil {
                result.enforcement = "kernel"
            } else if supervisor.memory != nil {
                result.enforcement = "sampled"
            }
        }

        /// The reaping callback: the command's own status, when it is the one reaped.
        func record(_ reaped: Int32, _ ending: TerminationStatus) {
            if reaped == child.pid { status = ending }
        }

        func run() -> SupervisedRun {
            while status == nil {
                _ = tree.reapEnded(record)
                if status != nil { break }
                let now = Clock.monotonicNanoseconds()
                if let ended = lookAtDeadlines(now) { return ended }
                lookAtOutput(now)
                if oomBaselineDue && firstLook <= now {
                    result.oomKillsAtStart = SystemMemory.oomKillCount()
                    oomBaselineDue = false
                }
                if let ended = lookAtMemory(now) { return ended }
                if let ended = lookAtKernelMemory(now) { return ended }
                victims = victims.filter(\.isAlive)
                if let ended = waitForTheNextLook() { return ended }
            }
            return afterTheCommand()
        }

        func finished() -> SupervisedRun {
            result.runNanoseconds = Clock.monotonicNanoseconds() - started
            // The kernel's count is exact (a page shared by many processes once): it is the peak.
            if let peak = supervisor.cgroup?.memoryPeak, kernelEnforced { result.peakTreeBytes = peak }
            if let monitor, monitor.samplesTaken > 0 { result.peakSharedFileBytes = monitor.peakSharedFiles }
            return result
        }

        /// Ends the whole tree (SIGTERM, `grace`, SIGKILL) with `ending`, after saying why.
        func endTree(_ ending: RunEnding, grace: Double, saying say: () -> Void) -> SupervisedRun {
            result.peakTreeBytes = monitor?.peak
            say()
            tree.end(.graceful(grace), onReap: record)
            result.ending = ending
            return finished()
        }

        /// The run serves no one any more (`cancelled` or `abandoned` is set): its tree is
        /// ended at once, after `cancelGrace`.
        func endNow(_ notice: String) -> SupervisedRun {
            endTree(.stopped, grace: supervisor.cancelGrace) { reporter.notice(notice) }
        }

        /// The time limit, the stop grace and the tick.
        func lookAtDeadlines(_ now: Int64) -> SupervisedRun? {
            if let deadline, deadline <= now {
                return endTree(.timedOut, grace: supervisor.killGrace) {
                    reporter.error("timed out after \(formatDuration(supervisor.timeout ?? 0)): '\(display)'; ending its process tree")
                }
            }
            if let stopDeadline, stopDeadline <= now {
                return endTree(.stopped, grace: supervisor.killGrace) {
                    reporter.notice("stop asked for: ending '\(display)' after its \(formatDuration(supervisor.stopGrace ?? 0)) grace")
                }
            }
            if let tick = supervisor.tick, let due = nextTick, due <= now {
                if !tick.action() {
                    result.abandoned = true
                    return endNow("'\(display)' serves no one any more: ending it now")
                }
                nextTick = Clock.monotonicNanoseconds() + Int64(tick.interval * 1e9)
            }
            return nil
        }

        /// Gives back to the disk what the output file holds beyond its cap.
        func lookAtOutput(_ now: Int64) {
            guard let cap = supervisor.outputCap, let output = supervisor.output, nextOutputCheck <= now else { return }
            let size = (try? output.status().size) ?? 0
            released = Supervisor.capOutput(output, size: size, cap: cap, released: released)
            // A command printing fast (a quarter of the cap since the last look) is looked at
            // every 50 ms until it slows down. (Looking more often made it worse: each hole
            // punched writes the range back first, and the writer runs on meanwhile.)
            nextOutputCheck = now + (size - outputSeen > cap / 4 ? 50_000_000 : 500_000_000)
            outputSeen = size
        }

        /// A memory sample when one is due: past the limit the tree (or its largest process)
        /// is ended; past half of it, one warning.
        func lookAtMemory(_ now: Int64) -> SupervisedRun? {
            guard var sampler = monitor, nextSample <= now else { return nil }
            let (usage, delay) = sampler.sampleAndSchedule(excluding: victims)
            monitor = sampler
            nextSample = now + Int64(delay * 1e9)
            let limit = sampler.policy.limitBytes
            let biggest = usage.biggest.map { "; biggest \($0.description)" } ?? ""
            guard usage.total >= limit, !kernelEnforced else {
                if !warned && usage.total * 2 >= limit {
                    warned = true
                    reporter.warning("memory: '\(display)' uses \(formatMegabytes(usage.total)) (\(sampler.policy.metric.rawValue)), over half its \(formatMegabytes(limit)) limit\(biggest)")
                }
                return nil
            }
            let measure = "\(formatMegabytes(usage.total)) \(sampler.policy.metric.rawValue) over \(usage.processes.count) process\(usage.processes.count == 1 ? "" : "es")"
            switch sampler.policy.action {
            case .tree:
                reporter.error("memory limit \(formatMegabytes(limit)) reached by '\(display)': \(measure), peak \(formatMegabytes(sampler.peak))\(biggest); ending its process tree (exit 137)")
                // The grace is for cleaning up, not for growing: a tree that keeps growing
                // past the limit meanwhile gets SIGKILL at once.
                var watcher = sampler
                tree.end(.graceful(supervisor.killGrace), escalate: {
                    watcher.sample().total > limit + limit / 10
                }, onReap: record)
                result.ending = .memoryExceeded
                result.peakTreeBytes = max(sampler.peak, watcher.peak)
                return finished()
            case .largest:
                guard let victim = usage.biggest else { return nil }
                reporter.error("memory limit \(formatMegabytes(limit)) reached by '\(display)': \(measure); ending its largest process, pid \(victim.identity.pid) '\(victim.command)' \(formatMegabytes(victim.bytes))")
                // The rest of the tree runs on; this one process gets the grace.
                let report = Teardown.graceful(supervisor.killGrace).run(
                    find: { _ in victim.identity.isAlive ? [Teardown.Target(victim.identity, command: victim.command)] : [] },
                    reap: { _ = tree.reapEnded(record) })
                if !report.ended.isEmpty {
                    victims.insert(victim.identity)
                    result.memoryVictims += 1
                    if victim.identity == child { commandEndedForMemory = true }
                }
                return nil
            }
        }

        /// Sleeps until the next deadline, a signal or the cancel descriptor: signals are
        /// forwarded to the command, or start the stop grace when one is set.
        func waitForTheNextLook() -> SupervisedRun? {
            let now = Clock.monotonicNanoseconds()
            var wake = deadline ?? Int64.max
            if monitor != nil { wake = min(wake, nextSample) }
            if let stopDeadline { wake = min(wake, stopDeadline) }
            if let nextTick { wake = min(wake, nextTick) }
            if supervisor.outputCap != nil && supervisor.output != nil { wake = min(wake, nextOutputCheck) }
            if oomBaselineDue { wake = min(wake, firstLook) }
            if kernelNear { wake = min(wake, nextKernelLook) }
            let wait: Int32 = wake == Int64.max ? -1 : Int32(clamping: max(0, wake - now) / 1_000_000 + 1)
            let signals = supervisor.signals
            let alarm = supervisor.cgroup?.alarm
            let ready = Poll.readable([signals.descriptor] + (supervisor.cancel.map { [$0] } ?? []) + (alarm.map { [$0.descriptor] } ?? []),
                                      timeoutMilliseconds: wait)
            if let alarm, ready.contains(supervisor.cancel == nil ? 1 : 2), alarm.take() {
                kernelNear = true
                nextKernelLook = 0
            }
            if supervisor.cancel != nil, ready.contains(1) {
                result.cancelled = true
                return endNow(supervisor.cancelNotice?() ?? "the process this run serves is gone: ending '\(display)' now")
            }
            guard ready.contains(0) else { return nil }
            for received in signals.drain() where received.signal != .child {
                if let stopGrace = supervisor.stopGrace, [.interrupt, .terminate, .hangup].contains(received.signal) {
                    result.stopRequested = true
                    if stopDeadline == nil {
                        stopDeadline = Clock.monotonicNanoseconds() + Int64(stopGrace * 1e9)
                        reporter.step("\(received.signal.name): letting '\(display)' finish within \(formatDuration(stopGrace))")
                    }
                    continue
                }
                // A terminal's Ctrl-C already reached the command, which shares our process group.
                if received.cameFromTerminal { continue }
                reporter.step("forwarding \(received.signal.name) to pid \(child.pid)")
                Processes.signalChild(child.pid, received.signal)
            }
            return nil
        }

        /// The cgroup's charge, once its usage crossed the limit: what the tree holds (its
        /// processes' memory, its tmpfs files, swap), not the page cache the kernel reclaims.
        func lookAtKernelMemory(_ now: Int64) -> SupervisedRun? {
            guard kernelNear, nextKernelLook <= now, let cgroup = supervisor.cgroup, let limit = cgroup.limits.memoryBytes else { return nil }
            // The kernel ended a process at the ceiling first (a tree growing faster than a
            // wake-up): the rest of the tree goes now, as at the limit.
            if let line = kernelKills(cgroup, endingTheRest: true) {
                commandEndedForMemory = true
                return endTree(.memoryExceeded, grace: supervisor.killGrace) { reporter.error(line) }
            }
            let charged = cgroup.memoryCharged ?? 0
            if charged >= limit {
                let biggest = cgroup.biggestProcess().map { "; biggest \($0.description)" } ?? ""
                return endTree(.memoryExceeded, grace: supervisor.killGrace) {
                    reporter.error("memory limit \(formatMegabytes(limit)) reached by '\(display)': \(formatMegabytes(charged)) charged to its cgroup (processes, tmpfs files, swap; counted by the kernel), peak \(formatMegabytes(cgroup.memoryPeak ?? charged))\(biggest); ending its process tree (exit 137)")
                }
            }
            kernelNear = (cgroup.memoryUsage ?? 0) >= limit
            nextKernelLook = now + 50_000_000
            return nil
        }

        /// The line for processes of the run the kernel ended at a memory ceiling (the run's
        /// own, or its pool's, shared by the pool's runs); nil when it ended none.
        func kernelKills(_ cgroup: RunCgroup, endingTheRest: Bool) -> String? {
            let count = cgroup.oomKills
            guard count > 0 else { return nil }
            let kills = "\(count) process\(count == 1 ? "" : "es")"
            let end = endingTheRest ? "; ending the rest of its tree (exit 137)" : " (exit 137)"
            if let pool = cgroup.pool, let limit = pool.memoryBytes, !cgroup.ownCeilingReached {
                return "pool '\(pool.name)' reached its memory limit \(formatMegabytes(limit)), shared by all its runs: the kernel ended \(kills) of '\(display)'\(end)"
            }
            guard let limit = cgroup.limits.memoryBytes else { return nil }
            return "memory limit \(formatMegabytes(limit)) reached by '\(display)': the kernel ended \(kills) of it at its cgroup's ceiling \(formatMegabytes(RunCgroup.ceiling(limit))), peak \(formatMegabytes(cgroup.memoryPeak ?? limit))\(end)"
        }

        /// The command is gone; anything it left behind is still ours to end.
        func afterTheCommand() -> SupervisedRun {
            result.peakTreeBytes = monitor?.peak
            if let cgroup = supervisor.cgroup, let line = kernelKills(cgroup, endingTheRest: false) {
                commandEndedForMemory = true
                reporter.error(line)
            }
            result.ending = commandEndedForMemory ? .memoryExceeded : status.map(RunEnding.exited) ?? .timedOut
            if !tree.reapEnded({ _, _ in }) {
                if let spareAtEnd = supervisor.spareAtEnd { tree.spared.formUnion(spareAtEnd()) }
                let leftovers = tree.descendants()
                if !leftovers.isEmpty {
                    reporter.notice("ending \(leftovers.count) leftover process\(leftovers.count == 1 ? "" : "es") of '\(display)'")
                }
                tree.end(.graceful(supervisor.killGrace), onReap: { _, _ in })
            }
            return finished()
        }
    }

    /// Gives back the blocks of `output` before its last `cap / 2` bytes once it holds more
    /// than `cap` (whole 64 KiB pieces); returns where the released range now ends. A
    /// filesystem without holes keeps the file whole.
    static func capOutput(_ output: FileDescriptor, size: Int64, cap: Int64, released: Int64) -> Int64 {
        guard size - released > cap else { return released }
        let upTo = (size - cap / 2) / 65536 * 65536
        guard upTo > released, (try? output.releaseRange(offset: released, length: upTo - released)) != nil else { return released }
        return upTo
    }
}
