import SeqSystem

/// One finished (or abandoned) guarded run: a line of `<state>/history.jsonl`.
public struct HistoryRecord: Sendable {
    /// How a run ended: `exit` (the command's own status), `signal` (it died of one),
    /// `timeout`, `memory` (this monitor), `killed` (SIGKILL from outside), `oom` (the
    /// kernel's OOM killer), `gave_up` and `interrupted` (while waiting), `not_started`.
    public enum Ending: String, Sendable {
        case exit, signal, timeout, memory, killed, oom
        case gaveUp = "gave_up", interrupted, notStarted = "not_started", replaced
        /// A shared lock's lease could not be kept: the tree was ended before it ran out.
        case leaseLost = "lease_lost"
        /// Its seqexec and supervisor were killed: whoever cleared its claim recorded it.
        case holderKilled = "holder_killed"
    }

    public var command: String
    public var pid: Int32
    public var childPid: Int32?
    public var project: String
    public var queuedAt: WallTime
    public var waitMilliseconds: Int64
    public var runMilliseconds: Int64?
    public var exitStatus: Int32
    public var ended: Ending
    public var signal: String?
    /// The largest tree total the monitor saw, by `metric`; nil with the monitor off.
    public var peakTreeBytes: Int64?
    /// Who enforced the memory limit: "kernel" (a cgroup) or "sampled" (/proc).
    public var enforcement: String?
    /// Of it: the most held at once in tmpfs files and memfds the tree had open.
    public var peakSharedFileBytes: Int64?
    public var metric: MemoryMetric?
    public var memoryLimitMegabytes: Int?
    /// The peak RSS of the largest single process of the tree (getrusage), always known.
    public var largestProcessBytes: Int64?

    public init(command: String, pid: Int32, project: String, queuedAt: WallTime, waitMilliseconds: Int64, exitStatus: Int32, ended: Ending) {
        self.command = command
        self.pid = pid
        self.project = project
        self.queuedAt = queuedAt
        self.waitMilliseconds = waitMilliseconds
        self.exitStatus = exitStatus
        self.ended = ended
    }

    public var json: JSON.Value {
        func optional(_ value: Int64?) -> JSON.Value { value.map(JSON.Value.integer) ?? .null }
        return .object([
            ("queued_at", .string(Clock.isoUTC(queuedAt))),
            ("queued_epoch", .number(queuedAt.asDouble)),
            ("command", .string(command)),
            ("project", .string(project)),
            ("pid", .integer(Int64(pid))),
            ("child_pid", optional(childPid.map(Int64.init))),
            ("wait_ms", .integer(waitMilliseconds)),
            ("run_ms", optional(runMilliseconds)),
            ("exit_status", .integer(Int64(exitStatus))),
            ("ended", .string(ended.rawValue)),
            ("signal", signal.map(JSON.Value.string) ?? .null),
            ("peak_tree_kb", optional(peakTreeBytes.map { $0 / 1024 })),
            ("enforcement", enforcement.map { .string($0) } ?? .null),
            ("tmpfs_kb", optional(peakSharedFileBytes.map { $0 / 1024 })),
            ("metric", metric.map { .string($0.rawValue) } ?? .null),
            ("memory_limit_mb", optional(memoryLimitMegabytes.map(Int64.init))),
            ("max_process_kb", optional(largestProcessBytes.map { $0 / 1024 })),
        ])
    }

    /// A record read back; nil if the line is not one of ours.
    public init?(json value: JSON.Value) {
        guard let command = value["command"]?.string, let pid = value["pid"]?.integer,
              let wait = value["wait_ms"]?.integer, let status = value["exit_status"]?.integer,
              let ended = value["ended"]?.string.flatMap(Ending.init(rawValue:))
        else { return nil }
        var queued = WallTime(seconds: 0, nanoseconds: 0)
        if case .number(let epoch) = value["queued_epoch"] ?? .null {
            queued = WallTime(seconds: Int64(epoch), nanoseconds: Int64((epoch - epoch.rounded(.down)) * 1e9))
        } else if let epoch = value["queued_epoch"]?.integer {
            queued = WallTime(seconds: epoch, nanoseconds: 0)
        }
        self.init(command: command, pid: Int32(clamping: pid), project: value["project"]?.string ?? "",
                  queuedAt: queued, waitMilliseconds: wait, exitStatus: Int32(clamping: status), ended: ended)
        childPid = value["child_pid"]?.integer.map { Int32(clamping: $0) }
        runMilliseconds = value["run_ms"]?.integer
        signal = value["signal"]?.string
        peakTreeBytes = value["peak_tree_kb"]?.integer.map { $0 * 1024 }
        enforcement = value["enforcement"]?.string
        peakSharedFileBytes = value["tmpfs_kb"]?.integer.map { $0 * 1024 }
        metric = value["metric"]?.string.flatMap(MemoryMetric.init(rawValue:))
        memoryLimitMegabytes = value["memory_limit_mb"]?.integer.map { Int($0) }
        largestProcessBytes = value["max_process_kb"]?.integer.map { $0 * 1024 }
    }
}

/// `<state>/history.jsonl`: one JSON line per guarded run, appended under the state mutex,
/// rotated to `history.jsonl.1` (one old generation) once it passes `maximumBytes`.
public struct History {
    public static let fileName = "history.jsonl"
    public static let rotatedName = "history.jsonl.1"
    public static let defaultMaximumBytes: Int64 = 1 << 20

    public var directory: StateDirectory
    public var maximumBytes: Int64

    public init(directory: StateDirectory, maximumBytes: Int64 = History.defaultMaximumBytes) {
        self.directory = directory
        self.maximumBytes = maximumBytes
    }

    /// Appends one line under the state mutex.
    public func record(_ record: HistoryRecord) throws(GuardFailure) {
        try directory.withMutex { () throws(GuardFailure) in try append(record) }
    }

    /// The line of a run whose supervisor was killed before it could write its own: what its
    /// claim's record knows (command, pid, since when it held the lock, its command's pid),
    /// with the status its caller saw (137, killed). The caller holds the state mutex.
    public func appendLost(_ owner: OwnerRecord, project: String) throws(GuardFailure) {
        var record = HistoryRecord(
            command: owner.command, pid: owner.holder.pid, project: project, queuedAt: owner.since, waitMilliseconds: 0,
            exitStatus: Signal.kill.shellExitCode, ended: .holderKilled)
        record.childPid = owner.child?.pid
        record.signal = Signal.kill.name
        try append(record)
    }

    /// Appends one line; the caller holds the state mutex.
    public func append(_ record: HistoryRecord) throws(GuardFailure) {
        if let status = try? FileSystem.status(Self.fileName, relativeTo: directory.descriptor), status.isRegularFile, status.size >= maximumBytes {
            do { try FileSystem.rename(Self.fileName, to: Self.rotatedName, relativeTo: directory.descriptor) } catch {
                throw GuardFailure("cannot rotate \(directory.path)/\(Self.fileName): \(error)", errno: error)
            }
        }
        // Never through a symlink, never a FIFO (the holder would hang with the lock held).
        guard let file = try directory.openFile(Self.fileName, [.writeOnly, .append, .create]) else { return }
        defer { file.close() }
        // One write(2) of a whole line: O_APPEND keeps concurrent appenders' lines apart.
        do { try file.writeAll(JSON.encode(record.json) + "\n") } catch {
            throw GuardFailure("cannot write \(directory.path)/\(Self.fileName): \(error); check free space", errno: error)
        }
    }

    /// The last `limit` records, oldest first, and how many lines could not be read.
    public func read(limit: Int) -> (records: [HistoryRecord], unreadable: Int) {
        var records: [HistoryRecord] = []
        var unreadable = 0
        for name in [Self.rotatedName, Self.fileName] {
            guard let bytes = (try? directory.readFile(name)) ?? nil else { continue }
            for line in bytes.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                if let value = JSON.decode(String(decoding: line, as: UTF8.self)), let record = HistoryRecord(json: value) {
                    records.append(record)
                } else {
                    unreadable += 1
                }
            }
        }
        return (Array(records.suffix(max(0, limit))), unreadable)
    }

    /// The table `--history` prints.
    public static func table(_ records: [HistoryRecord]) -> String {
        var rows = [["QUEUED", "WAIT", "RUN", "PEAK", "ENDED", "EXIT", "COMMAND"]]
        for record in records {
            let run = record.runMilliseconds.map { formatDuration(Double($0) / 1000) } ?? "-"
            let peak = (record.peakTreeBytes ?? record.largestProcessBytes).map(formatMegabytes) ?? "-"
            var ended = record.ended.rawValue
            if let signal = record.signal, record.ended == .signal || record.ended == .killed { ended += " (\(signal))" }
            rows.append([
                Clock.localDateTime(record.queuedAt), formatDuration(Double(record.waitMilliseconds) / 1000), run, peak,
                ended, String(record.exitStatus), record.command,
            ])
        }
        return TextTable.render(rows)
    }
}


extension History {
    /// `seqexec --history`: prints the last `limit` runs (a table, or JSON) and returns the
    /// exit status. Unreadable lines are skipped and counted on stderr.
    public static func show(_ configuration: GuardConfiguration, limit: Int, json: Bool) -> Int32 {
        do {
            let (_, directory) = try configuration.openState()
            let (records, unreadable) = History(directory: directory).read(limit: limit)
            if unreadable > 0 {
                configuration.reporter.error("skipped \(unreadable) unreadable line\(unreadable == 1 ? "" : "s") of \(directory.path)/\(fileName)")
            }
            if json {
                print(JSON.encode(.array(records.map(\.json))))
            } else if records.isEmpty {
                print("seqexec: no runs recorded in \(directory.path)/\(fileName)")
            } else {
                print(table(records), terminator: "")
            }
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }
}
