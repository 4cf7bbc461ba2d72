import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem

/// Jobs finished over time, from the events: the dashboard's chart, /metrics, and the queue's
/// time to empty in `status`.
public enum Throughput {
    /// The outcome each event kind counts as.
    static let outcomes: [(kind: EventKind, outcome: String)] = [
        (.jobSuccess, "success"), (.jobRetrying, "retryable"), (.jobFailed, "permanent"), (.jobPoison, "permanent"),
        (.accountPaused, "permanent"), (.jobInfrastructure, "infrastructure"), (.jobHandoff, "infrastructure"),
        (.jobRequeued, "infrastructure"),
    ]
    public static let outcomeNames = ["success", "retryable", "permanent", "infrastructure"]
    /// The kinds that end a job for good (success or failed).
    static let finishing: Set<EventKind> = [.jobSuccess, .jobFailed, .jobPoison, .accountPaused]

    /// Per `step` minutes over the last `minutes` (the current bucket included), how many runs
    /// ended how; counted by the store.
    public static func series(store: any JobStore, minutes: Int, step: Int = 1, now: Moment) throws(StoreError) -> [(minute: Int64, counts: [String: Int])] {
        let step = max(1, step)
        let buckets = max(1, (minutes + step - 1) / step)
        let seconds = Double(step * 60)
        let first = Int64((now.seconds / seconds).rounded(.down)) - Int64(buckets - 1)
        let outcome = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.kind, $0.outcome) })
        var counted: [Int64: [String: Int]] = [:]
        for (bucket, kind, count) in try store.eventCounts(kinds: outcomes.map(\.kind), since: Moment(seconds: Double(first) * seconds), bucketSeconds: step * 60) {
            guard let name = outcome[kind] else { continue }
            counted[bucket, default: [:]][name, default: 0] += count
        }
        return (0..<Int64(buckets)).map { ((first + $0) * Int64(step), counted[first + $0] ?? [:]) }
    }

    /// The bucket, in minutes, for a chart over `minutes`: a few hundred bars at most.
    public static func step(forMinutes minutes: Int) -> Int {
        switch minutes {
        case ...180: 1
        case ...720: 5
        case ...1440: 10
        default: 60
        }
    }

    /// Jobs finished (success or failed) a minute over the last 15 minutes.
    public static func finishedPerMinute(store: any JobStore, now: Moment) throws(StoreError) -> Double {
        Double(try store.eventCounts(kinds: Array(finishing), since: now - 900, bucketSeconds: 900).reduce(0) { $0 + $1.count }) / 15
    }
}
