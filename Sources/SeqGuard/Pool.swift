import SeqSystem

/// A pool of runs across projects (`--pool NAME`): its own memory and CPU limits, enforced by
/// the kernel on a parent cgroup every run of the pool is nested in, and its own slots, a lock
/// lane (`pool NAME`) each run takes outermost. "All agent builds on this machine share 8 GB
/// and 4 CPUs, 3 at a time" is one file, `<base>/pools/NAME`:
///
///     memory_mb=8192
///     cpus=4
///     slots=3
public struct Pool: Sendable, Equatable {
    public var name: String
    public var memoryBytes: Int64?
    public var cpus: Double?
    /// Runs of the pool at once, across projects (default 1).
    public var slots = 1

    /// The pool's file under the state base.
    public static func path(_ name: String, base: String?) -> String {
        (base ?? StateDirectory.defaultBase()) + "/pools/" + name
    }

    /// Reads pool `name`'s file.
    /// - Throws: `GuardFailure` (125) naming the file and the fix, for a missing file, a bad
    ///   name or a line it cannot take.
    public static func load(_ name: String, base: String?) throws(GuardFailure) -> Pool {
        guard !name.isEmpty, name.utf8.count <= 64,
              name.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }) else {
            throw GuardFailure("--pool needs a name of letters, digits, - and _ (at most 64), such as agents; not '\(name)'")
        }
        let file = path(name, base: base)
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(file) } catch {
            throw GuardFailure("no pool '\(name)': cannot read \(file) (\(error)); write it with lines such as memory_mb=8192, cpus=4, slots=3")
        }
        var pool = Pool(name: name)
        for (number, line) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingWhitespace
            if text.isEmpty || text.hasPrefix("#") { continue }
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            let place = "\(file):\(number + 1)"
            guard parts.count == 2 else { throw GuardFailure("\(place): '\(text)' is not KEY=VALUE; the keys are memory_mb, cpus, slots") }
            switch parts[0] {
            case "memory_mb": pool.memoryBytes = Int64(try Setting.wholeNumber(parts[1], place + " memory_mb", minimum: 1)) << 20
            case "cpus": pool.cpus = try Setting.cpus(parts[1], place + " cpus")
            case "slots": pool.slots = try Setting.wholeNumber(parts[1], place + " slots", minimum: 1)
            default: throw GuardFailure("\(place): unknown key '\(parts[0])'; the keys are memory_mb, cpus, slots")
            }
        }
        return pool
    }

    init(name: String) { self.name = name }

    /// The pool's lock lane: its slots are the pool's.
    var project: Project { Project(root: "pool \(name)", identity: "pool \(name)") }

    /// What the pool's parent cgroup enforces.
    var limits: KernelLimits {
        var limits = KernelLimits()
        limits.memoryBytes = memoryBytes
        limits.cpus = cpus
        return limits
    }
}
