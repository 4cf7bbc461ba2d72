import SeqGuard
import SeqSystem

/// A job's place in its life: pending → claimed → running → success | failed | retrying | cancelled.
public enum JobStatus: String, Sendable, CaseIterable {
    case pending, claimed, running, success, failed, retrying, cancelled
}

/// One priority vocabulary for jobs, the CSV and recurring jobs: P0 (first) to P3, with
/// high, normal and low as names for P0, P2 and P3 (seqexec's levels), or a whole number
/// (higher first). A job's number: P0 2, P1 1, P2 0 (the default), P3 -1.
public enum JobPriority {
    public static let vocabulary = "P0 (first) to P3, high, normal, low, or a whole number (higher first)"

    public static func parse(_ text: String) -> Int? {
        switch text.lowercased() {
        case "p0", "high": return 2
        case "p1": return 1
        case "p2", "normal": return 0
        case "p3", "low": return -1
        default: return Int(text)
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
    public var claimedAt: Double?
    public var completedAt: Double?
    /// Attempts charged to the job itself (infrastructure failures and stops are not).
    public var attempts = 0
    public var maxAttempts = 3
    /// Every run of the job, whatever ended it: `{attempt}`, unique per run.
    public var runs = 0
    /// Steps done, in order: a later run starts after them.
    public var progress = 0
    /// Runs that ended with the worker dead or the step over its memory limit.
    public var crashes = 0
    /// Infrastructure failures: a separate budget from `attempts`.
    public var infraAttempts = 0
    public var retryAt: Double?
    public var error: String?
    public var errorType: String?
    /// The device that gave up on this job after its graded recovery: another device takes
    /// it (this one only when no other is healthy).
    public var avoidDevice: String?
    /// The host whose worker holds its claim.
    public var host: String?
    /// When it was added (the store's clock).
    public var createdAt: Double?

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
}
