import SeqSystem

/// Queue order: priority first, then arrival.
public enum Priority: String, Sendable, CaseIterable, Comparable {
    case high, normal, low

    var rank: Int {
        switch self {
        case .high: return 0
        case .normal: return 1
        case .low: return 2
        }
    }

    public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rank < rhs.rank }
}

/// One waiter: a line `PID:TIMESTAMP:COMMAND:start=TICKS:prio=P:w=TOKEN` of `queue.txt`.
/// The command is percent-encoded (`%`, `:`, CR, LF) so the line splits unambiguously;
/// further `key=value` fields may follow and are kept.
public struct QueueEntry: Sendable, Equatable {
    public var process: ProcessIdentity
    public var queuedAt: WallTime
    public var command: String
    public var priority: Priority
    /// Names the waiter's own lock, `waiter-TOKEN.lock`, which it holds while it waits: the
    /// kernel's word on whether the line is live, which no reused pid can fake.
    public var token: String?
    public var extra: [String] = []

    public init(process: ProcessIdentity, queuedAt: WallTime, command: String, priority: Priority) {
        self.process = process
        self.queuedAt = queuedAt
        self.command = command
        self.priority = priority
    }

    public var line: String {
        var line = "\(process.pid):\(queuedAt):\(PercentEncoding.encode(command)):start=\(process.startTime):prio=\(priority.rawValue)"
        if let token { line += ":w=\(token)" }
        for field in extra { line += ":" + field }
        return line
    }

    /// Parses one line; nil for garbage, a truncated line, or a foreign line with no start time
    /// (a pid alone cannot be trusted).
    public init?(line: Substring) {
        let fields = line.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count >= 4, let pid = Int32(fields[0]), pid > 0,
              let queuedAt = WallTime(parsing: fields[1]),
              let command = PercentEncoding.decode(fields[2]) else { return nil }
        var start: UInt64?
        var priority = Priority.normal
        var extra: [String] = []
        var token: String?
        for field in fields[3...] {
            if field.hasPrefix("start=") {
                start = UInt64(field.dropFirst(6))
                if start == nil { return nil }
            } else if field.hasPrefix("w=") {
                let value = field.dropFirst(2)
                guard !value.isEmpty, value.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
                token = String(value)
            } else if field.hasPrefix("prio=") {
                guard let value = Priority(rawValue: String(field.dropFirst(5))) else { return nil }
                priority = value
            } else if field.contains("=") {
                extra.append(String(field))
            } else {
                return nil
            }
        }
        guard let start else { return nil }
        self.init(process: ProcessIdentity(pid: pid, startTime: start), queuedAt: queuedAt,
                  command: command, priority: priority)
        self.extra = extra
        self.token = token
    }
}

/// The parsed queue: entries in file order, and the lines that could not be trusted.
public struct QueueSnapshot: Sendable {
    public var entries: [QueueEntry] = []
    public var rejectedLines: [String] = []

    public init(entries: [QueueEntry] = [], rejectedLines: [String] = []) {
        self.entries = entries
        self.rejectedLines = rejectedLines
    }

    public init(parsing bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let entry = QueueEntry(line: line) {
                entries.append(entry)
            } else {
                rejectedLines.append(String(line.prefix(200)))
            }
        }
    }

    /// Entries in the order they may start: priority, then arrival, then file order.
    public var ordered: [QueueEntry] {
        entries.enumerated().sorted { a, b in
            (a.element.priority.rank, a.element.queuedAt, a.offset) < (b.element.priority.rank, b.element.queuedAt, b.offset)
        }.map(\.element)
    }

    public var text: String {
        var text = ""
        for entry in entries { text += entry.line + "\n" }
        return text
    }
}

/// `queue.txt` inside a state directory. Readers need no lock: writers replace the whole file
/// with rename(2), so a reader sees the old queue or the new one, never half of one.
public struct WaitQueue: Sendable {
    public static let fileName = "queue.txt"
    public var directory: StateDirectory

    public init(directory: StateDirectory) { self.directory = directory }

    /// The lock a waiter with `token` holds while it waits.
    public func waiterLock(_ token: String) -> LockFile { LockFile(directory: directory, name: "waiter-\(token).lock") }

    /// The mark a waiter puts on its line while it is its turn but its stderr takes nothing
    /// (a full pipe, a terminal stopped with Ctrl-S): it does not take the turn, and the line
    /// moves past it until its output moves again.
    public static let blockedMark = "out=blocked"
    /// The waiter asked `--order newest-first`: a newer one so marked replaces it.
    public static let newestFirstMark = "order=newest"

    /// Whether `entry`'s waiter says its stderr is blocked.
    public static func isBlocked(_ entry: QueueEntry) -> Bool { entry.extra.contains(blockedMark) }

    /// Whether the line moves past `entry` while a slot is free: its waiter is stopped or
    /// its stderr blocked. It keeps its place, and takes its turn once it can.
    public static func isPassed(_ entry: QueueEntry) -> Bool { isBlocked(entry) || isStopped(entry) }

    /// Whether `entry`'s waiter is stopped (Ctrl-Z, SIGSTOP to its group): it keeps its
    /// place, but the line moves past it until it is continued. The kernel's word on the
    /// process the line names.
    public static func isStopped(_ entry: QueueEntry) -> Bool {
        guard let stat = try? ProcStat.read(entry.process.pid), stat.startTime == entry.process.startTime else { return false }
        return stat.state == "T" || stat.state == "t"
    }

    /// Whether `entry`'s waiter still waits: it holds its own lock. A line with no token
    /// (forged, or an older seqexec's, which adds it again) is not live: a pid and a start
    /// time can be reused, in a pid namespace even within one clock tick.
    public func isLive(_ entry: QueueEntry) -> Bool {
        guard let token = entry.token else { return false }
        return waiterLock(token).isHeld
    }

    /// The processes proved to be `entry`'s waiter: those holding its lock. Nothing for a line
    /// without a token: a pid and a start time alone are not proof enough to signal.
    public func waiters(_ entry: QueueEntry) -> [ProcessIdentity] {
        guard let token = entry.token else { return [] }
        return waiterLock(token).holders()
    }

    /// Removes the waiter locks of lines dropped as dead (their waiters were killed). Call
    /// under the mutex: a waiter takes its lock under it, so an unheld one is nobody's.
    public func forget(_ entries: [QueueEntry]) {
        for entry in entries {
            guard let token = entry.token else { continue }
            let lock = waiterLock(token)
            if !lock.isHeld { try? FileSystem.removeFile(lock.name, relativeTo: directory.descriptor) }
        }
    }

    static let temporaryName = "\(fileName).tmp"

    /// Removes temporary files an older seqexec left (`queue.txt.PID.tmp`), given the state
    /// directory's names (listed anyway by the caller). Call under the mutex.
    public func removeOldTemporaries(among names: [String]) {
        for name in names where name.hasPrefix(Self.fileName + ".") && name.hasSuffix(".tmp") && name != Self.temporaryName {
            try? FileSystem.removeFile(name, relativeTo: directory.descriptor)
        }
    }

    public func read() throws(GuardFailure) -> QueueSnapshot {
        guard let bytes = try directory.readFile(Self.fileName) else { return QueueSnapshot() }
        return QueueSnapshot(parsing: bytes)
    }

    /// Replaces the queue (under the state directory's mutex). An empty queue removes the file.
    public func write(_ entries: [QueueEntry]) throws(GuardFailure) {
        let dir = directory.descriptor
        if entries.isEmpty {
            do { try FileSystem.removeFile(Self.fileName, relativeTo: dir) } catch where error == .noSuchFile {
            } catch {
                throw GuardFailure("cannot remove \(directory.path)/\(Self.fileName): \(error)", errno: error)
            }
            return
        }
        // One name for every writer: they hold the mutex, so a file left by a killed writer is
        // simply written over, and none pile up.
        let temporary = Self.temporaryName
        do throws(Errno) {
            var fd = try FileSystem.open(temporary, [.writeOnly, .create, .truncate, .noFollow, .nonBlocking], mode: 0o600, relativeTo: dir)
            if let status = try? fd.status(), !status.isRegularFile {
                fd.close()
                try FileSystem.removeFile(temporary, relativeTo: dir)
                fd = try FileSystem.open(temporary, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600, relativeTo: dir)
            }
            do {
                try fd.writeAll(QueueSnapshot(entries: entries).text)
                fd.close()
            } catch {
                fd.close()
                throw error
            }
            try FileSystem.rename(temporary, to: Self.fileName, relativeTo: dir)
        } catch {
            try? FileSystem.removeFile(temporary, relativeTo: dir)
            throw GuardFailure("cannot write \(directory.path)/\(Self.fileName): \(error); check free space and permissions", errno: error)
        }
    }
}

/// Percent-encoding of the few bytes that would break a one-line, colon-separated record.
public enum PercentEncoding {
    public static func encode(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "%": result += "%25"
            case ":": result += "%3A"
            case "\n": result += "%0A"
            case "\r": result += "%0D"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    public static func decode(_ text: Substring) -> String? {
        // Most commands have nothing encoded: no byte-by-byte copy for those.
        if !text.utf8.contains(UInt8(ascii: "%")) { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard iterator.count >= 2,
                      let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
