import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// Delivers the store's pending notifications through the outlet. A failing notifier is
/// reported (an event per failure), retried with backoff, and given up after its attempts;
/// it never stops the pipeline. The orchestrator calls it from its loop.
public struct Notifier {
    public var store: any JobStore
    public var outlet: AlertOutlet
    public var runner: StepRunner

    public init(store: any JobStore, outlet: AlertOutlet, runner: StepRunner) {
        self.store = store
        self.outlet = outlet
        self.runner = runner
    }

    /// Delivers what is due (ten at a time); returns how many were delivered.
    @available(*, noasync)
    @discardableResult
    public func deliverDue(now: Moment) -> Int {
        guard outlet.isConfigured, let due = try? store.dueNotifications(now: now, limit: 10) else { return 0 }
        var delivered = 0
        for notification in due {
            let problem = deliver(notification)
            let attempt = notification.attempts + 1
            if problem == nil {
                delivered += 1
                try? store.recordDelivery(notification.id, delivered: true, error: nil, nextAt: nil, now: Moment.now())
                continue
            }
            let giveUp = attempt >= outlet.attempts
            let wait = min(outlet.backoffCapSeconds, outlet.backoffBaseSeconds * Double(1 << min(attempt - 1, 20)))
            try? store.recordDelivery(notification.id, delivered: false, error: problem, nextAt: giveUp ? nil : Moment.now() + wait, now: Moment.now())
            try? store.addEvent(Event(
                at: Moment.now(), kind: giveUp ? .notifyGaveUp : .notifyFailed, message:
                    "alert \(notification.key) (\(notification.state)): \(problem ?? "") (attempt \(attempt) of \(outlet.attempts)\(giveUp ? "; given up" : "; again in \(formatDuration(wait))"))"))
        }
        return delivered
    }

    /// One attempt: the file line, then the command. The reason it failed, or nil.
    @available(*, noasync)
    func deliver(_ notification: Notification) -> String? {
        if let file = outlet.file {
            let line = JSON.encode(.object([
                ("at", .string(isoTime(notification.at))), ("key", .string(notification.key)), ("kind", .string(notification.kind.rawValue)),
                ("state", .string(notification.state.rawValue)), ("message", .string(notification.message)),
            ])) + "\n"
            do { try FileSystem.appendFile(file, line) } catch { return "cannot append to \(file): \(error)" }
        }
        if let notify = outlet.notify {
            let values = Placeholders(values: [
                "kind": notification.kind.rawValue, "message": notification.message, "key": notification.key, "state": notification.state.rawValue,
            ])
            let argv: [String]
            do { argv = try values.fill(notify) } catch { return "alerts.notify: \(error.message)" }
            let result = runner.run(argv, timeout: 10, memoryLimitMegabytes: nil, label: "notify \(notification.key)")
            if !result.succeeded { return "\(GuardedCommand.displayCommand(argv)): \(result.endingText)\(result.lastLine.isEmpty ? "" : ": \(result.lastLine)")" }
        }
        return nil
    }
}
