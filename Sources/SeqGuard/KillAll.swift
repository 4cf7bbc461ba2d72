import Glibc
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
        let tool = configuration.toolName
        do {
            let ended = try run(configuration)
            if ended.isEmpty { print("\(tool): nothing to end") }
            for item in ended { print("\(tool): ended \(item.role) pid \(item.process.pid) '\(item.command)'") }
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
        for directory in directories {
            ended += try run(directory, killGrace: configuration.killGrace)
        }
        return ended
    }

    @available(*, noasync)
    static func run(_ directory: StateDirectory, killGrace: Double) throws(GuardFailure) -> [Ended] {
        let lock = ProjectLock(directory: directory)
        let queue = WaitQueue(directory: directory)
        let me = Processes.currentPid

        var ended: [ProcessIdentity: Ended] = [:]
        // Round 0 sends SIGTERM and waits up to the grace; later rounds SIGKILL what is left,
        // including anything that started meanwhile (a waiter that took the lock).
        for round in 0..<6 {
            let (claims, snapshot) = try directory.withMutex { () throws(GuardFailure) in (try lock.inspect(), try queue.read()) }
            var targets: [ProcessIdentity: Ended] = [:]
            let waiters = Set(snapshot.entries.map(\.process))
            for entry in snapshot.entries where entry.process.isAlive {
                targets[entry.process] = Ended(process: entry.process, role: "waiter", command: entry.command)
            }
            var roots: [ProcessIdentity: String] = [:]
            for claim in claims {
                let command = claim.record?.command ?? "?"
                if let record = claim.record {
                    roots[record.holder] = command
                    if let child = record.child { roots[child] = command }
                }
                // Waiters watching the lock hold its file open too; they are ended as waiters.
                if let owner = claim.ownerFile {
                    for process in Processes.holding(device: owner.device, inode: owner.inode) where !waiters.contains(process) {
                        roots[process] = command
                    }
                }
            }
            let table = Processes.all()
            for (root, command) in roots where root.pid != me && root.isAlive {
                targets[root] = Ended(process: root, role: "holder", command: command)
            }
            let rootPids = Set(roots.keys.filter(\.isAlive).map(\.pid))
            for process in Processes.descendants(of: rootPids, in: table) where process.pid != me {
                let identity = process.identity
                if targets[identity] == nil {
                    targets[identity] = Ended(process: identity, role: "holder's tree", command: process.command)
                }
            }
            if targets.isEmpty { break }
            let signal = round == 0 ? SIGTERM : SIGKILL
            // Waiters first, and gone before any holder is signalled: a waiter that saw the
            // holder die before its own signal came would take the lock and start its command.
            let waiterTargets = targets.filter { $0.value.role == "waiter" }
            for group in [waiterTargets, targets.filter { $0.value.role != "waiter" }] where !group.isEmpty {
                var watched: [FileDescriptor] = []
                for (identity, target) in group where Processes.signal(identity, signal) {
                    if signal == SIGTERM { Processes.signal(identity, SIGCONT) }
                    if ended[identity] == nil { ended[identity] = target }
                    if let fd = Processes.openPidfd(identity) { watched.append(fd) }
                }
                waitForExit(watched, seconds: round == 0 ? killGrace : 1)
                for fd in watched { fd.close() }
            }
        }
        // Whatever is left on disk has no live owner now.
        try directory.withMutex { () throws(GuardFailure) in
            for claim in try lock.inspect() where !claim.isLive { try lock.removeStale(claim) }
            let snapshot = try queue.read()
            let kept = snapshot.entries.filter(\.process.isAlive)
            if kept.count != snapshot.entries.count || !snapshot.rejectedLines.isEmpty { try queue.write(kept) }
        }
        return ended.values.sorted { $0.process.pid < $1.process.pid }
    }

    /// Waits until every pidfd is readable (its process has exited) or `seconds` pass.
    static func waitForExit(_ pidfds: [FileDescriptor], seconds: Double) {
        var pending = pidfds
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while !pending.isEmpty {
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 { return }
            let ready = Set(Poll.readable(pending, timeoutMilliseconds: Int32(clamping: left / 1_000_000 + 1)))
            pending = pending.enumerated().filter { !ready.contains($0.offset) }.map(\.element)
        }
    }
}
