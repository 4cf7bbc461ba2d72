import PipelineModel
import SeqDatabase

/// A family of cumulative counts that /metrics shows: a counter (how many times something
/// happened) or a histogram (how long it took, in buckets), in Prometheus's sense and with
/// its names and units. Counted in the store, in the transaction of what it counts, so a count
/// never runs ahead of the jobs it counts, and kept for ever: a counter only grows.
public struct CounterFamily: Sendable, Equatable {
    public let name: String
    public let help: String
    /// A histogram's upper bounds in seconds (+Inf is added); nil for a counter.
    public let bounds: [Double]?

    public var isHistogram: Bool { bounds != nil }

    /// The bucket `value` falls in, as SQL: the index of the first bound it is not above
    /// (the last is +Inf), as `Tally.observe` computes it.
    func bucketSQL(of value: String) -> String {
        let bounds = self.bounds ?? []
        return "CASE " + bounds.enumerated().map { "WHEN \(value) <= \($0.element) THEN \($0.offset)" }.joined(separator: " ") + " ELSE \(bounds.count) END"
    }

    /// Upper bounds for durations from a tenth of a second to four hours.
    static let durationBounds: [Double] = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400]

    public static let claims = CounterFamily(name: "seqpipe_claims_total", help: "Claims of jobs by workers, on every host.", bounds: nil)
    public static let stepAttempts = CounterFamily(
        name: "seqpipe_step_attempts_total", help: "Runs of a step's command, by step and outcome (success or failure).", bounds: nil)
    public static let attempts = CounterFamily(
        name: "seqpipe_job_attempts_total", help: "Attempts of jobs that ended, by outcome (lost: its worker or run died).", bounds: nil)
    public static let finished = CounterFamily(
        name: "seqpipe_jobs_finished_total", help: "Jobs that reached a final state, by outcome (success or failed).", bounds: nil)
    public static let claimWait = CounterFamily(
        name: "seqpipe_job_claim_wait_seconds", help: "Time from a job's creation to its first claim.",
        bounds: durationBounds)
    public static let attemptDuration = CounterFamily(
        name: "seqpipe_job_attempt_duration_seconds", help: "Time from a job's claim to its attempt's end.", bounds: durationBounds)
    public static let stepDuration = CounterFamily(
        name: "seqpipe_step_duration_seconds", help: "Time a step that completed took.", bounds: durationBounds)

    /// Every family, in the order /metrics shows them.
    public static let all: [CounterFamily] = [.claims, .attempts, .finished, .stepAttempts, .claimWait, .attemptDuration, .stepDuration]
}

/// One stored count: a family, its label set (Prometheus text, sorted by name), a bucket
/// (-1 for a counter) and the count and sum of what fell in it.
public struct CounterSample: Sendable, Equatable {
    public var family: String
    public var labels: String
    public var bucket: Int
    public var count: Int64
    public var sum: Double
}

/// The Prometheus text format's rules for label sets.
public enum PrometheusText {
    /// A label value as the format wants it: backslash, double quote and newline escaped.
    public static func escaped(_ value: String) -> String { escaping(value, ["\\": "\\\\", "\"": "\\\"", "\n": "\\n"]) }

    /// `a="1",b="2"`, by label name.
    public static func labels(_ pairs: [(String, String)]) -> String {
        pairs.sorted { $0.0 < $1.0 }.map { "\($0.0)=\"\(escaped($0.1))\"" }.joined(separator: ",")
    }
}

/// What one write adds to the counts: written with it in one statement (one round trip to a
/// PostgreSQL server, however many families it touches).
struct Tally {
    var rows: [(family: String, labels: String, bucket: Int, count: Int, sum: Double)] = []

    /// One more of `family` with `labels`.
    mutating func count(_ family: CounterFamily, _ labels: [(String, String)]) {
        rows.append((family.name, PrometheusText.labels(labels), -1, 1, 0))
    }

    /// One observation of `seconds` in `family`'s histogram.
    mutating func observe(_ family: CounterFamily, _ labels: [(String, String)], seconds: Double) {
        let bounds = family.bounds ?? []
        let value = max(0, seconds)
        rows.append((family.name, PrometheusText.labels(labels), bounds.firstIndex { value <= $0 } ?? bounds.count, 1, value))
    }
}

extension SQLJobStore {
    /// Adds `tally` to the stored counts. Inside the caller's transaction.
    func record(_ tally: Tally) throws(StoreError) {
        guard !tally.rows.isEmpty else { return }
        let statement = tallyStatement(tally, firstParameter: 1, from: nil)
        try connection.run(statement.sql, statement.values)
    }

    /// The upsert of `tally`'s rows, its parameters numbered from `first`; with `from`, the
    /// rows are written only when that CTE has a row (PostgreSQL: part of one statement).
    func tallyStatement(_ tally: Tally, firstParameter first: Int, from gate: String?) -> (sql: String, values: [SQLValue]) {
        var values: [SQLValue] = []
        var tuples: [String] = []
        for row in tally.rows {
            let start = first + values.count
            values += [.text(row.family), .text(row.labels), .integer(Int64(row.bucket)), .integer(Int64(row.count)), .real(row.sum)]
            tuples.append("(" + (0..<5).map { "?\(start + $0)" }.joined(separator: ", ") + ")")
        }
        let rows = gate.map { "SELECT v.* FROM (VALUES \(tuples.joined(separator: ", "))) AS v(family, labels, bucket, count, sum), \($0)" }
            ?? "VALUES \(tuples.joined(separator: ", "))"
        return ("""
            INSERT INTO counters(family, labels, bucket, count, sum) \(rows)
            ON CONFLICT(family, labels, bucket) DO UPDATE SET count = counters.count + excluded.count, sum = counters.sum + excluded.sum
            """, values)
    }

    /// Every stored count, by family, labels and bucket; and the two that the jobs table
    /// holds already, read from it rather than written at each claim (the hottest write):
    /// claims (the sum of every job's runs; jobs are never deleted, so it only grows) and
    /// the wait of each job's first claim (first_claimed_at - created_at).
    public func counterSamples() throws(StoreError) -> [CounterSample] {
        var samples = try connection.query("SELECT * FROM counters ORDER BY family, labels, bucket").map { row in
            CounterSample(family: row["family"].string ?? "", labels: row["labels"].string ?? "", bucket: Int(row["bucket"].int ?? -1),
                          count: row["count"].int ?? 0, sum: row["sum"].double ?? 0)
        }
        let claims = try connection.query("SELECT COALESCE(SUM(runs), 0) AS n FROM jobs").first?["n"].int ?? 0
        samples.append(CounterSample(family: CounterFamily.claims.name, labels: "", bucket: -1, count: claims, sum: 0))
        let bucket = CounterFamily.claimWait.bucketSQL(of: "w")
        for row in try connection.query(
            """
            SELECT \(bucket) AS b, COUNT(*) AS n, SUM(w) AS s
            FROM (SELECT CASE WHEN first_claimed_at > created_at THEN first_claimed_at - created_at ELSE 0 END AS w
                  FROM jobs WHERE first_claimed_at IS NOT NULL) AS waits GROUP BY b
            """) {
            samples.append(CounterSample(family: CounterFamily.claimWait.name, labels: "", bucket: Int(row["b"].int ?? 0),
                                         count: row["n"].int ?? 0, sum: row["s"].double ?? 0))
        }
        return samples
    }
}

/// `text` with each character that `replacements` names written as its replacement.
func escaping(_ text: String, _ replacements: [Character: String]) -> String {
    var out = ""
    for character in text {
        if let replacement = replacements[character] { out += replacement } else { out.append(character) }
    }
    return out
}
