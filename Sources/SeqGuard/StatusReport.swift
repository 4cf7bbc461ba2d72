import SeqSystem

/// What `--status` shows: who holds the project, who waits, and what is stale. Read-only.
public struct StatusReport {
    public var project: Project
    public var statePath: String
    public var claims: [Claim]
    public var queue: QueueSnapshot
    public var now: WallTime
    /// The queue's lines whose waiter still waits (the kernel's word, read with the queue).
    public var liveWaiters: Set<ProcessIdentity> = []

    /// Reads the state under the mutex, changing nothing.
    public static func read(_ configuration: GuardConfiguration) throws(GuardFailure) -> StatusReport {
        let (project, directory) = try configuration.openState()
        defer { directory.close() }
        return try read(project: project, directory: directory)
    }

    /// Reads one lane's state under its mutex, changing nothing.
    public static func read(project: Project, directory: StateDirectory) throws(GuardFailure) -> StatusReport {
        let waitQueue = WaitQueue(directory: directory)
        let (claims, queue, live) = try directory.withMutex { () throws(GuardFailure) in
            let queue = try waitQueue.read()
            return (try ProjectLock(directory: directory).inspect(), queue, Set(queue.entries.filter { waitQueue.isLive($0) }.map(\.process)))
        }
        var report = StatusReport(project: project, statePath: directory.path, claims: claims, queue: queue, now: Clock.wallTime())
        report.liveWaiters = live
        return report
    }

    /// Why a waiter waits: for memory (its own admission), for a slot (first in line: every
    /// slot held), in the queue behind the waiter ahead, or for the machine-wide lock.
    public struct Reason {
        public var kind: String
        public var fields: [(String, JSON.Value)]
        public var text: String
    }

    /// A holder waiting out another git operation before its command starts: the lock file
    /// and the git process, from its record.
    static func gitWait(_ record: OwnerRecord) -> (pid: Int32, lock: String)? {
        guard let waiting = record.waitingFor, waiting.hasPrefix("git:") else { return nil }
        let parts = waiting.dropFirst(4).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        return (Int32(parts.first ?? "") ?? 0, parts.count > 1 ? String(parts[1]) : "")
    }

    public func reason(of entry: QueueEntry, at index: Int, in ordered: [QueueEntry]) -> Reason {
        if let why = entry.extra.first(where: { $0.hasPrefix("why=memory-") }) {
            let numbers = why.dropFirst("why=memory-".count).split(separator: "-").compactMap { Int64($0) }
            let (available, needed) = (numbers.first ?? 0, numbers.dropFirst().first ?? 0)
            return Reason(kind: "memory", fields: [("available_mb", .integer(available)), ("needed_mb", .integer(needed))],
                          text: "for memory: \(available) MB available, \(needed) MB needed (--min-available)")
        }
        if WaitQueue.isBlocked(entry) {
            return Reason(kind: "output", fields: [], text: "for its stderr to take writes again (its turn passes to those behind meanwhile)")
        }
        let holders = claims.filter(\.isLive).compactMap(\.record)
        let named = holders.map { "pid \($0.holder.pid) '\($0.command)'" }.joined(separator: ", ")
        let holderFields: JSON.Value = .array(holders.map { .object([("pid", .integer(Int64($0.holder.pid))), ("command", .string($0.command))]) })
        if index == 0 {
            if project == .machine {
                return Reason(kind: "machine", fields: [("holders", holderFields)], text: "for the machine-wide lock, held by \(named.isEmpty ? "nobody now" : named)")
            }
            return Reason(kind: "slots", fields: [("holders", holderFields)],
                          text: holders.isEmpty ? "for its turn (the lock is free now)" : "for a slot, every one held: \(named)")
        }
        let ahead = ordered[index - 1]
        return Reason(kind: "queue", fields: [("position", .integer(Int64(index + 1))),
                                             ("behind", .object([("pid", .integer(Int64(ahead.process.pid))), ("command", .string(ahead.command))]))],
                      text: "behind pid \(ahead.process.pid) '\(ahead.command)'")
    }

    public var text: String {
        var lines = [
            "project:  \(project.root)",
            "hash:     \(project.hash)",
            "state:    \(statePath)",
        ]
        if claims.isEmpty { lines.append("holder:   none (free)") }
        for claim in claims {
            let slot = claim.slot == 0 ? "" : " [slot \(claim.slot)]"
            guard let record = claim.record else {
                lines.append("holder:   \(claim.isLive ? "live" : "STALE"), \(claim.problem ?? "no record")\(slot)")
                continue
            }
            let elapsed = formatDuration(record.since.seconds(until: now), wholeSeconds: true)
            let child = record.child.map { ", command pid \($0.pid)" } ?? ""
            var flags = claim.isLive ? "" : " STALE: holder and its tree are gone"
            if claim.isLive, !record.pidsAreOurs {
                // Its pids are another pid namespace's: the kernel's flocks say how it is.
                flags = " (pids of another pid namespace\(claim.isGuarded ? ", supervised" : ""))"
                if claim.isUnsupervised {
                    flags += " SUPERVISOR GONE: its command runs unsupervised, holding the lock"
                }
            } else if claim.isLive, !record.holder.isAlive {
                if let supervisor = record.supervisor, supervisor.isAlive {
                    flags = " SEQEXEC GONE: its supervisor pid \(supervisor.pid) runs the command on and keeps the lock"
                } else {
                    let deadline = record.deadline.map { "; its deadline \(Clock.localClockTime($0)) still holds" } ?? "; no deadline (no --timeout)"
                    flags = " SEQEXEC GONE: its command runs unsupervised (seqexec and supervisor killed), holding the lock\(deadline)"
                }
            }
            if record.pidsAreOurs, let stopped = [record.supervisor, record.child].compactMap({ $0 }).first(where: { (try? ProcStat.read($0.pid))?.state == "T" }) {
                flags += " STOPPED: pid \(stopped.pid) is stopped (SIGSTOP); 'kill -CONT \(stopped.pid)' resumes it"
            }
            if record.child == nil, let git = Self.gitWait(record) {
                flags += ", waiting for git: \(git.lock.isEmpty ? "" : "\(git.lock) ")\(git.pid > 0 ? "held by pid \(git.pid)" : "")"
            }
            let memory = record.enforcement == "kernel" ? ", memory limit kept by the kernel" : ""
            lines.append("holder:   pid \(record.holder.pid)\(child), '\(record.command)', since \(Clock.localClockTime(record.since)) (\(elapsed))\(slot)\(memory)\(flags)")
        }
        let ordered = queue.ordered
        lines.append("queue:    \(ordered.isEmpty ? "empty" : "\(ordered.count) waiting")")
        for (index, entry) in ordered.enumerated() {
            let waited = formatDuration(entry.queuedAt.seconds(until: now), wholeSeconds: true)
            let priority = entry.priority == .normal ? "" : " [\(entry.priority.rawValue)]"
            var stale = liveWaiters.contains(entry.process) ? "" : " STALE: process gone"
            if stale.isEmpty && WaitQueue.isStopped(entry) {
                stale = " STOPPED: keeps its place, the line moves past it until it is continued ('kill -CONT \(entry.process.pid)')"
            } else if stale.isEmpty && WaitQueue.isBlocked(entry) {
                stale = " BLOCKED: its stderr takes nothing (a full pipe, or a terminal stopped with Ctrl-S, which Ctrl-Q resumes); keeps its place"
            }
            lines.append("  \(index + 1). pid \(entry.process.pid), '\(entry.command)', waiting \(waited)\(priority)\(stale), \(reason(of: entry, at: index, in: ordered).text)")
        }
        for line in queue.rejectedLines { lines.append("  malformed queue line: '\(line)'") }
        return lines.joined(separator: "\n") + "\n"
    }

    public var json: String {
        let holders: [JSON.Value] = claims.map { claim in
            var fields: [(String, JSON.Value)] = [("lock", .string(claim.name)), ("slot", .integer(Int64(claim.slot))), ("live", .bool(claim.isLive))]
            if let record = claim.record {
                fields += [
                    ("pid", .integer(Int64(record.holder.pid))),
                    ("command_pid", record.child.map { .integer(Int64($0.pid)) } ?? .null),
                    ("supervisor_pid", record.supervisor.map { .integer(Int64($0.pid)) } ?? .null),
                    ("holder_alive", record.pidsAreOurs ? .bool(record.holder.isAlive) : .null),
                    ("other_pid_namespace", .bool(!record.pidsAreOurs)),
                    ("unsupervised", .bool(claim.isUnsupervised)),
                    ("deadline", record.deadline.map { .string(Clock.isoUTC($0)) } ?? .null),
                    ("reason", record.child == nil ? Self.gitWait(record).map { git in
                        .object([("kind", .string("git")), ("lock", git.lock.isEmpty ? .null : .string(git.lock)), ("pid", git.pid > 0 ? .integer(Int64(git.pid)) : .null)])
                    } ?? .null : .null),
                    ("stopped", .bool(record.pidsAreOurs && [record.supervisor, record.child].compactMap { $0 }.contains { (try? ProcStat.read($0.pid))?.state == "T" })),
                    ("command", .string(record.command)),
                    ("memory_enforcement", record.enforcement.map { .string($0) } ?? .null),
                    ("host", .string(record.host)),
                    ("since", .string(Clock.isoUTC(record.since))),
                    ("elapsed_seconds", .number(max(0, record.since.seconds(until: now)))),
                ]
            }
            fields.append(("problem", claim.problem.map { .string($0) } ?? .null))
            return .object(fields)
        }
        let ordered = queue.ordered
        let waiters: [JSON.Value] = ordered.enumerated().map { index, entry in
            let why = reason(of: entry, at: index, in: ordered)
            return .object([
                ("position", .integer(Int64(index + 1))),
                ("pid", .integer(Int64(entry.process.pid))),
                ("command", .string(entry.command)),
                ("priority", .string(entry.priority.rawValue)),
                ("queued_at", .string(Clock.isoUTC(entry.queuedAt))),
                ("waited_seconds", .number(max(0, entry.queuedAt.seconds(until: now)))),
                ("stale", .bool(!liveWaiters.contains(entry.process))),
                ("stopped", .bool(WaitQueue.isStopped(entry))),
                ("blocked", .bool(WaitQueue.isBlocked(entry))),
                ("reason", .object([("kind", .string(why.kind))] + why.fields)),
            ])
        }
        return JSON.encode(.object([
            ("project", .string(project.root)),
            ("hash", .string(project.hash)),
            ("state_dir", .string(statePath)),
            ("holders", .array(holders)),
            ("queue", .array(waiters)),
            ("malformed_queue_lines", .array(queue.rejectedLines.map { .string($0) })),
        ])) + "\n"
    }
}

extension StatusReport {
    /// `seqexec --status`: prints the project's report (text, or JSON) and returns the exit
    /// status. An unsupervised holder past its deadline is ended first (and said so on stderr).
    @available(*, noasync)
    public static func show(_ configuration: GuardConfiguration, json: Bool) -> Int32 {
        if configuration.store != nil { return SharedLockReport.show(configuration, json: json) }
        do {
            var report = try read(configuration)
            if !ProjectLock.endOverdue(report.claims, killGrace: configuration.killGrace, reporter: configuration.reporter).isEmpty {
                report = try read(configuration)
            }
            print(json ? report.json : report.text, terminator: "")
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }

    /// `make-seq --status`: the make lock's report and the executor lock's, one after the
    /// other, or one JSON object with both.
    public static func showMakeAndExecutor(_ configuration: GuardConfiguration, json: Bool) -> Int32 {
        if configuration.store != nil { return SharedLockReport.show(configuration, json: json) }
        do {
            var reports: [(String, StatusReport)] = []
            for (project, namespace) in try configuration.lockPlan() {
                let directory = try StateDirectory.open(project: project, base: configuration.stateBase, namespace: namespace)
                defer { directory.close() }
                reports.append((namespace == .make ? "make_lock" : "executor_lock", try read(project: project, directory: directory)))
            }
            if json {
                print("{" + reports.map { "\"\($0.0)\":" + $0.1.json.dropLast() }.joined(separator: ",") + "}")
            } else {
                print(reports.map { "\($0.0 == "make_lock" ? "make lock" : "executor lock"):\n" + $0.1.text }.joined(separator: "\n"), terminator: "")
            }
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }
}
