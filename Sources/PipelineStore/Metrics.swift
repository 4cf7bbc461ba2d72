import PipelineModel
import SeqDatabase
import SeqSystem

/// Response times, attempts and outcomes per device and per account, kept as hourly counts
/// (`metrics`: hour, subject `device:NAME` or `account:NAME`, outcome, count, and the sum of
/// response times for `response`). Rates over the last hour and day come from them. The
/// store stays bounded: one row per hour, subject and outcome, and rows older than
/// `metricsKeepDays` go whenever a count is written.
extension SQLJobStore {
    public static let metricsKeepDays = 30

    /// One more `outcome` for each subject in this hour; a response time adds to its sum.
    /// Call inside a write transaction.
    func countMetric(subjects: [String], outcome: String, responseMilliseconds: Int? = nil, now: Moment) throws(StoreError) {
        let hour = Int64(now.seconds / 3600)
        guard !subjects.isEmpty else { return }
        // Every subject in one statement: one row each, added to if the hour has it.
        var rows: [String] = []
        var values: [SQLValue] = [.integer(hour), .text(outcome), .integer(Int64(responseMilliseconds ?? 0))]
        for subject in subjects {
            values.append(.text(subject))
            rows.append("(?1, ?\(values.count), ?2, 1, ?3)")
        }
        try connection.run(
            """
            INSERT INTO metrics(hour, subject, outcome, count, response_ms_sum) VALUES \(rows.joined(separator: ", "))
            ON CONFLICT(hour, subject, outcome) DO UPDATE SET count = metrics.count + 1, response_ms_sum = metrics.response_ms_sum + ?3
            """, values)
        // What is past the window goes, once an hour per connection: a range of the primary key.
        if prunedHour != hour {
            try connection.run("DELETE FROM metrics WHERE hour < ?1", [.integer(hour - Int64(Self.metricsKeepDays * 24))])
            prunedHour = hour
        }
    }

    /// The subject's rates over the last `seconds` (whole hours, this one included).
    public func rates(subject: String, seconds: Double, now: Moment) throws(StoreError) -> Rates {
        let now = try databaseTime(now)
        let from = Int64(now.seconds / 3600) - Int64((seconds / 3600).rounded(.up)) + 1
        var rates = Rates()
        var responseSum: Int64 = 0
        for row in try connection.query(
            "SELECT outcome, SUM(count) AS n, SUM(response_ms_sum) AS ms FROM metrics WHERE subject = ?1 AND hour >= ?2 GROUP BY outcome",
            [.text(subject), .integer(from)]) {
            let count = Int(row["n"].int ?? 0)
            switch row["outcome"].string ?? "" {
            case "response":
                rates.responses = count
                responseSum = row["ms"].int ?? 0
            case "success":
                rates.successes += count
                rates.attempts += count
            case "failed":
                rates.failures += count
                rates.attempts += count
            case "unanswered":
                rates.unanswered = count
            default:
                rates.attempts += count
            }
        }
        if rates.responses > 0 { rates.meanResponseMilliseconds = Int(responseSum / Int64(rates.responses)) }
        return rates
    }
}
