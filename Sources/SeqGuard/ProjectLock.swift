import SeqSystem

/// What a claim's `owner` file says: who holds the lock, since when, running what.
public struct OwnerRecord: Sendable, Equatable {
    /// The seqexec process holding the claim.
    public var holder: ProcessIdentity
    public var host: String
    public var since: WallTime
    public var command: String
    /// Ties nested calls to this holder: its guarded command carries it in SEQEXEC_TOKENS.
    public var token: String
    /// The guarded command, once started.
    public var child: ProcessIdentity?
    /// The process that supervises the command and keeps the lock until no process of its
    /// tree is left: a child of `holder`, which lives on if the holder is killed.
    public var supervisor: ProcessIdentity?
    /// A long-lived holder's last sign of life (seqpipe's orchestrator): wall time for people,
    /// seconds since boot (CLOCK_BOOTTIME, which no clock step moves) for measuring silence.
    public var heartbeat: WallTime?
    public var heartbeatBootSeconds: Double?
    /// When the command's time limit (--timeout) runs out, from its start. Kept here so that
    /// a command whose seqexec and supervisor were killed is still ended on time: a waiter,
    /// --status or --kill-all that finds it past this ends its tree.
    public var deadline: WallTime?
    /// What the holder waits for before its command starts: `git:PID:LOCKFILE`, set while a
    /// git command waits out another git operation.
    public var waitingFor: String?
    /// How many commands the holder agreed to run beside (`--slots`): 1, alone. The
    /// strictest live holder's number caps everyone's.
    public var slots = 1
    /// The pid namespace the pids above belong to (the inode of /proc/self/ns/pid): a reader
    /// in another one (the holder ran under `unshare -p`) cannot look them up, and judges the
    /// claim by its flocks alone. Nil in an older record: taken as the reader's own.
    public var pidNamespace: UInt64?
    /// Who enforces the memory limit of the running command: "kernel" or "sampled".
    public var enforcement: String?

    public init(holder: ProcessIdentity, host: String, since: WallTime, command: String, token: String, child: ProcessIdentity? = nil) {
        self.holder = holder
        self.host = host
        self.since = since
        self.command = command
        self.token = token
        self.child = child
    }

    public var text: String {
        // Appended, not joined: written on every start, where generic joins cost.
        var text = "pid=\(holder.pid)\nstart=\(holder.startTime)\nhost=\(PercentEncoding.encode(host))\nsince=\(since)\ntoken=\(token)\n"
        if let child { text += "child=\(child.pid)\nchild_start=\(child.startTime)\n" }
        if let supervisor { text += "supervisor=\(supervisor.pid)\nsupervisor_start=\(supervisor.startTime)\n" }
        if let deadline { text += "deadline=\(deadline)\n" }
        if let waitingFor { text += "waiting_for=\(PercentEncoding.encode(waitingFor))\n" }
        if slots != 1 { text += "slots=\(slots)\n" }
        if let pidNamespace { text += "pidns=\(pidNamespace)\n" }
        if let enforcement { text += "memory=\(enforcement)\n" }
        if let heartbeat, let heartbeatBootSeconds {
            text += "heartbeat=\(heartbeat)\nheartbeat_boot=\(heartbeatBootSeconds)\n"
        }
        text += "command=\(PercentEncoding.encode(command))\n"
        return text
    }

    /// Parses a record; nil if it is truncated or garbage.
    public init?(parsing bytes: [UInt8]) {
        var fields: [Substring: Substring] = [:]
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            fields[line[..<equals]] = line[line.index(after: equals)...]
        }
        guard let pid = fields["pid"].flatMap({ Int32($0) }), pid > 0,
              let start = fields["start"].flatMap({ UInt64($0) }),
              let since = fields["since"].flatMap({ WallTime(parsing: $0) }),
              let token = fields["token"], !token.isEmpty,
              let command = fields["command"].flatMap({ PercentEncoding.decode($0) })
        else { return nil }
        var child: ProcessIdentity?
        if let childPid = fields["child"].flatMap({ Int32($0) }),
           let childStart = fields["child_start"].flatMap({ UInt64($0) }) {
            child = ProcessIdentity(pid: childPid, startTime: childStart)
        }
        self.init(
            holder: ProcessIdentity(pid: pid, startTime: start),
            host: fields["host"].flatMap { PercentEncoding.decode($0) } ?? "?",
            since: since, command: command, token: String(token), child: child)
        heartbeat = fields["heartbeat"].flatMap { WallTime(parsing: $0) }
        if let pid = fields["supervisor"].flatMap({ Int32($0) }), let start = fields["supervisor_start"].flatMap({ UInt64($0) }) {
            supervisor = ProcessIdentity(pid: pid, startTime: start)
        }
        heartbeatBootSeconds = fields["heartbeat_boot"].flatMap { Double($0) }
        deadline = fields["deadline"].flatMap { WallTime(parsing: $0) }
        // A record without the field (or with a bad one) is the strictest: alone.
        slots = fields["slots"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
        waitingFor = fields["waiting_for"].flatMap { PercentEncoding.decode($0) }
        pidNamespace = fields["pidns"].flatMap { UInt64($0) }
        enforcement = fields["memory"].flatMap { ["kernel", "sampled"].contains($0) ? String($0) : nil }
    }

    /// Whether the pids of this record can be looked up here: they are of this process's
    /// pid namespace. When not, a pid here is another process (or none), and nothing may be
    /// signalled or judged by it.
    public var pidsAreOurs: Bool {
        guard let pidNamespace, let ours = Processes.pidNamespace else { return true }
        return pidNamespace == ours
    }
}

/// One claim directory (`executor.lock`, or `executor.lock.N` for slot N) as found on disk.
public struct Claim: Sendable {
    public var name: String
    public var slot: Int
    /// The record, if it could be read and parsed.
    public var record: OwnerRecord?
    /// Whether a process holds the owner file's flock: the kernel's word on liveness.
    public var isLive: Bool
    /// The owner file's identity, for watching it and for finding processes that hold it.
    public var ownerFile: FileStatus?
    /// Why the claim is not trusted, if it is not.
    public var problem: String?

    /// Whether the claimant still holds its guard: the kernel's word that the process that
    /// took the claim (the supervisor) lives, whatever pid namespace it is in.
    public var isGuarded = false

    /// Held by the command's tree alone: its seqexec and its supervisor are gone (killed by
    /// pid), so nothing enforces its limits but the deadline in its record.
    public var isUnsupervised: Bool {
        guard isLive, !isGuarded, let record, record.child != nil else { return false }
        // Pids of another namespace say nothing here: the guard's flock alone decides.
        guard record.pidsAreOurs else { return true }
        return !record.holder.isAlive && !(record.supervisor?.isAlive ?? false)
    }

    /// Unsupervised and past its recorded deadline, at `now`.
    public func isOverdue(at now: WallTime) -> Bool {
        guard isUnsupervised, let deadline = record?.deadline else { return false }
        return now >= deadline
    }
}

extension ProjectLock {
    /// Ends the tree of every unsupervised claim past its deadline, by the identities its
    /// record names (pid and start time, never a name), through the one teardown: SIGTERM,
    /// `killGrace`, SIGKILL. Its flock goes with the tree, so the next waiter goes on. Returns
    /// one line for each claim ended. Call outside the mutex: the teardown takes seconds.
    @available(*, noasync)
    public static func endOverdue(_ claims: [Claim], killGrace: Double, reporter: Reporter) -> [String] {
        let now = Clock.wallTime()
        var lines: [String] = []
        for claim in claims where claim.isOverdue(at: now) {
            guard let record = claim.record, let child = record.child else { continue }
            // A tree in another pid namespace is found by what the kernel says holds its
            // record open, not by the pids the record names.
            let roots = record.pidsAreOurs ? [child]
                : claim.ownerFile.map { Processes.holding(device: $0.device, inode: $0.inode, lockedOnly: true) } ?? []
            guard !roots.isEmpty else { continue }
            let report = Teardown.graceful(killGrace).run(find: Teardown.TreeFinder(roots: roots).find)
            let line = "'\(record.command)' ran unsupervised (its seqexec, pid \(record.holder.pid), and supervisor were killed) past its deadline \(Clock.localClockTime(record.deadline ?? now)): ended its tree (\(report.ended.count) process\(report.ended.count == 1 ? "" : "es"))"
            reporter.error(line)
            lines.append(line)
        }
        return lines
    }
}

/// A claim this process holds. Its `owner` descriptor carries the flock; the guarded command
/// inherits it, so the lock lives exactly as long as seqexec or any process of the tree.
public struct HeldClaim: Sendable {
    public var name: String
    /// The owner record, flock'd: inherited by the command's tree, so the lock outlives a
    /// killed supervisor.
    public var owner: FileDescriptor
    public var record: OwnerRecord
    /// The claimant's own flock (`guard`), never inherited (close-on-exec): nothing the
    /// command does to its descriptors (`flock -u` on the owner record it inherited) lets
    /// another command in while the claimant lives.
    public var guardLock: FileDescriptor?
}

/// The per-project lock: claim directories made with mkdir(2), each holding an owner record
/// on which the holder keeps an exclusive flock.
public struct ProjectLock: Sendable {
    public static let ownerFileName = "owner"
    /// The claimant's own lock beside the record (see `HeldClaim.guardLock`).
    public static let guardFileName = "guard"
    public var directory: StateDirectory

    public init(directory: StateDirectory) { self.directory = directory }

    var baseName: String { directory.namespace.claimName }

    func claimName(slot: Int) -> String { slot == 0 ? baseName : "\(baseName).\(slot)" }

    func slot(ofName name: String) -> Int? {
        if name == baseName { return 0 }
        guard name.hasPrefix(baseName + "."), let slot = Int(name.dropFirst(baseName.count + 1)), slot > 0 else { return nil }
        return slot
    }

    /// Every claim directory, checked. Call under the mutex.
    /// - Throws: `GuardFailure` (125) when a claim is a symlink, another user's, or open to others.
    public func inspect() throws(GuardFailure) -> [Claim] {
        try inspect(names: try directory.names())
    }

    /// The same, over the state directory's names listed by the caller.
    public func inspect(names: [String]) throws(GuardFailure) -> [Claim] {
        var claims: [Claim] = []
        for name in names {
            guard let slot = slot(ofName: name) else { continue }
            claims.append(try inspect(name: name, slot: slot))
        }
        return claims.sorted { $0.slot < $1.slot }
    }

    func inspect(name: String, slot: Int) throws(GuardFailure) -> Claim {
        let path = "\(directory.path)/\(name)"
        let status: FileStatus
        do { status = try FileSystem.status(name, relativeTo: directory.descriptor) } catch {
            return Claim(name: name, slot: slot, record: nil, isLive: false, ownerFile: nil, problem: "vanished")
        }
        try StateDirectory.check(path, status, uid: Processes.userID, fix: "remove it with 'rm -r \(path)' once no guarded command runs")
        let ownerPath = "\(name)/\(Self.ownerFileName)"
        let fd: FileDescriptor
        // Without blocking: a FIFO planted as the record must not hang every caller.
        do { fd = try FileSystem.open(ownerPath, [.readOnly, .noFollow, .nonBlocking], relativeTo: directory.descriptor) } catch {
            return Claim(name: name, slot: slot, record: nil, isLive: false, ownerFile: nil, problem: "no owner record")
        }
        if let status = try? fd.status(), !status.isRegularFile {
            fd.close()
            return Claim(name: name, slot: slot, record: nil, isLive: false, ownerFile: nil, problem: "its owner record is a \(status.kind)")
        }
        defer { fd.close() }
        let ownerStatus = try? fd.status()
        // A shared lock is granted only when no process holds the exclusive one. The claim
        // lives while its tree holds the record or its claimant holds the guard.
        let guarded = isGuarded(name)
        let live = guarded || !((try? fd.lock(exclusive: false, nonBlocking: true)) ?? true)
        let bytes = (try? fd.readContents()) ?? []
        let record = OwnerRecord(parsing: bytes)
        var claim = Claim(
            name: name, slot: slot, record: record, isLive: live, ownerFile: ownerStatus,
            problem: record == nil ? "unreadable owner record (\(bytes.count) bytes)" : nil)
        claim.isGuarded = guarded
        return claim
    }

    /// Whether claim `name`'s claimant still holds its guard (a file that is not there, or
    /// not a regular file, guards nothing).
    func isGuarded(_ name: String) -> Bool {
        guard let fd = try? FileSystem.open("\(name)/\(Self.guardFileName)", [.readOnly, .noFollow, .nonBlocking], relativeTo: directory.descriptor)
        else { return false }
        defer { fd.close() }
        guard (try? fd.status())?.isRegularFile == true else { return false }
        return !((try? fd.lock(exclusive: false, nonBlocking: true)) ?? true)
    }

    /// Removes a claim no process holds. Call under the mutex, after `inspect` said it is not live.
    public func removeStale(_ claim: Claim) throws(GuardFailure) {
        let path = "\(directory.path)/\(claim.name)"
        if let names = try? FileSystem.contents(ofDirectory: path) {
            for name in names { try? FileSystem.removeFile("\(claim.name)/\(name)", relativeTo: directory.descriptor) }
        }
        do { try FileSystem.removeDirectory(claim.name, relativeTo: directory.descriptor) } catch where error == .noSuchFile {
        } catch {
            throw GuardFailure("cannot remove stale lock \(path): \(error); remove it with 'rm -r \(path)'", errno: error)
        }
    }

    /// Takes the lowest free slot below `slots`. Call under the mutex. Returns nil if none is free.
    public func claim(slots: Int, record: OwnerRecord) throws(GuardFailure) -> HeldClaim? {
        for slot in 0..<slots {
            let name = claimName(slot: slot)
            do { try FileSystem.makeDirectory(name, mode: 0o700, relativeTo: directory.descriptor) } catch where error == .fileExists {
                continue
            } catch {
                throw GuardFailure("cannot create lock \(directory.path)/\(name): \(error)", errno: error)
            }
            do throws(Errno) {
                let owner = try FileSystem.open(
                    "\(name)/\(Self.ownerFileName)", [.readWrite, .create, .exclusive, .noFollow], mode: 0o600,
                    relativeTo: directory.descriptor)
                guard try owner.lock(exclusive: true, nonBlocking: true) else {
                    owner.close()
                    throw Errno.wouldBlock
                }
                try owner.replaceContents(record.text)
                // Taken while the mutex is held and the record's lock too: nobody can see the
                // claim between the two.
                let guardLock = try FileSystem.open(
                    "\(name)/\(Self.guardFileName)", [.readOnly, .create, .exclusive, .noFollow], mode: 0o600,
                    relativeTo: directory.descriptor)
                guard try guardLock.lock(exclusive: true, nonBlocking: true) else {
                    guardLock.close()
                    owner.close()
                    throw Errno.wouldBlock
                }
                return HeldClaim(name: name, owner: owner, record: record, guardLock: guardLock)
            } catch {
                try? FileSystem.removeFile("\(name)/\(Self.guardFileName)", relativeTo: directory.descriptor)
                try? FileSystem.removeFile("\(name)/\(Self.ownerFileName)", relativeTo: directory.descriptor)
                try? FileSystem.removeDirectory(name, relativeTo: directory.descriptor)
                throw GuardFailure("cannot write lock record \(directory.path)/\(name): \(error)", errno: error)
            }
        }
        return nil
    }

    /// Rewrites the record of a held claim (to add the command's pid). Call under the mutex.
    public func update(_ held: inout HeldClaim, record: OwnerRecord) {
        held.record = record
        try? held.owner.replaceContents(record.text)
    }

    /// Gives a claim up: record and directory removed, then the flock dropped. Call under the mutex.
    public func release(_ held: HeldClaim) {
        try? FileSystem.removeFile("\(held.name)/\(Self.ownerFileName)", relativeTo: directory.descriptor)
        try? FileSystem.removeFile("\(held.name)/\(Self.guardFileName)", relativeTo: directory.descriptor)
        try? FileSystem.removeDirectory(held.name, relativeTo: directory.descriptor)
        held.owner.close()
        held.guardLock?.close()
    }
}
