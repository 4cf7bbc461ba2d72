import SeqDatabase
import SeqSystem

/// Reading settings from text: the environment and flags share these, so `seqexec` and
/// `make-seq` accept and reject exactly the same values with the same one-line errors.
public enum Setting {
    /// The longest duration any setting takes: 365 days. Every duration becomes nanoseconds
    /// in an Int64 somewhere, and this keeps that far from overflowing.
    public static let maximumSeconds: Double = 365 * 86400
    /// The largest count or size: memory in MB up to 2^30 (a pebibyte), so that bytes fit an
    /// Int64 with room to spare.
    public static let maximumWholeNumber = 1 << 30

    /// Seconds from 0 to `maximumSeconds`: a decimal number of seconds (`30`, `2.5`, `.5`), or
    /// numbers with units, as seqpipe's durations (`500ms`, `90s`, `10m`, `1h30m`, `2d`). No
    /// sign, exponent, hex or infinity.
    public static func seconds(_ text: String, _ name: String) throws(GuardFailure) -> Double {
        func refuse() -> GuardFailure {
            GuardFailure("invalid \(name) '\(text)': expected seconds from 0 to \(Int(maximumSeconds)) (365 days), e.g. 30, 2.5, 500ms, 90s, 10m or 1h30m")
        }
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 32 else { throw refuse() }
        var total = 0.0
        var index = 0
        while index < bytes.count {
            let start = index
            while index < bytes.count, (bytes[index] >= 0x30 && bytes[index] <= 0x39) || bytes[index] == 0x2E { index += 1 }
            let number = bytes[start..<index]
            guard number.contains(where: { $0 != 0x2E }), number.filter({ $0 == 0x2E }).count <= 1,
                  let value = Double(String(decoding: number, as: UTF8.self)) else { throw refuse() }
            let unitStart = index
            while index < bytes.count, bytes[index] >= 0x61 && bytes[index] <= 0x7A { index += 1 }
            let scale: Double
            switch String(decoding: bytes[unitStart..<index], as: UTF8.self) {
            case "" where start == 0 && index == bytes.count: scale = 1
            case "ms": scale = 0.001
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            default: throw refuse()
            }
            total += value * scale
        }
        guard total.isFinite, total <= maximumSeconds else { throw refuse() }
        return total
    }

    /// A whole number from `minimum` to `maximum`, written as decimal digits only.
    public static func wholeNumber(_ text: String, _ name: String, minimum: Int, maximum: Int = maximumWholeNumber) throws(GuardFailure) -> Int {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int(text), value >= minimum, value <= maximum else {
            throw GuardFailure("invalid \(name) '\(text)': expected a whole number from \(minimum) to \(maximum)")
        }
        return value
    }

    /// The gap between memory samples: seconds, at least 0.01.
    public static func interval(_ text: String, _ name: String) throws(GuardFailure) -> Double {
        try seconds(text, name, atLeast: 0.01, minimum: "0.01", ", e.g. 5")
    }

    /// Seconds, at least `least` (said as `minimum`, and why after it).
    static func seconds(_ text: String, _ name: String, atLeast least: Double, minimum: String, _ why: String) throws(GuardFailure) -> Double {
        let value = try seconds(text, name)
        guard value >= least else { throw GuardFailure("invalid \(name) '\(text)': expected seconds of at least \(minimum)\(why)") }
        return value
    }

    public static func priority(_ text: String, _ name: String) throws(GuardFailure) -> Priority {
        guard let priority = Priority(rawValue: text) else { throw GuardFailure("invalid \(name) '\(text)': expected high, normal or low") }
        return priority
    }

    /// `--order`: whether a newer waiter of the same order replaces the older ones.
    public static func newestFirst(_ text: String, _ name: String) throws(GuardFailure) -> Bool {
        switch text {
        case "oldest-first": return false
        case "newest-first": return true
        default: throw GuardFailure("invalid \(name) '\(text)': expected oldest-first or newest-first")
        }
    }

    public static func memoryMetric(_ text: String, _ name: String) throws(GuardFailure) -> MemoryMetric {
        guard let metric = MemoryMetric(rawValue: text) else { throw GuardFailure("invalid \(name) '\(text)': expected rss or pss") }
        return metric
    }

    public static func memoryAction(_ text: String, _ name: String) throws(GuardFailure) -> MemoryAction {
        guard let action = MemoryAction(rawValue: text) else { throw GuardFailure("invalid \(name) '\(text)': expected tree or largest") }
        return action
    }

    /// A yes/no variable: empty, 0, false, no and off are no; anything else is yes.
    /// A CPU quota: a number of CPUs above 0 and at most 1024 (`0.5`, `2`).
    public static func cpus(_ text: String, _ name: String) throws(GuardFailure) -> Double {
        guard !text.isEmpty, text.utf8.count <= 12, text.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: ".") }),
              let value = Double(text), value > 0, value <= 1024 else {
            throw GuardFailure("invalid \(name) '\(text)': expected a number of CPUs above 0, e.g. 0.5 or 2")
        }
        return value
    }

    /// A shared lock's store: a PostgreSQL URL.
    public static func storeURL(_ text: String, _ name: String) throws(GuardFailure) -> String {
        guard PostgreSQLConnection.isURL(text) else {
            throw GuardFailure("\(name) needs a PostgreSQL URL such as postgresql://ci@db.example/locks, not '\(text)'")
        }
        return text
    }

    /// A lease: seconds, at least one (a renewal every third of it must be possible).
    public static func lease(_ text: String, _ name: String) throws(GuardFailure) -> Double {
        try seconds(text, name, atLeast: 1, minimum: "1", " (it is renewed every third of it)")
    }

    public static func flag(_ value: String) -> Bool { !["", "0", "false", "no", "off"].contains(value.lowercased()) }
}

extension GuardConfiguration {
    /// The variable the migration shims in scripts/ set: only then are the original tooling's
    /// bare names read (TIMEOUT, VERBOSE, MEMORY_LIMIT_MB, CHECK_INTERVAL). Anywhere else they
    /// mean something else: a CI's generic `TIMEOUT=1` must not end commands after a second.
    public static let legacyNamesVariable = "SEQEXEC_LEGACY_NAMES"
}
