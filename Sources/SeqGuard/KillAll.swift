import SeqSystem

/// The emergency stop: ends every process recorded in the project's state (holders, their
/// trees, whatever keeps a lock's flock alive, and every waiter), then clears the state.
/// Processes are found only from the recorded pid + start time and the lock files: never by name.
public enum KillAll {
    public struct Ended: Sendable {
        public var process: ProcessIdentity
        public var role: String
        public var command: String
    }

    /// `--kill-all` of either tool: runs it and prints one line per process ended on stdout,
    /// or the error on stderr. Returns the exit status.
    @available(*, noasync)
    public static func runAndReport(_ configuration: GuardConfiguration) -> Int32 {
        if configuration.store != nil { return SharedLockReport.killAll(configuration) }
        let tool = configuration.toolName
        do {
            let ended = try run(configuration)
            if ended.isEmpty { print("\(tool): nothing to end") }
            for item in ended {
                let never = item.role.hasPrefix("waiter") ? " (never started)" : ""
                print("\(tool): ended \(item.role) pid \(item.process.pid) '\(item.command)'\(never)")
            }
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }

    /// Clears every lane of the project (its make lock, then its executor lock), or the
    /// machine lane with `--machine`.
    @available(*, noasync)
    public static func run(_ configuration: GuardConfiguration) throws(GuardFailure) -> [Ended] {
        let directories = try configuration.openKillAllStates()
        defer { for directory in directories { directory.close() } }
        var ended: [Ended] = []
        // The lane that keeps the history records the runs whose claims it clears.
        let project = configuration.machineWide ? Project.machine.root : (try? configuration.project())?.root
        for directory in directories {
            ended += try run(directory, killGrace: configuration.killGrace, historyProject: directory.namespace == .seqexec ? project : nil)
        }
        // A killed supervisor's run cgroup, emptied just now, goes too (else the next run's).
        if !ended.isEmpty { RunCgroup.removeStaleRuns() }
        return ended
    }

    @available(*, noasync)
    static func run(_ directory: StateDirectory, killGrace: Double, historyProject: String? = nil) throws(GuardFailure) -> [Ended] {
        let lock = ProjectLock(directory: directory)
        let queue = WaitQueue(directory: directory)
        let me = Processes.currentPid
        // Who is stopping the project, for the runs it ends: each says so on its caller's
        // stderr. And the door closes, in the same moment: from here no waiter takes the lock
        // (each looks under the mutex before it claims), so nothing queued starts.
        try directory.withMutex { () throws(GuardFailure) in
            try KillAllMark(pid: me, at: Clock.wallTime(), command: Processes.commandLine(me).map(GuardedCommand.displayCommand) ?? "seqexec --kill-all")
                .write(in: directory)
            try KillAllDoor.close(in: directory)
        }
        defer { try? directory.withMutex { () throws(GuardFailure) in KillAllDoor.open(in: directory) } }

        // Found afresh before every signal. With the door closed, waiters and holders get
        // SIGTERM together (wave 0), then SIGKILL after the grace; a supervisor last (wave 2).
        var search = KillAllSearch(directory: directory, lock: lock, queue: queue, me: me)
        var teardown = Teardown.graceful(killGrace)
        teardown.killRounds = 5
        let report = teardown.run(find: { _ in search.targets() })
        // What a run's cgroup still holds goes by the kernel's hand (nothing forked since escapes it).
        for supervisor in search.supervisors { RunCgroup.killLeftovers(ofRunSupervisedBy: supervisor) }
        // Whatever is left on disk has no live owner now.
        try directory.withMutex { () throws(GuardFailure) in
            for claim in try lock.inspect() where !claim.isLive {
                // A run whose supervisor was ended before it could write its own line.
                if let historyProject, let owner = claim.record { try? History(directory: directory).appendLost(owner, project: historyProject) }
                try lock.removeStale(claim)
            }
            let snapshot = try queue.read()
            let kept = snapshot.entries.filter { queue.isLive($0) }
            queue.forget(snapshot.entries.filter { !kept.contains($0) })
            if kept.count != snapshot.entries.count || !snapshot.rejectedLines.isEmpty { try queue.write(kept) }
        }
        return report.ended.map { Ended(process: $0.process, role: search.roles[$0.process] ?? "holder", command: $0.command) }
            .sorted { $0.process.pid < $1.process.pid }
    }
}

/// What a kill-all ends, found afresh before each signal from the state under the mutex: the
/// waiters proved by their locks, then the holders with their trees and supervisors. `roles`
/// remembers what each process was, for the report.
struct KillAllSearch {
    let directory: StateDirectory
    let lock: ProjectLock
    let queue: WaitQueue
    let me: Int32
    var roles: [ProcessIdentity: String] = [:]
    /// The supervisors of the runs found, whose run cgroups are swept at the end.
    var supervisors: Set<ProcessIdentity> = []

    mutating func targets() -> [Teardown.Target] {
        guard let (claims, snapshot) = try? directory.withMutex({ () throws(GuardFailure) in (try lock.inspect(), try queue.read()) }) else { return [] }
        var targets: [ProcessIdentity: Teardown.Target] = [:]
        let waiters = Set(snapshot.entries.flatMap { queue.waiters($0) })
        addWaiters(snapshot, to: &targets)
        addHolders(claims, waiters: waiters, to: &targets)
        return Array(targets.values)
    }

    mutating func addWaiters(_ snapshot: QueueSnapshot, to targets: inout [ProcessIdentity: Teardown.Target]) {
        // Only processes proved to be the waiters: those holding a line's waiter lock.
        // A guarded run waits in the child its front started; the front, named in the line,
        // is proved by being the parent of the lock's holder.
        for entry in snapshot.entries {
            for process in queue.waiters(entry) where process.pid != me {
                targets[process] = Teardown.Target(process, command: entry.command, wave: 0)
                let front = entry.process
                if front != process, front.pid != me, front.isAlive, (try? ProcStat.read(process.pid).parent) == front.pid {
                    targets[front] = Teardown.Target(front, command: entry.command, wave: 0)
                    roles[front] = "waiter"
                    roles[process] = "waiter's supervisor"
                } else {
                    roles[process] = "waiter"
                }
            }
        }
    }

    mutating func addHolders(_ claims: [Claim], waiters: Set<ProcessIdentity>, to targets: inout [ProcessIdentity: Teardown.Target]) {
        var roots: [ProcessIdentity: String] = [:]
        var supervisors: [ProcessIdentity: String] = [:]
        for claim in claims {
            let command = claim.record?.command ?? "?"
            if let record = claim.record, !record.pidsAreOurs {
                // Pids of another pid namespace name other processes here: its claimant
                // is whoever holds the guard, its tree whoever holds the record (below).
                if let guardFile = try? FileSystem.status("\(claim.name)/\(ProjectLock.guardFileName)", relativeTo: directory.descriptor) {
                    for supervisor in Processes.holding(device: guardFile.device, inode: guardFile.inode, lockedOnly: true) {
                        roots[supervisor] = command
                        supervisors[supervisor] = command
                    }
                }
            } else if let record = claim.record {
                roots[record.holder] = command
                if let child = record.child { roots[child] = command }
                if let supervisor = record.supervisor {
                    roots[supervisor] = command
                    supervisors[supervisor] = command
                    self.supervisors.insert(supervisor)
                    // The run's cgroup holds what no parent link or open file shows any more.
                    for pid in RunCgroup.processes(ofRunSupervisedBy: supervisor) {
                        if let identity = try? ProcStat.read(pid).identity { roots[identity] = command }
                    }
                }
            }
            // Waiters watching the lock hold its file open too; they are ended as waiters.
            if let owner = claim.ownerFile {
                for process in Processes.holding(device: owner.device, inode: owner.inode) where !waiters.contains(process) {
                    roots[process] = command
                }
            }
        }
        let table = Processes.all()
        for (root, command) in roots where root.pid != me && root.isAlive && targets[root] == nil {
            targets[root] = Teardown.Target(root, command: command, wave: 0)
            roles[root] = roles[root] ?? "holder"
        }
        let rootPids = Set(roots.keys.filter(\.isAlive).map(\.pid))
        for process in Processes.descendants(of: rootPids, in: table) where process.pid != me && targets[process.identity] == nil {
            targets[process.identity] = Teardown.Target(process.identity, command: process.command, wave: 0)
            roles[process.identity] = roles[process.identity] ?? "holder's tree"
        }
        // A supervisor goes last (wave 2): while it lives, everything its command starts
        // is under it and found; once the tree is gone it lets the lock go itself.
        for (supervisor, command) in supervisors where targets[supervisor] != nil {
            targets[supervisor] = Teardown.Target(supervisor, command: command, wave: 2)
            roles[supervisor] = "supervisor"
        }
    }
}

/// The door a `--kill-all` closes for as long as it runs (`kill-all.door`: its process, pid
/// and start time): no waiter claims the lock while that process lives. One left by a
/// kill-all that was itself killed names a dead process, and so is open.
enum KillAllDoor {
    static let fileName = "kill-all.door"

    static func close(in directory: StateDirectory) throws(GuardFailure) {
        guard let fd = try directory.openFile(fileName, [.writeOnly, .create, .truncate]) else { return }
        defer { fd.close() }
        let me = ProcessIdentity.current()
        do { try fd.writeAll("\(me.pid)@\(me.startTime)\n") } catch {
            throw GuardFailure("cannot write \(directory.path)/\(fileName): \(error)", errno: error)
        }
    }

    static func open(in directory: StateDirectory) {
        try? FileSystem.removeFile(fileName, relativeTo: directory.descriptor)
    }

    /// Whether a live kill-all holds the door closed; `names` is the directory's listing
    /// (the file is read only when it is there).
    static func isClosed(in directory: StateDirectory, names: [String]) -> Bool {
        guard names.contains(fileName), let bytes = try? directory.readFile(fileName) else { return false }
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first?.split(separator: "@") ?? []
        guard parts.count == 2, let pid = Int32(parts[0]), let start = UInt64(parts[1]) else { return false }
        return ProcessIdentity(pid: pid, startTime: start).isAlive
    }
}

/// The last `--kill-all` of a lane: who ran it and when (`kill-all.txt` in the state
/// directory). A run whose command dies of a signal after that moment names it.
struct KillAllMark: Sendable, Equatable {
    static let fileName = "kill-all.txt"
    var pid: Int32
    var at: WallTime
    var command: String

    func write(in directory: StateDirectory) throws(GuardFailure) {
        guard let fd = try directory.openFile(Self.fileName, [.writeOnly, .create, .truncate]) else { return }
        defer { fd.close() }
        do { try fd.writeAll("pid=\(pid)\nat=\(at)\ncommand=\(PercentEncoding.encode(command))\n") } catch {
            throw GuardFailure("cannot write \(directory.path)/\(Self.fileName): \(error)", errno: error)
        }
    }

    static func read(in directory: StateDirectory) -> KillAllMark? {
        guard let bytes = try? directory.readFile(fileName) else { return nil }
        var fields: [Substring: Substring] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            fields[line[..<equals]] = line[line.index(after: equals)...]
        }
        guard let pid = fields["pid"].flatMap({ Int32($0) }), let at = fields["at"].flatMap({ WallTime(parsing: $0) }),
              let command = fields["command"].flatMap({ PercentEncoding.decode($0) }) else { return nil }
        return KillAllMark(pid: pid, at: at, command: command)
    }
}
