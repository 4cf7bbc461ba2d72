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

/// Which interface of the kernel a cgroup directory is in.
enum CgroupVersion: Sendable {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory`, …).
    case v1
    /// The unified hierarchy: one directory holds every controller enabled for it.
    case v2
}

/// One directory of a run's cgroups: in a cgroup v1 controller's hierarchy, or in the unified
/// (v2) one, with every controller the run needs there.
struct CgroupDirectory {
    let version: CgroupVersion
    /// In cgroup v2's names: "memory", "cpu", "io".
    let controllers: [String]
    /// The run's own directory.
    let path: String
    /// Where this process was before it stepped in.
    let home: String
    /// The `seqguard` parent the run's (and its pool's) directory is in.
    let base: String
}

/// What wakes the supervisor when the kernel says the tree's memory crossed the limit.
public enum MemoryAlarm {
    /// cgroup v1: an eventfd the kernel signals at the usage threshold and at an OOM kill,
    /// registered through the usage file, which stays open for it.
    case threshold(EventCounter, usage: FileDescriptor)
    /// cgroup v2: `memory.events`, modified when its `high` or `oom_kill` count goes up.
    case events(FileChangeWatch)

    public var descriptor: FileDescriptor {
        switch self {
        case .threshold(let counter, _): counter.descriptor
        case .events(let watch): watch.descriptor
        }
    }

    /// Whether it went off since the last look (which forgets it).
    public func take() -> Bool {
        switch self {
        case .threshold(let counter, _): counter.take() > 0
        case .events(let watch): watch.take()
        }
    }
}

/// One run's cgroups, named by the supervisor's identity. cgroup v1: a directory in each
/// controller's hierarchy the run needs, in a `seqguard` parent under this process's own
/// cgroup. cgroup v2: one directory in a `seqguard` parent beside this process's own cgroup
/// (in its parent, which must be this user's: root's, or a delegated subtree's), since a v2
/// cgroup that holds processes cannot have controllers for children. The command's whole
/// tree is placed in them before it execs: the supervisor steps in, spawns, and steps back
/// out, and every descendant inherits them, however it forks.
///
/// Memory: the kernel tells the supervisor when the usage crosses the limit (v1: a threshold
/// eventfd; v2: `memory.high`, whose crossings count in `memory.events`), so it ends the tree
/// gracefully at once; a hard ceiling a little above (`memory.limit_in_bytes` and
/// `memory.memsw.limit_in_bytes`; `memory.max`, with `memory.swap.max` 0) is the backstop
/// nothing can outrun, swap included. The kernel's usage counts every page the tree charges:
/// its processes' memory, tmpfs files it wrote and closed, swap, and the page cache of the
/// files it read, which the kernel reclaims at the limit; so the supervisor ends the tree on
/// what it holds (`memoryCharged`: the usage without that cache).
public final class RunCgroup {
    let directories: [CgroupDirectory]
    public let limits: KernelLimits
    /// Goes off when the memory usage crosses the limit, or the kernel ends a process at the
    /// ceiling.
    public let alarm: MemoryAlarm?
    /// The run's pool, whose parent cgroup holds its memory limit.
    public internal(set) var pool: Pool?

    /// The ceiling above the limit: 3%, so a tree's peak (and its supervisor's few MB beside it)
    /// stays within 1.05 of the limit.
    public static func ceiling(_ limit: Int64) -> Int64 { limit + limit / 32 }

    init(directories: [CgroupDirectory], limits: KernelLimits, alarm: MemoryAlarm?) {
        self.directories = directories
        self.limits = limits
        self.alarm = alarm
    }

    deinit {
        if case .threshold(_, let usage) = alarm { usage.close() }
    }

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
        if limits.ioWeight != nil { needed.append("io") }
        let name = "run-\(owner.pid)-\(owner.startTime)"
        let poolName = pool.map { "pool-\($0.name)" }
        // Each controller where this process may use it: its own v1 hierarchy, else the unified one.
        var places: [CgroupDirectory] = []
        var unifiedControllers: [String] = []
        let unified = CgroupHierarchy.unified()
        for controller in needed {
            if let home = CgroupHierarchy.own(CgroupHierarchy.v1Name(controller)) {
                let base = home + "/seqguard"
                let parent = poolName.map { base + "/" + $0 } ?? base
                places.append(CgroupDirectory(version: .v1, controllers: [controller], path: parent + "/" + name, home: home, base: base))
            } else if let unified, unified.controllers.contains(controller) {
                unifiedControllers.append(controller)
            } else {
                throw GuardFailure("no cgroup \(controller) controller this process may use (\(CgroupHierarchy.why(controller, unified: unified))); run as root, or from a cgroup v2 subtree delegated to this user, or drop the option that needs it")
            }
        }
        if let unified, !unifiedControllers.isEmpty {
            let parent = poolName.map { unified.base + "/" + $0 } ?? unified.base
            places.append(CgroupDirectory(version: .v2, controllers: unifiedControllers, path: parent + "/" + name, home: unified.home, base: unified.base))
        }
        var made: [CgroupDirectory] = []
        do throws(GuardFailure) {
            for place in places {
                try makeRunDirectory(place, pool: pool, unifiedParent: unified?.parent)
                made.append(place)
            }
            let cgroup = try configure(made, limits)
            cgroup.pool = pool
            return cgroup
        } catch {
            discard(made)
            throw error
        }
    }

    /// Removes cgroups made before a later step failed.
    static func discard(_ made: [CgroupDirectory]) {
        RunCgroup(directories: made, limits: KernelLimits(), alarm: nil).remove()
    }

    /// Makes the run's directory, with its `seqguard` parent and its pool's (which another run
    /// may be removing as it ends: tried again), writing the pool's limits into a new pool's
    /// parent. In cgroup v2 each level above the run first gets the controllers for its children.
    static func makeRunDirectory(_ place: CgroupDirectory, pool: Pool?, unifiedParent: String?) throws(GuardFailure) {
        let parent = String(place.path[..<(place.path.lastIndex(of: "/") ?? place.path.endIndex)])
        var attempt = 0
        while true {
            attempt += 1
            do throws(Errno) {
                if place.version == .v2, let unifiedParent { try enable(place.controllers, in: unifiedParent) }
                if !FileSystem.exists(place.base) { try? FileSystem.makeDirectory(place.base, mode: 0o755) }
                if place.version == .v2 { try enable(place.controllers, in: place.base) }
                if let pool {
                    if !FileSystem.exists(parent) {
                        try? FileSystem.makeDirectory(parent, mode: 0o755)
                        if place.version == .v2 { try enable(place.controllers, in: parent) }
                        try? writePoolLimits(pool, into: parent, place)
                    } else if place.version == .v2 {
                        try enable(place.controllers, in: parent)
                    }
                }
                removeStale(in: parent)
                try FileSystem.makeDirectory(place.path, mode: 0o755)
                return
            } catch where error == .noSuchFile && attempt < 5 {
                continue
            } catch where error == .busy {
                throw GuardFailure("cannot enable cgroup v2's \(place.controllers.joined(separator: ", ")) controller for \(place.path): a cgroup above it holds processes of its own (cgroup v2 gives controllers only to cgroups whose parent holds none); run seqexec from a leaf cgroup of a delegated subtree (systemd: Delegate=yes), or drop the kernel limits", errno: error)
            } catch {
                throw GuardFailure("cannot make the run's cgroup \(place.path): \(error); run as root, or from a cgroup v2 subtree delegated to this user, or drop the kernel limits", errno: error)
            }
        }
    }

    /// Enables `controllers` for the children of cgroup v2 directory `path` (those not yet).
    static func enable(_ controllers: [String], in path: String) throws(Errno) {
        let enabled = read(path + "/cgroup.subtree_control").split(separator: " ").map(String.init)
        let missing = controllers.filter { !enabled.contains($0) }
        guard !missing.isEmpty else { return }
        let file = try FileSystem.open(path + "/cgroup.subtree_control", [.writeOnly])
        defer { file.close() }
        try file.writeAll(missing.map { "+" + $0 }.joined(separator: " "))
    }

    /// The pool's memory ceiling (swap included) and CPU quota, on its parent cgroup.
    static func writePoolLimits(_ pool: Pool, into path: String, _ place: CgroupDirectory) throws(GuardFailure) {
        if place.controllers.contains("memory"), let memory = pool.memoryBytes { try writeMemoryCeiling(memory, into: path, place.version) }
        if place.controllers.contains("cpu"), let cpus = pool.cpus { try writeQuota(cpus, into: path, place.version) }
    }

    /// A hard memory ceiling, swap included: v1 counts memory and swap together where the
    /// kernel accounts swap (swapaccount=1); v2 counts them apart, so the run may not swap.
    static func writeMemoryCeiling(_ bytes: Int64, into path: String, _ version: CgroupVersion) throws(GuardFailure) {
        switch version {
        case .v1:
            try write(path + "/memory.limit_in_bytes", String(bytes))
            if FileSystem.exists(path + "/memory.memsw.limit_in_bytes") { try? write(path + "/memory.memsw.limit_in_bytes", String(bytes)) }
        case .v2:
            try write(path + "/memory.max", String(bytes))
            if FileSystem.exists(path + "/memory.swap.max") { try? write(path + "/memory.swap.max", "0") }
        }
    }

    /// A CFS quota of `cpus` CPUs per period.
    static func writeQuota(_ cpus: Double, into path: String, _ version: CgroupVersion) throws(GuardFailure) {
        switch version {
        case .v1:
            let period = Int64(read(path + "/cpu.cfs_period_us")) ?? 100_000
            try write(path + "/cpu.cfs_quota_us", String(max(1000, Int64(cpus * Double(period)))))
        case .v2:
            let period = Int64(read(path + "/cpu.max").split(separator: " ").last ?? "") ?? 100_000
            try write(path + "/cpu.max", "\(max(1000, Int64(cpus * Double(period)))) \(period)")
        }
    }

    /// Writes the limits into the new directories and sets up the memory alarm.
    static func configure(_ made: [CgroupDirectory], _ limits: KernelLimits) throws(GuardFailure) -> RunCgroup {
        var alarm: MemoryAlarm?
        for place in made {
            let path = place.path
            for controller in place.controllers {
                switch controller {
                case "memory":
                    guard let limit = limits.memoryBytes else { continue }
                    try writeMemoryCeiling(ceiling(limit), into: path, place.version)
                    alarm = try memoryAlarm(path, limit: limit, place.version)
                case "cpu":
                    if let cpus = limits.cpus { try writeQuota(cpus, into: path, place.version) }
                    if let weight = limits.cpuWeight {
                        switch place.version {
                        // systemd's mapping: CPUWeight 100 is cpu.shares 1024.
                        case .v1: try write(path + "/cpu.shares", String(min(262_144, max(2, weight * 1024 / 100))))
                        case .v2: try write(path + "/cpu.weight", String(weight))
                        }
                    }
                case "io":
                    guard let weight = limits.ioWeight else { continue }
                    try writeIOWeight(weight, into: path, place.version)
                default:
                    continue
                }
            }
        }
        return RunCgroup(directories: made, limits: limits, alarm: alarm)
    }

    /// The kernel's word when the usage crosses `limit`. v1: one eventfd for both the usage
    /// crossing the limit and an OOM kill at the ceiling (after which the rest of the tree is
    /// ended at once). v2: `memory.high` at the limit (the kernel also holds the tree back
    /// there, reclaiming and slowing it), and a watch on `memory.events`, which counts both.
    static func memoryAlarm(_ path: String, limit: Int64, _ version: CgroupVersion) throws(GuardFailure) -> MemoryAlarm {
        do {
            switch version {
            case .v1:
                let counter = try EventCounter()
                let usage = try FileSystem.open(path + "/memory.usage_in_bytes", [.readOnly])
                do {
                    try write(path + "/cgroup.event_control", "\(counter.descriptor.rawValue) \(usage.rawValue) \(limit)")
                    let oom = try FileSystem.open(path + "/memory.oom_control", [.readOnly])
                    defer { oom.close() }
                    try write(path + "/cgroup.event_control", "\(counter.descriptor.rawValue) \(oom.rawValue)")
                } catch {
                    usage.close()
                    throw error
                }
                return .threshold(counter, usage: usage)
            case .v2:
                try write(path + "/memory.high", String(limit))
                return .events(try FileChangeWatch(path + "/memory.events"))
            }
        } catch {
            throw GuardFailure("cannot watch the memory of the run's cgroup: \(error)")
        }
    }

    /// IOWeight 1..10000 (default 100), as the kernel has it: v2's `io.weight` takes it as it
    /// is; BFQ's weights (v1, and v2's `io.bfq.weight`) are 1..1000, and v1's CFQ 10..1000
    /// (default 500).
    static func writeIOWeight(_ weight: Int, into path: String, _ version: CgroupVersion) throws(GuardFailure) {
        let choices: [(file: String, value: String)] = switch version {
        case .v1: [("blkio.bfq.weight", String(min(1000, max(10, weight * 5)))), ("blkio.weight", String(min(1000, max(10, weight * 5))))]
        case .v2: [("io.weight", "default \(weight)"), ("io.bfq.weight", String(min(1000, weight)))]
        }
        guard let choice = choices.first(where: { FileSystem.exists(path + "/" + $0.file) }) else {
            let controller = version == .v1 ? "blkio" : "io"
            throw GuardFailure("--io-weight cannot be enforced here: the \(controller) controller has no weight (the disks' I/O scheduler is neither BFQ nor CFQ, and no io.cost); nothing was run")
        }
        try write(path + "/" + choice.file, choice.value)
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

    /// The `KEY VALUE` lines of a cgroup file (`memory.stat`, `memory.events`, `memory.oom_control`).
    static func fields(_ path: String) -> [Substring: Int64] {
        var fields: [Substring: Int64] = [:]
        for line in read(path).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int64(parts[1]) { fields[parts[0]] = value }
        }
        return fields
    }

    /// Puts this process in the run's cgroups (what it spawns now is born there).
    public func enter() throws(GuardFailure) {
        for directory in directories { try Self.write(directory.path + "/cgroup.procs", String(Processes.currentPid)) }
    }

    /// Takes this process back to the cgroups it came from.
    public func leave() {
        for directory in directories { try? Self.write(directory.home + "/cgroup.procs", String(Processes.currentPid)) }
    }

    /// The processes in the run's cgroups now: the tree, however it forked.
    public func processes() -> Set<Int32> {
        directories.reduce(into: Set<Int32>()) { pids, directory in pids.formUnion(Self.members(directory.path)) }
    }

    static func members(_ path: String) -> Set<Int32> {
        Set(read(path + "/cgroup.procs").split(separator: "\n").compactMap { Int32($0) })
    }

    var memoryDirectory: CgroupDirectory? { directories.first { $0.controllers.contains("memory") } }

    /// A file of the memory directory, by its name in the run's cgroup version.
    func memoryFile(v1: String, v2: String) -> String? {
        memoryDirectory.map { $0.path + "/" + ($0.version == .v1 ? v1 : v2) }
    }

    /// The memory the tree has charged now, and at most so far (bytes; v2 kernels before 5.19
    /// keep no peak).
    public var memoryUsage: Int64? { memoryFile(v1: "memory.usage_in_bytes", v2: "memory.current").flatMap { Int64(Self.read($0)) } }
    public var memoryPeak: Int64? { memoryFile(v1: "memory.max_usage_in_bytes", v2: "memory.peak").flatMap { Int64(Self.read($0)) } }

    /// What the tree holds of the usage: its processes' memory, its tmpfs files and swap,
    /// without the page cache of files it read or wrote (the kernel reclaims that).
    public var memoryCharged: Int64? {
        guard let directory = memoryDirectory else { return nil }
        let stat = Self.fields(directory.path + "/memory.stat")
        switch directory.version {
        case .v1: return (stat["total_rss"] ?? 0) + (stat["total_shmem"] ?? 0) + (stat["total_swap"] ?? 0)
        case .v2: return (stat["anon"] ?? 0) + (stat["shmem"] ?? 0) + (Int64(Self.read(directory.path + "/memory.swap.current")) ?? 0)
        }
    }

    /// The process of the cgroup with the most resident memory now, for the ending's line.
    public func biggestProcess() -> ProcessUsage? {
        processes().compactMap { pid -> ProcessUsage? in
            guard let stat = try? ProcStat.read(pid) else { return nil }
            return ProcessUsage(identity: stat.identity, command: stat.command, bytes: stat.residentPages * SystemMemory.pageSize)
        }.max { $0.bytes < $1.bytes }
    }

    /// Whether the run's own ceiling was reached (rather than its pool's): its failure count
    /// (v1), its `max` events (v2).
    public var ownCeilingReached: Bool {
        guard limits.memoryBytes != nil, let directory = memoryDirectory else { return false }
        switch directory.version {
        case .v1: return (Int64(Self.read(directory.path + "/memory.failcnt")) ?? 0) > 0
        case .v2: return (Self.fields(directory.path + "/memory.events")["max"] ?? 0) > 0
        }
    }

    /// How many processes of the run the kernel's OOM killer ended (at its ceiling or its
    /// pool's: the kill is counted where the process was).
    public var oomKills: Int64 {
        guard let directory = memoryDirectory else { return 0 }
        switch directory.version {
        case .v1: return Self.fields(directory.path + "/memory.oom_control")["oom_kill"] ?? 0
        case .v2: return Self.fields(directory.path + "/memory.events")["oom_kill"] ?? 0
        }
    }

    /// Removes the run's cgroups once nothing is left in them (a moment after the last
    /// process's exit, the kernel may still hold it: tried for up to a second).
    public func remove() {
        for directory in directories.reversed() {
            let path = directory.path
            let deadline = Clock.monotonicNanoseconds() + 1_000_000_000
            while (try? FileSystem.removeDirectory(path)) == nil, FileSystem.exists(path), Clock.monotonicNanoseconds() < deadline {
                _ = Poll.readable([], timeoutMilliseconds: 10)
            }
            Self.removeEmptyParents(of: path, base: directory.base)
        }
    }

    /// The pool's and the seqguard parent go too once no other run is in them (another
    /// run's makes them again): nothing of seqexec stays in the hierarchy.
    static func removeEmptyParents(of path: String, base: String) {
        var parent = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        while parent.hasPrefix(base), (try? FileSystem.removeDirectory(parent)) != nil {
            parent = String(parent[..<(parent.lastIndex(of: "/") ?? parent.endIndex)])
        }
    }

    /// The processes in the cgroups of the run `supervisor` supervises (or supervised): its
    /// tree as the kernel keeps it, daemons that double-forked and orphans of a killed
    /// supervisor included. For `--kill-all`; empty where this process sees no cgroups.
    public static func processes(ofRunSupervisedBy supervisor: ProcessIdentity) -> Set<Int32> {
        runDirectories(ofRunSupervisedBy: supervisor).reduce(into: Set<Int32>()) { pids, path in pids.formUnion(members(path)) }
    }

    /// Ends at once whatever is still in the cgroups of the run `supervisor` supervised, by the
    /// kernel's own hand where it has one (v2's `cgroup.kill`, which no fork can outrun), else
    /// by SIGKILL to each; then removes them. `--kill-all`'s last sweep, after its teardown.
    public static func killLeftovers(ofRunSupervisedBy supervisor: ProcessIdentity) {
        guard !supervisor.isAlive else { return }
        for path in runDirectories(ofRunSupervisedBy: supervisor) {
            let deadline = Clock.monotonicNanoseconds() + 1_000_000_000
            while !members(path).isEmpty, Clock.monotonicNanoseconds() < deadline {
                if FileSystem.exists(path + "/cgroup.kill") {
                    try? write(path + "/cgroup.kill", "1")
                } else {
                    for pid in members(path) { Processes.signalChild(pid, .kill) }
                }
                _ = Poll.readable([], timeoutMilliseconds: 10)
            }
            try? FileSystem.removeDirectory(path)
        }
    }

    /// The directories of `supervisor`'s run in every hierarchy this process may use.
    static func runDirectories(ofRunSupervisedBy supervisor: ProcessIdentity) -> [String] {
        let name = "run-\(supervisor.pid)-\(supervisor.startTime)"
        return runParents().flatMap { $0.pools + [$0.base] }.map { $0 + "/" + name }.filter(FileSystem.exists)
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
        var bases = ["memory", "cpu", "blkio"].compactMap { CgroupHierarchy.own($0).map { $0 + "/seqguard" } }
        if let unified = CgroupHierarchy.unified() { bases.append(unified.base) }
        return bases.map { base in
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
            if members(parent + "/" + name).isEmpty { try? FileSystem.removeDirectory(parent + "/" + name) }
        }
    }
}
