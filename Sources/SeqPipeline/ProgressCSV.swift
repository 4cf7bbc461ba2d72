import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem
import SeqGuard

/// The progress CSV of the original parallel pipeline (RFC 4180 quoting):
/// job_id, account, video_path, caption, status, worker_id, claimed_at, completed_at, error,
/// attempts, max_attempts, retry_at, error_type. Times are ISO 8601, UTC.
public enum ProgressCSV {
    public static let header = ["job_id", "account", "video_path", "caption", "status", "worker_id", "claimed_at",
                                "completed_at", "error", "attempts", "max_attempts", "retry_at", "error_type"]

    /// The original's columns, then `priority` and a column per payload field beyond video
    /// and caption (named by its key), so that `import-csv` gives the same jobs back.
    public static func export(_ jobs: [Job]) -> String {
        let standard: Set<String> = ["video", "video_path", "caption"]
        var extra: [String] = []
        for job in jobs { for (key, _) in job.payload where !standard.contains(key) && !extra.contains(key) && !header.contains(key) { extra.append(key) } }
        extra.sort()
        var text = (header + ["priority"] + extra).map(quote).joined(separator: ",") + "\r\n"
        for job in jobs {
            let fields = [
                job.id, job.account, job.field("video") ?? job.field("video_path") ?? "", job.field("caption") ?? "",
                job.status.rawValue, job.worker.map(String.init) ?? "", isoTime(job.claimedAt), isoTime(job.completedAt),
                job.error ?? "", String(job.attempts), String(job.maxAttempts), isoTime(job.retryAt), job.errorType ?? "",
                Priority.jobWord(job.priority),
            ] + extra.map { job.field($0) ?? "" }
            text += fields.map(quote).joined(separator: ",") + "\r\n"
        }
        return text
    }

    static func quote(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        var result = "\""
        for character in field { result += character == "\"" ? "\"\"" : String(character) }
        return result + "\""
    }

    /// A CSV file's bytes as text, refused rather than changed: a NUL byte (it would cut a
    /// step's argument there) or bytes that are not UTF-8 (they would become U+FFFD) are an
    /// error naming the line. A UTF-8 byte order mark is dropped.
    /// - Throws: `ConfigError` as `FILE:LINE: …` with the fix.
    public static func text(_ bytes: [UInt8], file: String) throws(ConfigError) -> String {
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        var line = 1
        var start = body.startIndex
        for index in body.indices where body[index] == 0x0A || index == body.endIndex - 1 {
            let end = body[index] == 0x0A ? index : index + 1
            let piece = body[start..<end]
            if let nul = piece.firstIndex(of: 0) {
                throw ConfigError(message: "\(file):\(line): a NUL byte at column \(nul - start + 1); remove it (a NUL would cut the field there)")
            }
            if String(validating: piece, as: UTF8.self) == nil {
                throw ConfigError(message: "\(file):\(line): not UTF-8; convert the file (iconv -f ENCODING -t UTF-8 \(file)) and import it again")
            }
            line += 1
            start = index + 1
        }
        return String(decoding: body, as: UTF8.self)
    }

    /// Rows of fields, each with the line it starts on; the line number of an unterminated
    /// quote instead when there is one.
    public static func parse(_ text: String) -> (rows: [[String]], badLine: Int?) {
        let parsed = parseLines(text)
        return (parsed.rows, parsed.badLine)
    }

    static func parseLines(_ text: String) -> (rows: [[String]], lines: [Int], badLine: Int?) {
        var lines: [Int] = []
        var rowLine = 1
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var line = 1
        var quoteLine = 0
        var iterator = Array(text.unicodeScalars)[...]
        var atFieldStart = true
        while let scalar = iterator.popFirst() {
            if quoted {
                if scalar == "\"" {
                    if iterator.first == "\"" { field.unicodeScalars.append("\""); iterator.removeFirst() } else { quoted = false }
                } else {
                    if scalar == "\n" { line += 1 }
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"" where atFieldStart:
                quoted = true
                quoteLine = line
                atFieldStart = false
            case ",":
                row.append(field)
                field = ""
                atFieldStart = true
            case "\r":
                continue
            case "\n":
                row.append(field)
                rows.append(row)
                lines.append(rowLine)
                row = []
                field = ""
                atFieldStart = true
                line += 1
                rowLine = line
            default:
                field.unicodeScalars.append(scalar)
                atFieldStart = false
            }
        }
        if quoted { return (rows, lines, quoteLine) }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
            lines.append(rowLine)
        }
        return (rows, lines, nil)
    }

    /// Jobs from a progress CSV. A claimed or running row (a run that died) comes back pending.
    /// - Throws: `ConfigError` naming the line and the column.
    public static func importJobs(_ text: String, file: String, defaultMaxAttempts: Int) throws(ConfigError) -> [Job] {
        let read = try importRows(text, file: file, defaultMaxAttempts: defaultMaxAttempts)
        if let first = read.problems.first?.message {
            let more = read.problems.count - 1
            throw ConfigError(message: first + (more > 0 ? " (and \(more) more bad row\(more == 1 ? "" : "s"); 'seqpipe import-csv \(file)' lists them all)" : ""))
        }
        return read.rows.map(\.job)
    }

    /// The smallest header a CSV of new jobs needs; any further column is a payload field.
    public static let minimalHeader = "job_id,account,video_path,caption"

    /// The jobs with the line each came from, and every bad row (one line each, FILE:LINE:
    /// why). A column beyond the original's (and `priority`) is a payload field; a job id
    /// seen twice is an error naming both lines. Throws for what spoils the whole file (no
    /// header, a quote never closed, a column named twice).
    public static func importRows(_ text: String, file: String, defaultMaxAttempts: Int) throws(ConfigError) -> (rows: [(job: Job, line: Int)], problems: [(line: Int, message: String)]) {
        let (rows, rowLines, badLine) = parseLines(text)
        if let badLine { throw ConfigError(message: "\(file):\(badLine): a quoted field never ends; close its double quote") }
        guard let first = rows.first else { throw ConfigError(message: "\(file): empty; expected a header line such as \(minimalHeader)") }
        var column: [String: Int] = [:]
        for (index, name) in first.enumerated() {
            let name = name.trimmingSpaces
            if let earlier = column[name], !name.isEmpty {
                throw ConfigError(message: "\(file):1: column '\(name)' is named twice (columns \(earlier + 1) and \(index + 1)); keep one")
            }
            column[name] = index
        }
        for required in ["job_id", "account"] where column[required] == nil {
            throw ConfigError(message: "\(file):1: no '\(required)' column; expected a header line such as \(minimalHeader) (any further column is a field of the job)")
        }
        var jobs: [(job: Job, line: Int)] = []
        var problems: [(line: Int, message: String)] = []
        var seen: [String: Int] = [:]
        let fields = column.filter { !header.contains($0.key) && $0.key != "priority" && !$0.key.isEmpty }.sorted { $0.value < $1.value }.map(\.key)
        for (offset, values) in rows.dropFirst().enumerated() {
            let line = rowLines[offset + 1]
            if values.allSatisfy({ $0.isEmpty }) { continue }
            // A bad row is reported and the next one read: every bad row is said at once.
            let row = Row(values: values, column: column, file: file, line: line)
            do throws(ConfigError) {
                if values.count > first.count {
                    throw row.problem("\(values.count) values but the header names \(first.count) columns; quote a value that holds a comma, or name the column")
                }
                let job = try row.job(fields: fields, defaultMaxAttempts: defaultMaxAttempts)
                if let earlier = seen[job.id] { throw row.problem("job '\(job.id)' is on line \(earlier) too; give each job its own id") }
                seen[job.id] = line
                jobs.append((job, line))
            } catch {
                problems.append((line, error.message))
            }
        }
        return (jobs, problems)
    }

    /// One row of an imported CSV, read by column name.
    struct Row {
        var values: [String]
        var column: [String: Int]
        var file: String
        var line: Int

        func problem(_ message: String) -> ConfigError { ConfigError(message: "\(file):\(line): \(message)") }

        func value(_ name: String) -> String {
            guard let index = column[name], index < values.count else { return "" }
            return values[index]
        }

        func time(_ name: String) throws(ConfigError) -> Moment? {
            let text = value(name)
            if text.isEmpty { return nil }
            guard let seconds = ZoneCalendar.parseISO(text) else { throw problem("\(name) '\(text)' is not a time; expected YYYY-MM-DDTHH:MM:SS (UTC)") }
            return Moment(seconds: seconds)
        }

        func number(_ name: String, _ fallback: Int) throws(ConfigError) -> Int {
            let text = value(name)
            if text.isEmpty { return fallback }
            guard let number = Int(text), number >= 0 else { throw problem("\(name) '\(text)' is not a whole number ≥ 0") }
            return number
        }

        /// The job this row describes; a claimed or running one comes back pending.
        func job(fields: [String], defaultMaxAttempts: Int) throws(ConfigError) -> Job {
            let id = value("job_id")
            let account = value("account")
            guard !id.isEmpty else { throw problem("job_id is empty; every job needs an id") }
            guard !account.isEmpty else { throw problem("account is empty for job \(id)") }
            var job = Job(id: id, account: account)
            if !value("priority").isEmpty {
                guard let priority = Priority.jobNumber(value("priority")) else {
                    throw problem("priority '\(value("priority"))' is not \(Priority.jobVocabulary)")
                }
                job.priority = priority
            }
            let statusText = value("status").isEmpty ? "pending" : value("status")
            guard let status = JobStatus(rawValue: statusText) else {
                throw problem("status '\(statusText)' is not one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            job.status = status == .claimed || status == .running ? .pending : status
            if !value("video_path").isEmpty { job.payload.append(("video", value("video_path"))) }
            if !value("caption").isEmpty { job.payload.append(("caption", value("caption"))) }
            for key in fields where !value(key).isEmpty { job.payload.append((key, value(key))) }
            if !value("worker_id").isEmpty {
                guard let worker = Int(value("worker_id")) else { throw problem("worker_id '\(value("worker_id"))' is not a number") }
                job.worker = worker
            }
            job.claimedAt = try time("claimed_at")
            job.completedAt = try time("completed_at")
            job.retryAt = try time("retry_at")
            job.error = value("error").isEmpty ? nil : value("error")
            job.errorType = value("error_type").isEmpty ? nil : value("error_type")
            job.attempts = try number("attempts", 0)
            job.maxAttempts = max(1, try number("max_attempts", defaultMaxAttempts))
            return job
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " || scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        while scalars.last == " " { scalars.removeLast() }
        return String(scalars)
    }
}
