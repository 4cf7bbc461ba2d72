import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard

/// One job as `seqpipe show` and `/api/jobs/ID` give it: its fields, its events, and why it
/// waits. Read once; the page's JSON and the terminal's text are two renderings of it.
public struct JobDetail: Sendable {
    public var job: Job
    public var events: [Event]
    /// Why a pending or retrying job is not running yet; nil for any other.
    public var waiting: String?
    /// The tails of its latest step runs' output, oldest first.
    public var outputs: [StepOutput] = []

    public static func read(_ job: Job, store: any JobStore, config: PipelineConfig, paths: PipelinePaths) throws(StoreError) -> JobDetail {
        var waiting: String?
        if job.status == .pending || job.status == .retrying {
            waiting = try PipelineStatus.read(store: store, config: config, paths: paths).reason(job)
        }
        return JobDetail(job: job, events: try store.events(job: job.id), waiting: waiting, outputs: try store.outputs(job: job.id))
    }

    /// The job's own fields, in the order both renderings use: (name, value), nil when unset.
    var fields: [(String, String?)] {
        [("id", job.id), ("account", job.account), ("status", job.status.rawValue), ("priority", Priority.jobWord(job.priority)),
         ("device", job.device), ("host", job.host), ("worker", job.worker.map(String.init)),
         ("attempt", String(job.runs)), ("attempt_limit", String(job.attemptLimit)),
         ("attempts", String(job.attempts)), ("max_attempts", String(job.maxAttempts)), ("runs", String(job.runs)),
         ("progress", String(job.progress)), ("error", job.error), ("error_type", job.errorType),
         ("created_at", job.createdAt.map(isoTime)), ("claimed_at", job.claimedAt.map(isoTime)),
         ("completed_at", job.completedAt.map(isoTime)), ("retry_at", job.retryAt.map(isoTime))]
    }

    /// Lines of each step run's output `show` prints.
    static let linesShown = 10

    /// The numbers among `fields`, which JSON gives as numbers.
    static let numeric: Set<String> = ["worker", "attempt", "attempt_limit", "attempts", "max_attempts", "runs", "progress"]

    /// The counters behind `attempt` that only JSON gives (for scripts of earlier versions):
    /// attempts charged since the last retry, the budget, and runs (the same as `attempt`).
    static let jsonOnly: Set<String> = ["attempts", "max_attempts", "runs"]

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
        object.append(("outputs", .array(outputs.map { output in
            .object([("at", .string(isoTime(output.at))), ("attempt", .integer(Int64(output.run))), ("step", .string(output.step)),
                     ("step_attempt", .integer(Int64(output.attempt))), ("ending", .string(output.ending)), ("text", .string(output.text))])
        })))
        if let waiting { object.append(("waiting", .string(waiting))) }
        return .object(object)
    }

    public var text: String {
        var text = ""
        for case let (name, value?) in fields where !Self.jsonOnly.contains(name) {
            text += name == "attempt_limit" ? "" : name == "attempt" ? "attempt: \(job.attemptText)\n" : "\(name): \(value)\n"
        }
        text += "payload:\(job.payload.isEmpty ? " -" : "")\n"
        for (field, value) in job.payload { text += "  \(field) = \(value)\n" }
        text += "events:\n"
        for event in events {
            text += "  \(isoTime(event.at))  \(event.kind.rawValue)\(event.device.map { "  \($0)" } ?? "")  \(event.message)\n"
        }
        if !outputs.isEmpty { text += "output (the last \(Self.linesShown) lines of each step run; show --json has up to \(StepOutput.kept / 1024) KiB):\n" }
        for output in outputs {
            text += "  attempt \(output.run), step \(output.step)\(output.attempt > 1 ? " (its try \(output.attempt))" : ""), \(output.ending), \(isoTime(output.at)):\n"
            for line in output.text.split(separator: "\n").suffix(Self.linesShown) { text += "    \(line)\n" }
        }
        if let waiting { text += "waiting: \(waiting)\n" }
        return text
    }
}
