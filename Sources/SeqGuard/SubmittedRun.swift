import SeqSystem

/// A run handed to the guard with `--submit`: queued exactly as a foreground run, but
/// supervised by a process detached from the caller's session, so the caller's own time
/// limit cannot take its place in the queue. It lives in `<state>/runs/`:
/// - `ID.run`: what was submitted, and the identities of its relay (the session leader that
///   writes the log) and its front (the pid in the queue and the lock record);
/// - `ID.log`: the command's output, and the guard's lines, capped at `logMaximumBytes`;
/// - `ID.result`: its exit status and how it ended, written by its supervisor with its
///   history line.
public struct SubmittedRun: Sendable, Equatable {
    public var id: String
    public var command: String
    public var submittedAt: WallTime
    public var relay: ProcessIdentity
    public var front: ProcessIdentity

    /// The exit status and ending, once the run's supervisor has recorded them.
    public struct Result: Sendable, Equatable {
        public var status: Int32
        public var ended: String
        public var endedAt: WallTime
    }

    var text: String {
        "id=\(id)\ncommand=\(PercentEncoding.encode(command))\nsubmitted=\(submittedAt)\nrelay=\(relay.pid)@\(relay.startTime)\nfront=\(front.pid)@\(front.startTime)\n"
    }

    init(id: String, command: String, submittedAt: WallTime, relay: ProcessIdentity, front: ProcessIdentity) {
        self.id = id
        self.command = command
        self.submittedAt = submittedAt
        self.relay = relay
        self.front = front
    }

    init?(parsing bytes: [UInt8]) {
        var fields: [Substring: Substring] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            fields[line[..<equals]] = line[line.index(after: equals)...]
        }
        func identity(_ text: Substring?) -> ProcessIdentity? {
            guard let parts = text?.split(separator: "@"), parts.count == 2,
                  let pid = Int32(parts[0]), let start = UInt64(parts[1]) else { return nil }
            return ProcessIdentity(pid: pid, startTime: start)
        }
        guard let id = fields["id"], RunStore.isValidID(String(id)), let command = fields["command"].flatMap({ PercentEncoding.decode($0) }),
              let submitted = fields["submitted"].flatMap({ WallTime(parsing: $0) }),
              let relay = identity(fields["relay"]), let front = identity(fields["front"])
        else { return nil }
        self.init(id: String(id), command: command, submittedAt: submitted, relay: relay, front: front)
    }
}

extension SubmittedRun.Result {
    var text: String { "status=\(status)\nended=\(ended)\nended_at=\(endedAt)\n" }

    init?(parsing bytes: [UInt8]) {
        var status: Int32?
        var ended: String?
        var endedAt: WallTime?
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            if line.hasPrefix("status=") { status = Int32(line.dropFirst(7)) }
            if line.hasPrefix("ended=") { ended = String(line.dropFirst(6)) }
            if line.hasPrefix("ended_at=") { endedAt = WallTime(parsing: line.dropFirst(9)) }
        }
        guard let status, let ended, let endedAt else { return nil }
        self.init(status: status, ended: ended, endedAt: endedAt)
    }
}

/// The `runs/` directory of a project's state: submitted runs' records, logs and results.
extension RunStore {
    /// The relays of the submitted runs recorded under the state base `base` (every
    /// project's `runs/`) that are alive: the processes a run submitted from inside a guarded
    /// command is, which that command's supervisor must not end as its leftovers. Only files
    /// of this user's base are read; a pid counts with its recorded start time.
    public static func liveRelays(base: String?) -> Set<Int32> {
        let root = base ?? StateDirectory.defaultBase()
        guard let lanes = try? FileSystem.contents(ofDirectory: root) else { return [] }
        var relays: Set<Int32> = []
        for lane in lanes where lane.hasPrefix(LockNamespace.seqexec.directoryPrefix) {
            let runs = "\(root)/\(lane)/\(directoryName)"
            guard let names = try? FileSystem.contents(ofDirectory: runs) else { continue }
            for name in names where name.hasSuffix(".run") {
                guard let status = try? FileSystem.status("\(runs)/\(name)"), status.isRegularFile, status.size < 64 << 10,
                      status.owner == Processes.userID, let bytes = try? FileSystem.readFile("\(runs)/\(name)"),
                      let run = SubmittedRun(parsing: bytes), run.relay.isAlive else { continue }
                relays.insert(run.relay.pid)
            }
        }
        return relays
    }
}

public struct RunStore: Sendable {
    public static let directoryName = "runs"
    /// Ended runs kept (their record, log and result); older ones go at the next submit.
    public static let defaultKeep = 50
    public static let defaultLogMaximumBytes = 10 << 20

    public var directory: StateDirectory

    /// Opens (creating) `runs/` in the project's state directory, with the same checks.
    public init(state: StateDirectory) throws(GuardFailure) {
        directory = try state.subdirectory(Self.directoryName)
    }

    public func close() { directory.close() }

    /// A run id: the submit time in seconds and six hex digits, so a listing sorts by age.
    public static func newID() -> String { "\(Clock.wallTime().seconds)-\(Processes.randomHex(bytes: 3))" }

    static func isValidID(_ id: String) -> Bool {
        let parts = id.split(separator: "-")
        return parts.count == 2 && parts[0].allSatisfy(\.isNumber) && parts[1].count == 6 && parts[1].allSatisfy(\.isHexDigit)
    }

    public func logPath(_ id: String) -> String { "\(directory.path)/\(id).log" }

    /// Writes a whole file through a temporary name and rename(2): a reader never sees half.
    func replace(_ name: String, with text: String) throws(GuardFailure) {
        let temporary = "\(name).tmp"
        guard let fd = try directory.openFile(temporary, [.writeOnly, .create, .truncate]) else { return }
        defer { fd.close() }
        do {
            try fd.writeAll(text)
            try FileSystem.rename(temporary, to: name, relativeTo: directory.descriptor)
        } catch {
            throw GuardFailure("cannot write \(directory.path)/\(name): \(error); \(GuardFailure.fix(for: error, otherwise: "check free space"))", errno: error)
        }
    }

    func save(_ run: SubmittedRun) throws(GuardFailure) { try replace("\(run.id).run", with: run.text) }

    /// Records how the run ended; called by its supervisor beside the history line.
    func saveResult(id: String, status: Int32, ended: String) throws(GuardFailure) {
        try replace("\(id).result", with: SubmittedRun.Result(status: status, ended: ended, endedAt: Clock.wallTime()).text)
    }

    /// The run `id`, or nil when there is none (or its record is unreadable).
    public func run(_ id: String) throws(GuardFailure) -> SubmittedRun? {
        guard Self.isValidID(id), let bytes = try directory.readFile("\(id).run") else { return nil }
        return SubmittedRun(parsing: bytes)
    }

    /// Run `id`, which the caller named: its absence is the caller's error, naming where it
    /// was looked for and `listing` (where the runs are listed: the flag, or the tool).
    func existing(_ id: String, listing: String) throws(GuardFailure) -> SubmittedRun {
        guard let run = try run(id) else { throw GuardFailure("no submitted run '\(id)' in \(directory.path); see \(listing)") }
        return run
    }

    public func result(_ id: String) throws(GuardFailure) -> SubmittedRun.Result? {
        guard let bytes = try directory.readFile("\(id).result") else { return nil }
        return SubmittedRun.Result(parsing: bytes)
    }

    /// Every run recorded here, oldest first: by when it was submitted (to the nanosecond),
    /// not by its id, whose second is shared by the runs of one second and whose suffix is random.
    public func runs() throws(GuardFailure) -> [SubmittedRun] {
        var found: [SubmittedRun] = []
        for name in try directory.names() where name.hasSuffix(".run") {
            if let run = try run(String(name.dropLast(4))) { found.append(run) }
        }
        return found.sorted { ($0.submittedAt, $0.id) < ($1.submittedAt, $1.id) }
    }

    /// Removes the runs that ended, oldest submitted first, past the newest `keep`.
    func prune(keep: Int) throws(GuardFailure) {
        let names = Set(try directory.names())
        let ended = try runs().filter { names.contains($0.id + ".result") }
        for run in ended.dropLast(keep) {
            for suffix in [".run", ".log", ".result"] { try? FileSystem.removeFile(run.id + suffix, relativeTo: directory.descriptor) }
        }
    }
}

extension StateDirectory {
    /// A directory inside this one, created 0700 if missing, held to the same checks (a real
    /// directory of this user that nobody else may write).
    public func subdirectory(_ name: String) throws(GuardFailure) -> StateDirectory {
        let path = "\(self.path)/\(name)"
        let fix = "remove it with 'rm -r \(path)'"
        do { try FileSystem.makeDirectory(name, mode: 0o700, relativeTo: descriptor) } catch where error == .fileExists {
        } catch {
            throw GuardFailure("cannot create \(path): \(error); \(GuardFailure.fix(for: error, otherwise: "check free space and permissions"))", errno: error)
        }
        let opened = try Self.openChecked(name, in: descriptor, path: path, fix: fix)
        return StateDirectory(path: path, name: name, descriptor: opened, namespace: namespace)
    }
}
