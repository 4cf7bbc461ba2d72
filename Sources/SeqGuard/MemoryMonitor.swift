import SeqSystem

/// What the memory monitor adds up over a tree.
public enum MemoryMetric: String, Sendable, CaseIterable {
    /// Resident set size (stat field 24): cheap, but pages shared by forked workers count
    /// once per process.
    case rss
    /// Proportional set size (smaps_rollup): shared pages divided among their sharers.
    case pss
}

/// What the monitor ends when the tree reaches the limit.
public enum MemoryAction: String, Sendable, CaseIterable {
    /// The whole tree, deepest first; the run exits 137.
    case tree
    /// Only the tree's largest process; the rest runs on.
    case largest
}

public struct MemoryPolicy: Sendable {
    public var limitBytes: Int64
    /// The longest gap between samples, in seconds; nearer the limit they come faster.
    public var interval: Double
    public var metric: MemoryMetric
    public var action: MemoryAction

    public init(limitBytes: Int64, interval: Double, metric: MemoryMetric = .rss, action: MemoryAction = .tree) {
        self.limitBytes = limitBytes
        self.interval = interval
        self.metric = metric
        self.action = action
    }
}

/// One process's share of a sample.
public struct ProcessUsage: Sendable, Equatable {
    public var identity: ProcessIdentity
    public var command: String
    public var bytes: Int64

    public var description: String { "pid \(identity.pid) '\(command)' \(formatMegabytes(bytes))" }
}

/// One sample of a tree.
public struct TreeUsage: Sendable {
    public var total: Int64 = 0
    /// Of the total: tmpfs files and memfds the tree has open, once per file.
    public var sharedFiles: Int64 = 0
    public var processes: [ProcessUsage] = []

    public var biggest: ProcessUsage? { processes.max { $0.bytes < $1.bytes } }
}

/// Samples the whole tree under this process (a child subreaper, so orphans of the tree are
/// still under it) and decides when to sample next.
public struct MemoryMonitor: Sendable {
    public let policy: MemoryPolicy
    public let root: Int32
    /// The largest total seen, and the biggest process of that sample.
    public private(set) var peak: Int64 = 0
    public private(set) var peakBiggest: ProcessUsage?
    /// The most held in tmpfs files and memfds at once.
    public private(set) var peakSharedFiles: Int64 = 0
    public private(set) var samplesTaken = 0
    var previous: (time: Int64, bytes: Int64)?

    /// The shortest gap between samples: a tree growing 800 MB/s gains 8 MB in it.
    public static let minimumDelay = 0.01
    /// The first gap; each later start-up gap doubles until the interval is reached.
    public static let startupDelay = 0.02

    /// Children of `root` left out with their subtrees (see `ProcessTree.spared`).
    public var spared: Set<Int32> = []

    public init(policy: MemoryPolicy, root: Int32 = Processes.currentPid) {
        self.policy = policy
        self.root = root
    }

    /// Reads the tree from /proc. Processes in `excluding` (already being ended) are left out.
    public mutating func sample(excluding: Set<ProcessIdentity> = [], now: Int64 = Clock.monotonicNanoseconds()) -> TreeUsage {
        var usage = TreeUsage()
        var files = Set<[UInt64]>()
        for stat in Processes.descendants(of: [root], sparing: spared) where !excluding.contains(stat.identity) {
            var bytes: Int64
            switch policy.metric {
            case .rss: bytes = stat.residentPages * SystemMemory.pageSize
            case .pss:
                guard let pss = Processes.proportionalSetSize(stat.pid) else { continue }
                bytes = pss
            }
            // Memory in a tmpfs file or memfd is memory too, though no RSS shows it: once
            // per file, to the first process seen holding it.
            for file in Processes.sharedMemoryFiles(stat.pid) where files.insert([file.device, file.inode]).inserted {
                bytes += file.bytes
                usage.sharedFiles += file.bytes
            }
            usage.total += bytes
            usage.processes.append(ProcessUsage(identity: stat.identity, command: stat.command, bytes: bytes))
        }
        if usage.total > peak || peakBiggest == nil {
            peak = max(peak, usage.total)
            peakBiggest = usage.biggest ?? peakBiggest
        }
        peakSharedFiles = max(peakSharedFiles, usage.sharedFiles)
        samplesTaken += 1
        previous = (now, usage.total)
        return usage
    }

    /// Growth per second between the last two samples, if known.
    func rate(from earlier: (time: Int64, bytes: Int64)?, to usage: Int64, now: Int64) -> Double {
        guard let earlier, now > earlier.time else { return 0 }
        return Double(usage - earlier.bytes) / (Double(now - earlier.time) / 1e9)
    }

    /// Samples and answers the seconds until the next sample is due.
    public mutating func sampleAndSchedule(excluding: Set<ProcessIdentity> = []) -> (TreeUsage, next: Double) {
        let now = Clock.monotonicNanoseconds()
        let earlier = previous
        let usage = sample(excluding: excluding, now: now)
        let growth = rate(from: earlier, to: usage.total, now: now)
        let delay = Self.nextDelay(
            interval: policy.interval, limit: policy.limitBytes, usage: usage.total,
            bytesPerSecond: growth, samplesTaken: samplesTaken)
        return (usage, delay)
    }

    /// Seconds until the next sample. The interval is the ceiling: at start-up the gaps begin
    /// at 20 ms and double; nearer the limit they shrink with the headroom left; and a growing
    /// tree is sampled again before it can cover half its headroom at the rate just seen.
    public static func nextDelay(interval: Double, limit: Int64, usage: Int64, bytesPerSecond: Double, samplesTaken: Int) -> Double {
        let headroom = limit - usage
        if headroom <= 0 { return minimumDelay }
        var delay = interval
        delay = min(delay, startupDelay * Double(1 << min(samplesTaken, 20)))
        let fraction = Double(usage) / Double(limit)
        delay = min(delay, interval * max(0.02, 1 - fraction))
        if bytesPerSecond > 0 { delay = min(delay, 0.5 * Double(headroom) / bytesPerSecond) }
        return max(minimumDelay, delay)
    }
}

/// Memory for a person: `300 MB`, `1.5 GB` (binary units, as the limit is given in MiB).
public func formatMegabytes(_ bytes: Int64) -> String {
    let megabytes = Double(bytes) / 1_048_576
    if megabytes >= 10240 { return "\(Int((megabytes / 1024).rounded())) GB" }
    if megabytes >= 1024 { return "\(Double(Int(megabytes / 1024 * 10)) / 10) GB" }
    return "\(Int(megabytes.rounded())) MB"
}
