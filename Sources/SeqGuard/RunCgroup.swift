import SeqSystem

/// What the kernel is asked to enforce for one run (`-m` given explicitly, `--cpus`,
/// `--cpu-weight`, `--io-weight`).
public struct KernelLimits: Sendable, Equatable {
    public var memoryBytes: Int64?
    public var cpus: Double?
    public var cpuWeight: Int?
    public var ioWeight: Int?

    public init() {}

    public var isEmpty: Bool { memoryBytes == nil && cpus == nil && cpuWeight == nil && ioWeight == nil }
}

/// One run's cgroups (cgroup v1: a directory in each controller's hierarchy it needs, made
/// under this process's own cgroup in a `seqguard` parent and named by the supervisor's
/// identity). The command's whole tree is placed in them before it execs: the supervisor
/// steps in, spawns, and steps back out, and every descendant inherits them, however it forks.
///
/// Memory: a threshold at the limit (an eventfd the kernel signals when the usage crosses it)
/// lets the supervisor end the tree gracefully at once; a hard ceiling a little above
/// (`memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` so swap is included) is the
/// backstop nothing can outrun. The kernel's usage counts every page the tree charges: its
/// processes' memory, tmpfs files it wrote and closed, swap, and the page cache of the files
/// it read, which the kernel reclaims at the ceiling; so the supervisor ends the tree on what
/// it holds (`memoryCharged`: the usage without that cache).
public final class RunCgroup {
    /// Per controller ("memory", "cpu", "blkio"): the run's directory and the one this
    /// process came from.
    let directories: [(controller: String, path: String, home: String)]
    public let limits: KernelLimits
    /// Signalled when the memory usage crosses the limit (either way).
    public let threshold: EventCounter?
    /// Held open for the threshold's registration.
    let usageFile: FileDescriptor?
    /// The run's pool, whose parent cgroup holds its memory limit.
    public internal(set) var pool: Pool?

    /// The ceiling above the limit: 3%, so a tree's peak (and its supervisor's few MB beside it)
    /// stays within 1.05 of the limit.
    public static func ceiling(_ limit: Int64) -> Int64 { limit + limit / 32 }

    init(directories: [(controller: String, path: String, home: String)], limits: KernelLimits, threshold: EventCounter?, usageFile: FileDescriptor?) {
        self.directories = directories
        self.limits = limits
        self.threshold = threshold
        self.usageFile = usageFile
    }

    deinit { usageFile?.close() }

    /// Makes the run's cgroups for `limits`, owned by `owner` (the supervisor). Nil when the
    /// limits ask for nothing.
    /// - Throws: `GuardFailure` naming what cannot be enforced here and the fix: a memory limit
    ///   without a usable memory controller is for the caller to fall back from; a CPU or I/O
    ///   limit is never silently ignored.
    /// - Parameter pool: the run's pool (`--pool`): its cgroup is nested in the pool's, which
    ///   enforces the pool's memory and CPU limits on all of its runs together.
    public static func make(_ limits: KernelLimits, owner: ProcessIdentity, pool: Pool? = nil) throws(GuardFailure) -> RunCgroup? {
        let poolLimits = pool?.limits ?? KernelLimits()
        guard !limits.isEmpty || !poolLimits.isEmpty else { return nil }
        var needed: [String] = []
        if limits.memoryBytes != nil || poolLimits.memoryBytes != nil { needed.append("memory") }
        if limits.cpus != nil || limits.cpuWeight != nil || poolLimits.cpus != nil { needed.append("cpu") }
        if limits.ioWeight != nil { needed.append("blkio") }
        let name = "run-\(owner.pid)-\(owner.startTime)"
        var made: [(controller: String, path: String, home: String)] = []
        for controller in needed {
            guard let home = CgroupHierarchy.own(controller) else {
                discard(made)
                throw GuardFailure("no cgroup v1 \(controller) controller this process may use (\(CgroupHierarchy.why(controller))); run as root on a cgroup v1 machine, or drop the option that needs it")
            }
            let parent = home + "/seqguard" + (pool.map { "/pool-\($0.name)" } ?? "")
            do throws(GuardFailure) {
                try makeRunDirectory(parent + "/" + name, in: parent, pool: pool, controller: controller)
            } catch {
                discard(made)
                throw error
            }
            made.append((controller, parent + "/" + name, home))
        }
        do {
            let cgroup = try configure(made, limits)
            cgroup.pool = pool
            return cgroup
        } catch {
            discard(made)
            throw error
        }
    }

    /// Removes cgroups made before a later step failed.
    static func discard(_ made: [(controller: String, path: String, home: String)]) {
        RunCgroup(directories: made, limits: KernelLimits(), threshold: nil, usageFile: nil).remove()
    }

    /// Makes `path` in `parent` (and the parents, which another run may be removing as it
    /// ends: tried again), writing the pool's limits into a pool's parent.
    static func makeRunDirectory(_ path: String, in parent: String, pool: Pool?, controller: String) throws(GuardFailure) {
        var attempt = 0
        while true {
            attempt += 1
            let seqguard = pool == nil ? parent : String(parent[..<(parent.lastIndex(of: "/") ?? parent.endIndex)])
            if !FileSystem.exists(seqguard) { try? FileSystem.makeDirectory(seqguard, mode: 0o755) }
            if let pool, !FileSystem.exists(parent) {
                try? FileSystem.makeDirectory(parent, mode: 0o755)
                try? writePoolLimits(pool, into: parent, controller: controller)
            }
            removeStale(in: parent)
            do throws(Errno) {
                try FileSystem.makeDirectory(path, mode: 0o755)
                return
            } catch where error == .noSuchFile && attempt < 5 {
                continue
            } catch {
                throw GuardFailure("cannot make the run's cgroup \(path): \(error); run as root on a cgroup v1 machine, or drop the kernel limits", errno: error)
            }
        }
    }

    /// The pool's memory ceiling (swap included) and CPU quota, on its parent cgroup.
    static func writePoolLimits(_ pool: Pool, into path: String, controller: String) throws(GuardFailure) {
        if controller == "memory", let memory = pool.memoryBytes { try writeMemoryCeiling(memory, into: path) }
        if controller == "cpu", let cpus = pool.cpus { try writeQuota(cpus, into: path) }
    }

    /// A hard memory ceiling, swap included where the kernel accounts it (swapaccount=1).
    static func writeMemoryCeiling(_ bytes: Int64, into path: String) throws(GuardFailure) {
        try write(path + "/memory.limit_in_bytes", String(bytes))
        if FileSystem.exists(path + "/memory.memsw.limit_in_bytes") { try? write(path + "/memory.memsw.limit_in_bytes", String(bytes)) }
    }

    /// A CFS quota of `cpus` CPUs per period.
    static func writeQuota(_ cpus: Double, into path: String) throws(GuardFailure) {
        let period = Int64(read(path + "/cpu.cfs_period_us")) ?? 100_000
        try write(path + "/cpu.cfs_quota_us", String(max(1000, Int64(cpus * Double(period)))))
    }

    /// Writes the limits into the new directories and registers the memory threshold.
    static func configure(_ made: [(controller: String, path: String, home: String)], _ limits: KernelLimits) throws(GuardFailure) -> RunCgroup {
        var threshold: EventCounter?
        var usageFile: FileDescriptor?
        for (controller, path, _) in made {
            switch controller {
            case "memory":
                guard let limit = limits.memoryBytes else { continue }
                try writeMemoryCeiling(ceiling(limit), into: path)
                do {
                    // One counter for both: the usage crossing the limit, and an OOM kill at the
                    // ceiling (after which the rest of the tree is ended at once).
                    let counter = try EventCounter()
                    let usage = try FileSystem.open(path + "/memory.usage_in_bytes", [.readOnly])
                    try write(path + "/cgroup.event_control", "\(counter.descriptor.rawValue) \(usage.rawValue) \(limit)")
                    let oom = try FileSystem.open(path + "/memory.oom_control", [.readOnly])
                    defer { oom.close() }
                    try write(path + "/cgroup.event_control", "\(counter.descriptor.rawValue) \(oom.rawValue)")
                    threshold = counter
                    usageFile = usage
                } catch {
                    throw GuardFailure("cannot watch the memory of the run's cgroup: \(error)")
                }
            case "cpu":
                if let cpus = limits.cpus { try writeQuota(cpus, into: path) }
                if let weight = limits.cpuWeight {
                    // systemd's mapping: CPUWeight 100 is cpu.shares 1024.
                    try write(path + "/cpu.shares", String(min(262_144, max(2, weight * 1024 / 100))))
                }
            case "blkio":
                guard let weight = limits.ioWeight else { continue }
                guard let file = ["blkio.bfq.weight", "blkio.weight"].first(where: { FileSystem.exists(path + "/" + $0) }) else {
                    throw GuardFailure("--io-weight cannot be enforced here: the blkio controller has no weight (the disks' I/O scheduler is neither BFQ nor CFQ); nothing was run")
                }
                // IOWeight 1..10000 (default 100) onto blkio's 10..1000 (default 500).
                try write(path + "/" + file, String(min(1000, max(10, weight * 5))))
            default:
                continue
            }
        }
        return RunCgroup(directories: made, limits: limits, threshold: threshold, usageFile: usageFile)
    }

    static func write(_ path: String, _ text: String) throws(GuardFailure) {
        do {
            let file = try FileSystem.open(path, [.writeOnly])
            defer { file.close() }
            try file.writeAll(text)
        } catch {
            throw GuardFailure("cannot write '\(text)' to \(path): \(error)", errno: error)
        }
    }

    static func read(_ path: String) -> String {
        let bytes = (try? FileSystem.readFile(path)) ?? []
        return String(String(decoding: bytes, as: UTF8.self).trimmingWhitespace)
    }

    /// Puts this process in the run's cgroups (what it spawns now is born there).
    public func enter() throws(GuardFailure) {
        for (_, path, _) in directories { try Self.write(path + "/cgroup.procs", String(Processes.currentPid)) }
    }

    /// Takes this process back to the cgroups it came from.
    public func leave() {
        for (_, _, home) in directories { try? Self.write(home + "/cgroup.procs", String(Processes.currentPid)) }
    }

    /// The processes in the run's cgroups now: the tree, however it forked.
    public func processes() -> Set<Int32> {
        var pids = Set<Int32>()
        for (_, path, _) in directories {
            for line in Self.read(path + "/cgroup.procs").split(separator: "\n") { if let pid = Int32(line) { pids.insert(pid) } }
        }
        return pids
    }

    var memoryDirectory: String? { directories.first { $0.controller == "memory" }?.path }

    /// The memory the tree has charged now, and at most so far (bytes).
    public var memoryUsage: Int64? { memoryDirectory.flatMap { Int64(Self.read($0 + "/memory.usage_in_bytes")) } }
    public var memoryPeak: Int64? { memoryDirectory.flatMap { Int64(Self.read($0 + "/memory.max_usage_in_bytes")) } }

    /// What the tree holds of the usage: its processes' memory, its tmpfs files and swap,
    /// without the page cache of files it read or wrote (the kernel reclaims that).
    public var memoryCharged: Int64? {
        guard let directory = memoryDirectory else { return nil }
        var fields: [Substring: Int64] = [:]
        for line in Self.read(directory + "/memory.stat").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int64(parts[1]) { fields[parts[0]] = value }
        }
        return (fields["total_rss"] ?? 0) + (fields["total_shmem"] ?? 0) + (fields["total_swap"] ?? 0)
    }

    /// The process of the cgroup with the most resident memory now, for the ending's line.
    public func biggestProcess() -> ProcessUsage? {
        processes().compactMap { pid -> ProcessUsage? in
            guard let stat = try? ProcStat.read(pid) else { return nil }
            return ProcessUsage(identity: stat.identity, command: stat.command, bytes: stat.residentPages * SystemMemory.pageSize)
        }.max { $0.bytes < $1.bytes }
    }

    /// Whether the run's own ceiling was reached (rather than its pool's): its failure count.
    public var ownCeilingReached: Bool {
        limits.memoryBytes != nil && (memoryDirectory.flatMap { Int64(Self.read($0 + "/memory.failcnt")) } ?? 0) > 0
    }

    static func oomKills(in directory: String) -> Int64 {
        for line in read(directory + "/memory.oom_control").split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int64(line.dropFirst(9)) ?? 0
        }
        return 0
    }

    /// How many processes of the run the kernel's OOM killer ended (at its ceiling or its
    /// pool's: the kill is counted where the process was).
    public var oomKills: Int64 {
        memoryDirectory.map(Self.oomKills(in:)) ?? 0
    }

    /// Removes the run's cgroups once nothing is left in them (a moment after the last
    /// process's exit, the kernel may still hold it: tried for up to a second).
    public func remove() {
        for (_, path, home) in directories.reversed() {
            let deadline = Clock.monotonicNanoseconds() + 1_000_000_000
            while (try? FileSystem.removeDirectory(path)) == nil, FileSystem.exists(path), Clock.monotonicNanoseconds() < deadline {
                _ = Poll.readable([], timeoutMilliseconds: 10)
            }
            // The pool's and the seqguard parent go too once no other run is in them (another
            // run's makes them again): nothing of seqexec stays in the hierarchy.
            var parent = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
            while parent.count > home.count, parent.hasPrefix(home + "/seqguard"), (try? FileSystem.removeDirectory(parent)) != nil {
                parent = String(parent[..<(parent.lastIndex(of: "/") ?? parent.endIndex)])
            }
        }
    }

    /// The processes in the cgroups of the run `supervisor` supervises (or supervised): its
    /// tree as the kernel keeps it, daemons that double-forked and orphans of a killed
    /// supervisor included. For `--kill-all`; empty where this process sees no cgroups.
    public static func processes(ofRunSupervisedBy supervisor: ProcessIdentity) -> Set<Int32> {
        let name = "run-\(supervisor.pid)-\(supervisor.startTime)"
        var pids = Set<Int32>()
        for parent in runParents().flatMap({ $0.pools + [$0.base] }) {
            for line in read(parent + "/" + name + "/cgroup.procs").split(separator: "\n") { if let pid = Int32(line) { pids.insert(pid) } }
        }
        return pids
    }

    /// Removes, in every hierarchy this process may use, the cgroups of runs whose supervisor
    /// is gone and that hold no process, then the pool and seqguard parents left empty
    /// (`--kill-all`, once it has ended a killed supervisor's tree).
    public static func removeStaleRuns() {
        for (base, pools) in runParents() {
            for parent in pools + [base] {
                removeStale(in: parent)
                try? FileSystem.removeDirectory(parent)
            }
        }
    }

    /// Where runs' cgroups are, in each hierarchy this process may use: its `seqguard`
    /// parent, and the pools' parents in it.
    static func runParents() -> [(base: String, pools: [String])] {
        ["memory", "cpu", "blkio"].compactMap { controller in
            guard let home = CgroupHierarchy.own(controller) else { return nil }
            let base = home + "/seqguard"
            let pools = ((try? FileSystem.contents(ofDirectory: base)) ?? []).filter { $0.hasPrefix("pool-") }
            return (base, pools.map { base + "/" + $0 })
        }
    }

    /// Removes the cgroups of runs whose supervisor is gone (SIGKILLed) and that hold no
    /// process any more.
    static func removeStale(in parent: String) {
        for name in (try? FileSystem.contents(ofDirectory: parent)) ?? [] where name.hasPrefix("run-") {
            let parts = name.split(separator: "-")
            guard parts.count == 3, let pid = Int32(parts[1]), let start = UInt64(parts[2]),
                  !ProcessIdentity(pid: pid, startTime: start).isAlive else { continue }
            if read(parent + "/" + name + "/cgroup.procs").isEmpty { try? FileSystem.removeDirectory(parent + "/" + name) }
        }
    }
}

/// Where this process's cgroups are (cgroup v1, mounted under /sys/fs/cgroup).
enum CgroupHierarchy {
    static let mountRoot = "/sys/fs/cgroup"

    /// This process's own cgroup directory for `controller`, when that hierarchy is mounted
    /// and this process may make cgroups in it; nil otherwise.
    static func own(_ controller: String) -> String? {
        for line in RunCgroup.read("/proc/self/cgroup").split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[1].split(separator: ",").contains(Substring(controller)) else { continue }
            let mount = mountRoot + "/" + fields[1]
            let root = FileSystem.exists(mount) ? mount : mountRoot + "/" + controller
            let path = root + (fields[2] == "/" ? "" : String(fields[2]))
            guard FileSystem.exists(path + "/cgroup.procs"), FileSystem.writeRefusal(path) == nil else { return nil }
            return path
        }
        return nil
    }

    /// Why `own(controller)` found none, for the message.
    static func why(_ controller: String) -> String {
        let listed = RunCgroup.read("/proc/self/cgroup").split(separator: "\n").contains { line in
            line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).dropFirst().first?.split(separator: ",").contains(Substring(controller)) == true
        }
        return listed ? "its hierarchy is not writable by this user" : "the kernel has no v1 \(controller) hierarchy (cgroup v2 delegation is not supported yet)"
    }
}
