import SeqSystem

/// A flock'd file in a state directory that a process takes and its commands inherit: held
/// exactly as long as any process that has its descriptor lives, whatever happened to the
/// one that took it. seqpipe fences each device and each job's attempt with one.
public struct LockFile: Sendable {
    public var directory: StateDirectory
    public var name: String

    public init(directory: StateDirectory, name: String) {
        self.directory = directory
        self.name = name
    }

    public var path: String { "\(directory.path)/\(name)" }

    /// Takes the lock without waiting: an open descriptor (close-on-exec; clear that for the
    /// commands that must hold it), or nil while another process holds it.
    /// - Throws: the errno when the file cannot be opened or created.
    public func tryAcquire() throws(Errno) -> FileDescriptor? {
        for _ in 0..<8 {
            let fd = try FileSystem.open(name, [.readWrite, .create, .noFollow], mode: 0o600, relativeTo: directory.descriptor)
            guard try fd.lock(exclusive: true, nonBlocking: true) else {
                fd.close()
                return nil
            }
            // The holder before us may have removed the file as it let go: a lock on a file
            // that no longer has this name fences nothing, so take the one that does.
            if let now = try? FileSystem.status(name, relativeTo: directory.descriptor), let mine = try? fd.status(),
               now.device == mine.device, now.inode == mine.inode {
                return fd
            }
            fd.close()
        }
        throw Errno.wouldBlock
    }

    /// Removes the file while holding it (through `held`), before letting go.
    public func remove(holding held: FileDescriptor) {
        try? FileSystem.removeFile(name, relativeTo: directory.descriptor)
    }

    /// The kernel's word: whether any process holds the lock now. A missing file is free.
    public var isHeld: Bool {
        guard let fd = try? FileSystem.open(name, [.readOnly, .noFollow], relativeTo: directory.descriptor) else { return false }
        defer { fd.close() }
        // A shared lock is granted only while nobody holds the exclusive one.
        guard let free = try? fd.lock(exclusive: false, nonBlocking: true) else { return true }
        return !free
    }

    /// The processes holding it: every process that has its locked descriptor.
    public func holders() -> [ProcessIdentity] {
        guard let status = try? FileSystem.status(name, relativeTo: directory.descriptor) else { return [] }
        return Processes.holding(device: status.device, inode: status.inode, lockedOnly: true)
    }

    /// Waits until no process holds any of `locks` or `seconds` pass, woken by the holders'
    /// exits. Returns whether all are free.
    @available(*, noasync)
    static func waitUntilFree(_ locks: [LockFile], seconds: Double) -> Bool {
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while true {
            let held = locks.filter(\.isHeld)
            if held.isEmpty { return true }
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 { return false }
            let pidfds = held.flatMap { $0.holders() }.compactMap { Processes.openPidfd($0) }
            defer { for fd in pidfds { fd.close() } }
            // No holder to wait on is a holder in between two looks (or one we may not see):
            // look again shortly.
            let cap: Int64 = pidfds.isEmpty ? 10 : 1000
            _ = Poll.readable(pidfds, timeoutMilliseconds: Int32(clamping: min(left / 1_000_000 + 1, cap)))
        }
    }

    /// What a fence found and did.
    public struct Fence: Sendable {
        /// The processes that held the locks when the fence began.
        public var holders: [Teardown.Target]
        public var report: Teardown.Report
        /// The kernel says every lock is free: nothing of the earlier holders can act any more.
        public var free: Bool
    }

    /// Ends every process holding any of `locks` (and what runs under them) through
    /// `teardown`, then waits up to `seconds` until the kernel says every lock is free.
    /// `sparing` are never signalled (the caller, live workers). `onHolders` hears of the
    /// holders before anything is signalled, so a caller can say what it is waiting for.
    @available(*, noasync)
    public static func fence(
        _ locks: [LockFile], teardown: Teardown, sparing: Set<ProcessIdentity> = [], seconds: Double,
        onHolders: ([Teardown.Target]) -> Void = { _ in }, reap: () -> Void = {}
    ) -> Fence {
        let me = ProcessIdentity.current()
        func lockHolders() -> [Teardown.Target] {
            var seen = Set<ProcessIdentity>()
            var targets: [Teardown.Target] = []
            for lock in locks {
                for holder in lock.holders() where holder != me && !sparing.contains(holder) && seen.insert(holder).inserted {
                    targets.append(Teardown.Target(holder, command: (try? ProcStat.read(holder.pid).command) ?? "?"))
                }
            }
            return targets
        }
        let holders = lockHolders()
        if holders.isEmpty && locks.allSatisfy({ !$0.isHeld }) {
            return Fence(holders: [], report: Teardown.Report(), free: true)
        }
        onHolders(holders)
        let finder = Teardown.TreeFinder(roots: [], extra: lockHolders)
        let report = teardown.run(find: { signal in finder.find(signal).filter { $0.process != me && !sparing.contains($0.process) } }, reap: reap)
        let free = waitUntilFree(locks, seconds: seconds)
        reap()
        return Fence(holders: holders, report: report, free: free)
    }
}
