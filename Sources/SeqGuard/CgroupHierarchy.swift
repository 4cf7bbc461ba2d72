import SeqSystem

/// Where this process's cgroups are: its own directory in each cgroup v1 controller's
/// hierarchy (mounted under /sys/fs/cgroup), and where runs go in the unified (v2) hierarchy.
enum CgroupHierarchy {
    static let mountRoot = "/sys/fs/cgroup"

    /// A controller's name in cgroup v1 ("io" was "blkio").
    static func v1Name(_ controller: String) -> String { controller == "io" ? "blkio" : controller }

    /// This process's own cgroup directory for v1 `controller`, when that hierarchy is mounted
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

    /// Where runs go in the unified hierarchy.
    struct Unified {
        /// This process's own cgroup.
        let home: String
        /// The cgroup runs are made under: the parent of `home` (the root's own, when `home`
        /// is the root), which this user may write.
        let parent: String
        /// `parent/seqguard`.
        let base: String
        /// The controllers `parent` may give its children.
        let controllers: Set<String>
    }

    /// Where runs go in the unified (v2) hierarchy, when it is mounted and this process may
    /// make cgroups beside its own; nil otherwise.
    static func unified() -> Unified? {
        guard let mount = unifiedMount(), let own = unifiedPath() else { return nil }
        let home = mount + (own == "/" ? "" : own)
        let parent = own == "/" ? home : String(home[..<(home.lastIndex(of: "/") ?? home.endIndex)])
        guard FileSystem.exists(home + "/cgroup.procs"), FileSystem.writeRefusal(parent) == nil,
              FileSystem.writeRefusal(parent + "/cgroup.procs") == nil else { return nil }
        let controllers = Set(RunCgroup.read(parent + "/cgroup.controllers").split(separator: " ").map(String.init))
        return Unified(home: home, parent: parent, base: parent + "/seqguard", controllers: controllers)
    }

    /// Where the unified hierarchy is mounted (its root: `/sys/fs/cgroup` where it is the only
    /// one, `/sys/fs/cgroup/unified` beside v1's).
    static func unifiedMount() -> String? {
        for line in RunCgroup.read("/proc/self/mountinfo").split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count >= 5, fields[3] == "/" { return String(fields[4]) }
        }
        return nil
    }

    /// This process's own cgroup in the unified hierarchy ("0::/PATH").
    static func unifiedPath() -> String? {
        RunCgroup.read("/proc/self/cgroup").split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }

    /// Why no hierarchy offers `controller` to this process, for the message.
    static func why(_ controller: String, unified: Unified?) -> String {
        let listed = RunCgroup.read("/proc/self/cgroup").split(separator: "\n").contains { line in
            line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).dropFirst().first?.split(separator: ",").contains(Substring(v1Name(controller))) == true
        }
        if listed { return "its v1 hierarchy is not writable by this user" }
        if let unified { return "the cgroup v2 parent \(unified.parent) does not offer it to its children" }
        if unifiedMount() != nil { return "the cgroup v2 parent of this process's cgroup is not writable by this user" }
        return "the kernel has no \(controller) hierarchy mounted"
    }
}
