import PipelineStore
import PipelineModel
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

    /// Per minute over the last `minutes` (this one included), how many runs ended how.
    public static func series(store: any JobStore, minutes: Int, now: Moment) throws(StoreError) -> [(minute: Int64, counts: [String: Int])] {
        let since = Moment(seconds: (now.seconds / 60).rounded(.down) * 60 - Double(minutes - 1) * 60)
        let outcome = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.kind, $0.outcome) })
        var buckets: [Int64: [String: Int]] = [:]
        for (at, kind) in try store.eventTimes(kinds: outcomes.map(\.kind), since: since) {
            guard let name = outcome[kind] else { continue }
            buckets[Int64(at.seconds / 60), default: [:]][name, default: 0] += 1
        }
        let first = Int64(since.seconds / 60)
        return (0..<Int64(minutes)).map { (first + $0, buckets[first + $0] ?? [:]) }
    }

    /// Jobs finished (success or failed) a minute over the last 15 minutes.
    public static func finishedPerMinute(store: any JobStore, now: Moment) throws(StoreError) -> Double {
        Double(try store.eventTimes(kinds: Array(finishing), since: now - 900).count) / 15
    }
}
