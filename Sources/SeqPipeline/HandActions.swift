import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem

/// The changes an operator asks by hand, from the terminal (`retry`, `cancel`, `account
/// resume`, `device pause|resume|release`) or the page's buttons: one place that makes them
/// and says what actually changed, so both say the same words and exit the same way.
public enum HandActions {
    /// What one change said: the line, and whether it is a failure (nothing changed because
    /// it could not: exit 1, HTTP 409 or 404).
    public struct Said: Sendable, Equatable {
        public var text: String
        /// 0 changed or already so, 1 refused, 2 missing (the CLI's exit 1; HTTP 409, 404).
        public var failure: Int

        public var httpStatus: Int { [0: 200, 1: 409][failure] ?? 404 }
    }

    public enum JobAction: String, Sendable, CaseIterable {
        case retry, cancel
        /// The statuses it changes.
        var from: String {
            switch self {
            case .retry: "a failed, cancelled or retrying job"
            case .cancel: "a pending, retrying or failed job"
            }
        }
    }

    /// Who asked, as events name them: the user at the terminal.
    public static var terminalUser: String {
        "\(Spawn.environmentValue("USER").flatMap { $0.isEmpty ? nil : $0 } ?? "uid \(Processes.userID)") at the terminal"
    }

    public static func job(_ action: JobAction, _ id: String, by: String, store: any JobStore) throws(StoreError) -> Said {
        words(action, id, try perform(action, id, by: by, store: store))
    }

    static func perform(_ action: JobAction, _ id: String, by: String, store: any JobStore) throws(StoreError) -> HandResult<JobStatus> {
        switch action {
        case .retry: try store.retry(id, by: by)
        case .cancel: try store.cancel(id, by: by)
        }
    }

    static func words(_ action: JobAction, _ id: String, _ result: HandResult<JobStatus>) -> Said {
        switch (action, result) {
        case (.retry, .changed(let from)):
            return Said(text: "job \(id) was \(from.rawValue); now pending, with a fresh budget of attempts", failure: 0)
        case (.cancel, .changed(let from)):
            return Said(text: "job \(id) was \(from.rawValue); now cancelled", failure: 0)
        case (_, .unchanged(let status)):
            return Said(text: "job \(id) was already \(status.rawValue); nothing changed", failure: 0)
        case (_, .refused(let status)) where status == .claimed || status == .running:
            return Said(text: "job \(id) is \(status.rawValue) and belongs to its worker; nothing changed (only \(action.from) can be \(action == .retry ? "retried" : "cancelled"); 'seqpipe stop-all' stops the run)", failure: 1)
        case (.cancel, .refused(let status)):
            return Said(text: "job \(id) has finished (\(status.rawValue)); there is nothing to cancel", failure: 1)
        case (.retry, .refused(let status)):
            return Said(text: "job \(id) is \(status.rawValue); nothing changed (only \(action.from) can be retried)", failure: 1)
        case (_, .missing):
            return Said(text: "no job '\(id)'; see 'seqpipe jobs'", failure: 2)
        }
    }

    /// `retry`/`cancel` over a filter: each job it matches, in one pass, and one line that
    /// counts what changed, what already was, and what could not.
    public static func jobs(_ action: JobAction, matching query: JobQuery, by: String, store: any JobStore) throws(StoreError) -> (lines: [Said], summary: Said) {
        let ids = try store.jobs(matching: query, limit: Int.max).jobs.map(\.id)
        var lines: [Said] = []
        var (changed, unchanged, refused) = (0, 0, 0)
        for id in ids {
            let result = try perform(action, id, by: by, store: store)
            switch result {
            case .changed: changed += 1
            case .unchanged: unchanged += 1
            case .refused, .missing: refused += 1
            }
            lines.append(words(action, id, result))
        }
        let verb = action == .retry ? "retried" : "cancelled"
        var summary = "\(verb) \(changed) of the \(ids.count) job\(ids.count == 1 ? "" : "s") matching \(describe(query))"
        if unchanged > 0 { summary += "; \(unchanged) already \(action == .retry ? "pending" : "cancelled")" }
        if refused > 0 { summary += "; \(refused) could not be \(verb)" }
        return (lines, Said(text: summary, failure: refused > 0 ? 1 : 0))
    }

    /// "status failed, account A" (or "every job").
    static func describe(_ query: JobQuery) -> String {
        guard !query.isEmpty else { return "every job" }
        return [("status", query.status), ("account", query.account), ("device", query.device), ("error", query.errorType), ("search", query.search)]
            .compactMap { name, value in value.flatMap { $0.isEmpty ? nil : "\(name) \($0)" } }.joined(separator: ", ")
    }

    public static func resumeAccount(_ name: String, by: String, store: any JobStore) throws(StoreError) -> Said {
        switch try store.resumeAccount(name, by: by) {
        case .changed(let from): Said(text: "account \(name) was \(from); resumed", failure: 0)
        case .unchanged, .refused: Said(text: "account \(name) was not paused or cooling down; nothing changed", failure: 0)
        case .missing: Said(text: "no account '\(name)'; see 'seqpipe account list'", failure: 2)
        }
    }

    public enum DeviceAction: String, Sendable, CaseIterable {
        case pause, resume, release
    }

    public static func device(_ action: DeviceAction, _ name: String, by: String, store: any JobStore) throws(StoreError) -> Said {
        let result: HandResult<String>
        switch action {
        case .pause: result = try store.pauseDevice(name, by: by)
        case .resume: result = try store.resumeDevice(name, by: by)
        case .release: result = try store.releaseDevice(name, by: by)
        }
        switch (action, result) {
        case (.pause, .changed):
            return Said(text: "device \(name) paused: its worker finishes the job it runs, then claims nothing until 'seqpipe device resume \(name)'", failure: 0)
        case (.resume, .changed(let from)):
            return Said(text: "device \(name) was \(from); resumed", failure: 0)
        case (.release, .changed(let from)):
            return Said(text: "device \(name) was \(from); released: its worker checks it now", failure: 0)
        case (_, .unchanged(let state)), (_, .refused(let state)):
            return Said(text: "device \(name) was \(state == "paused" ? "already paused" : state); nothing changed", failure: 0)
        case (_, .missing):
            return Said(text: "no device '\(name)'; see 'seqpipe device list'", failure: 2)
        }
    }
}
