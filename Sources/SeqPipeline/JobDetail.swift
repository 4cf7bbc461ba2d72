import PipelineStore
import PipelineModel
import SeqGuard

/// One job as `seqpipe show` and `/api/jobs/ID` give it: its fields, its events, and why it
/// waits. Read once; the page's JSON and the terminal's text are two renderings of it.
public struct JobDetail: Sendable {
    public var job: Job
    public var events: [Event]
    /// Why a pending or retrying job is not running yet; nil for any other.
    public var waiting: String?

    public static func read(_ job: Job, store: any JobStore, config: PipelineConfig, paths: PipelinePaths) throws(StoreError) -> JobDetail {
        var waiting: String?
        if job.status == .pending || job.status == .retrying {
            waiting = try PipelineStatus.read(store: store, config: config, paths: paths).reason(job)
        }
        return JobDetail(job: job, events: try store.events(job: job.id), waiting: waiting)
    }

    /// The job's own fields, in the order both renderings use: (name, value), nil when unset.
    var fields: [(String, String?)] {
        [("id", job.id), ("account", job.account), ("status", job.status.rawValue), ("priority", String(job.priority)),
         ("device", job.device), ("host", job.host), ("worker", job.worker.map(String.init)),
         ("attempts", String(job.attempts)), ("max_attempts", String(job.maxAttempts)), ("runs", String(job.runs)),
         ("progress", String(job.progress)), ("error", job.error), ("error_type", job.errorType),
         ("created_at", job.createdAt.map(isoTime)), ("claimed_at", job.claimedAt.map(isoTime)),
         ("completed_at", job.completedAt.map(isoTime)), ("retry_at", job.retryAt.map(isoTime))]
    }

    /// The numbers among `fields`, which JSON gives as numbers.
    static let numeric: Set<String> = ["priority", "worker", "attempts", "max_attempts", "runs", "progress"]

    /// A job's fields alone, as `jobs --json` and /api/jobs list them.
    public static func json(of job: Job) -> JSON.Value {
        JobDetail(job: job, events: [], waiting: nil).fieldsJSON
    }

    var fieldsJSON: JSON.Value {
        .object(fields.map { name, value in
            guard let value else { return (name, .null) }
            return (name, Self.numeric.contains(name) ? .integer(Int64(value) ?? 0) : .string(value))
        } + [("payload", .object(job.payload.map { ($0.0, .string($0.1)) }))])
    }

    public var json: JSON.Value {
        guard case .object(var object) = fieldsJSON else { return .null }
        object.append(("events", .array(events.map { event in
            .object([("at", .string(isoTime(event.at))), ("kind", .string(event.kind.rawValue)), ("device", event.device.map { .string($0) } ?? .null),
                     ("message", .string(event.message))])
        })))
        if let waiting { object.append(("waiting", .string(waiting))) }
        return .object(object)
    }

    public var text: String {
        var text = ""
        for case let (name, value?) in fields { text += "\(name): \(value)\n" }
        text += "payload:\(job.payload.isEmpty ? " -" : "")\n"
        for (field, value) in job.payload { text += "  \(field) = \(value)\n" }
        text += "events:\n"
        for event in events {
            text += "  \(isoTime(event.at))  \(event.kind.rawValue)\(event.device.map { "  \($0)" } ?? "")  \(event.message)\n"
        }
        if let waiting { text += "waiting: \(waiting)\n" }
        return text
    }
}
