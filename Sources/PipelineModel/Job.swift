import SeqDatabase
import SeqGuard
import SeqSystem

/// A job's place in its life: pending → claimed → running → success | failed | retrying | cancelled.
public enum JobStatus: String, Sendable, CaseIterable {
    case pending, claimed, running, success, failed, retrying, cancelled
}

/// A job's priority is a number (higher first): P0 2, P1 1, P2 0 (the default), P3 -1, or
/// any whole number. The queue's one `Priority` names three of them, as seqexec's levels do:
/// high is P0, normal P2, low P3. The same words for jobs, the CSV and recurring jobs.
extension Priority {
    public static let jobVocabulary = "P0 (first) to P3, high, normal, low, or a whole number (higher first)"

    /// The job number `text` names; nil if it names none.
    public static func jobNumber(_ text: String) -> Int? {
        let word = text.lowercased()
        if let level = Priority(rawValue: word) { return level.jobNumber }
        switch word {
        case "p0": return 2
        case "p1": return 1
        case "p2": return 0
        case "p3": return -1
        default:
            // What `jobWord` gives beyond the four levels: P0+N (N above P0), P3-N (N below P3).
            if word.hasPrefix("p0+"), let above = Int(word.dropFirst(3)), above > 0 { return 2 + above }
            if word.hasPrefix("p3-"), let below = Int(word.dropFirst(3)), below > 0 { return -1 - below }
            return Int(text)
        }
    }

    /// How a job's number is shown everywhere (lists, the page, JSON, the CSV): P0 to P3, which
    /// read in claim order (P0 first); a number beyond them as P0+N or P3-N.
    public static func jobWord(_ number: Int) -> String {
        switch number {
        case 2: "P0"
        case 1: "P1"
        case 0: "P2"
        case -1: "P3"
        case 3...: "P0+\(number - 2)"
        default: "P3-\(-1 - number)"
        }
    }

    /// This level as a job's number.
    public var jobNumber: Int {
        switch self {
        case .high: return 2
        case .normal: return 0
        case .low: return -1
        }
    }
}

/// A job as stored: its work (payload) and its progress.
public struct Job: Sendable {
    public var id: String
    public var account: String
    /// Flat string fields (video, caption, …) the steps' placeholders read.
    public var payload: [(String, String)] = []
    public var status = JobStatus.pending
    public var priority = 0
    public var worker: Int?
    public var device: String?
    public var claimedAt: Moment?
    public var completedAt: Moment?
    /// Attempts charged to the job itself (infrastructure failures and stops are not).
    public var attempts = 0
    public var maxAttempts = 3
    /// Every run of the job, whatever ended it: `{attempt}`, unique per run, and the attempt
    /// number everything shows (events, lists, the page, `show`), never reset.
    public var runs = 0
    /// Steps done, in order: a later run starts after them.
    public var progress = 0
    /// Runs that ended with the worker dead or the step over its memory limit.
    public var crashes = 0
    /// Infrastructure failures: a separate budget from `attempts`.
    public var infraAttempts = 0
    public var retryAt: Moment?
    public var error: String?
    public var errorType: String?

    /// The run by which the job's budget is spent, on the scale of `runs`: its `maxAttempts`
    /// plus the runs that were not charged (infrastructure failures, stops, and those before
    /// a `retry`, which gives a fresh budget), as Oban raises max_attempts on a snooze or a
    /// retry. So "attempt 5 of 7" counts one way everywhere.
    public var attemptLimit: Int { maxAttempts + max(0, runs - attempts) }

    /// "5 of 7": this run's number and the limit.
    public var attemptText: String { "\(runs) of \(attemptLimit)" }
    /// The device that gave up on this job after its graded recovery: another device takes
    /// it (this one only when no other is healthy).
    public var avoidDevice: String?
    /// The host whose worker holds its claim.
    public var host: String?
    /// When it was added (the store's clock).
    public var createdAt: Moment?

    public init(id: String, account: String) {
        self.id = id
        self.account = account
    }

    public func field(_ name: String) -> String? { payload.first { $0.0 == name }?.1 }
}

/// How a run of a job ended, as the worker reports it to the store.
public enum JobOutcome: Sendable {
    case success
    /// Permanent account trouble: the job fails now and the account is paused.
    case permanent(type: String, message: String)
    /// Device or server trouble: the job is retried later without charging it an attempt;
    /// the account's and the device's infrastructure counters go up.
    case infrastructure(message: String)
    /// Infrastructure trouble that outlived the device's recovery (server restart, device
    /// restart): as `infrastructure`, and the job goes to another device.
    case handOff(message: String)
    /// Anything else: retried with backoff until max_attempts.
    case retryable(message: String)
    /// The step's tree hit its memory limit: retried, and counted toward poison.
    case memory(message: String)
    /// Stopped before it finished (orchestrator shutting down): back to pending, uncharged.
    case stopped
    /// The job cannot run as defined (a placeholder its payload lacks): failed at once, the
    /// account untouched.
    case invalid(message: String)

    /// Its name in /metrics' `outcome` label.
    public var label: String {
        switch self {
        case .success: "success"
        case .permanent: "permanent"
        case .infrastructure: "infrastructure"
        case .handOff: "handoff"
        case .retryable: "retryable"
        case .memory: "memory"
        case .stopped: "stopped"
        case .invalid: "invalid"
        }
    }
}
