import SeqDatabase
import SeqSystem

/// `--status` and `--kill-all` for a shared lock (`--lock NAME --store URL`): what the
/// database says, for every host.
public enum SharedLockReport {
    /// Opens the lock named by the configuration.
    static func open(_ configuration: GuardConfiguration) throws(GuardFailure) -> SharedLock {
        try configuration.refuseTwoLanes()
        let name = configuration.lockName ?? ""
        _ = try Project.named(name)
        do {
            return try SharedLock(name: name, url: configuration.store ?? "", host: configuration.hostName ?? Processes.hostName(),
                                  lease: configuration.lease)
        } catch {
            throw GuardFailure("cannot read the shared lock '\(name)': \(error.message)", cause: error)
        }
    }

    /// Prints the holders and the line (text or JSON); returns the exit status.
    public static func show(_ configuration: GuardConfiguration, json: Bool) -> Int32 {
        do {
            let lock = try open(configuration)
            let (runs, now) = try read(lock)
            print(json ? self.json(lock, runs: runs, now: now) : text(lock, runs: runs, now: now), terminator: "")
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }

    static func read(_ lock: SharedLock) throws(GuardFailure) -> ([SharedLock.Run], Double) {
        do { return (try lock.runs(), try lock.clock()) } catch {
            throw GuardFailure("cannot read the shared lock '\(lock.name)': \(error.message)", cause: error)
        }
    }

    static func text(_ lock: SharedLock, runs: [SharedLock.Run], now: Double) -> String {
        var lines = ["lock:     \(lock.name) (shared, in \(lock.connection.name))"]
        let holders = runs.filter { $0.holdingSince != nil }
        if holders.isEmpty { lines.append("holder:   none") }
        for run in holders {
            let since = run.holdingSince ?? now
            let ending = run.ended.map { " ENDING: \($0.0.rawValue) by \($0.by)" } ?? ""
            lines.append("holder:   \(run.who), since \(iso(since)) (\(formatDuration(now - since, wholeSeconds: true))), fence \(run.fence ?? 0), lease \(formatDuration(max(0, run.leaseUntil - now))) left\(ending)")
        }
        let waiting = runs.filter { $0.holdingSince == nil && $0.ended == nil }
        lines.append("queue:    \(waiting.isEmpty ? "empty" : "\(waiting.count) waiting")")
        for (index, run) in waiting.enumerated() {
            lines.append("  \(index + 1). \(run.who), waiting \(formatDuration(now - run.arrivedAt, wholeSeconds: true))\(priorityText(run)), run \(run.id)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func json(_ lock: SharedLock, runs: [SharedLock.Run], now: Double) -> String {
        func fields(_ run: SharedLock.Run) -> [(String, JSON.Value)] {
            [("run", .integer(run.id)), ("host", .string(run.host)), ("pid", .integer(Int64(run.pid))), ("command", .string(run.command)),
             ("priority", .string(run.priority.rawValue)),
             ("arrived_at", .string(iso(run.arrivedAt))), ("lease_until", .string(iso(run.leaseUntil))),
             ("lease_seconds_left", .number(max(0, run.leaseUntil - now)))]
        }
        let holders: [JSON.Value] = runs.filter { $0.holdingSince != nil }.map { run in
            .object(fields(run) + [("since", .string(iso(run.holdingSince ?? now))), ("fence", .integer(run.fence ?? 0)),
                                   ("ending", run.ended.map { .string($0.0.rawValue) } ?? .null), ("ended_by", run.ended.map { .string($0.by) } ?? .null)])
        }
        let waiting: [JSON.Value] = runs.filter { $0.holdingSince == nil && $0.ended == nil }.enumerated().map { index, run in
            .object([("position", .integer(Int64(index + 1)))] + fields(run) + [("waited_seconds", .number(max(0, now - run.arrivedAt)))])
        }
        return JSON.encode(.object([
            ("lock", .string(lock.name)), ("store", .string(lock.connection.name)), ("shared", .bool(true)),
            ("holders", .array(holders)), ("queue", .array(waiting)),
        ])) + "\n"
    }

    static func priorityText(_ run: SharedLock.Run) -> String {
        run.priority == .normal ? "" : " [\(run.priority.rawValue)]"
    }

    static func iso(_ seconds: Double) -> String { Moment(seconds: seconds).iso }

    /// The farm-wide emergency stop: every run of the lock is revoked; each holder's
    /// supervisor, on whatever host, ends its tree at its next renewal (a third of its lease),
    /// each waiter leaves at its next look. Waits until the holders' rows are gone (their
    /// trees ended), at most a lease and a half. Returns the exit status.
    public static func killAll(_ configuration: GuardConfiguration) -> Int32 {
        let tool = configuration.toolName
        do throws(GuardFailure) {
            let lock = try open(configuration)
            let me = "kill-all from host \(lock.host) pid \(Processes.currentPid)"
            let revoked: [SharedLock.Run]
            do { revoked = try lock.revokeAll(by: me) } catch {
                throw GuardFailure("cannot revoke the shared lock '\(lock.name)': \(error.message)", cause: error)
            }
            if revoked.isEmpty { print("\(tool): nothing to end") }
            let holders = Set(revoked.filter { $0.holdingSince != nil }.map(\.id))
            let limit = Clock.monotonicNanoseconds() + Int64(configuration.lease * 1.5e9)
            var left = holders
            while !left.isEmpty, Clock.monotonicNanoseconds() < limit {
                _ = Poll.readable([], timeoutMilliseconds: 100)
                if let runs = try? lock.runs() { left = holders.intersection(runs.map(\.id)) }
            }
            for run in revoked {
                let role = run.holdingSince == nil ? "waiter" : left.contains(run.id) ? "holder (still ending)" : "holder"
                print("\(tool): ended \(role) \(run.who)\(run.holdingSince == nil ? " (never started)" : "")")
            }
            return left.isEmpty ? 0 : ExitCode.toolFailure
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }
}
