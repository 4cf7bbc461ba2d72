import Glibc

/// Wall-clock and monotonic time, in the forms the state files and wait loops use.
public enum Clock {
    /// Seconds since the epoch, with nanoseconds: for records a person or another process reads.
    public static func wallTime() -> WallTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallTime(seconds: Int64(spec.tv_sec), nanoseconds: Int64(spec.tv_nsec))
    }

    /// Monotonic nanoseconds: for deadlines and durations inside one process.
    public static func monotonicNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Seconds since boot, as the kernel counts process start times (CLOCK_BOOTTIME).
    public static func secondsSinceBoot() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Clock ticks per second, for /proc start times.
    public static let ticksPerSecond: Int64 = Int64(sysconf(Int32(_SC_CLK_TCK)))

    /// Formats a wall time as local `HH:MM:SS`.
    public static func localClockTime(_ time: WallTime) -> String {
        var seconds = time_t(time.seconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// Formats a wall time as local `YYYY-MM-DD HH:MM:SS`.
    public static func localDateTime(_ time: WallTime) -> String {
        var seconds = time_t(time.seconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) " + localClockTime(time)
    }

    /// Formats a wall time as ISO 8601 in UTC, e.g. `2026-11-22T10:01:02Z`. Computed here,
    /// not with gmtime_r, which makes glibc load /etc/localtime on every run.
    public static func isoUTC(_ time: WallTime) -> String {
        let days = time.seconds >= 0 ? time.seconds / 86400 : (time.seconds - 86399) / 86400
        let secondOfDay = time.seconds - days * 86400
        let date = CivilDate(daysSinceEpoch: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return date.text + "T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay % 3600 / 60, 2)):\(pad(secondOfDay % 60, 2))Z"
    }
}

/// A day of the proleptic Gregorian calendar, converted to and from days since 1970-01-01
/// without libc (gmtime_r makes glibc load /etc/localtime on every run). Howard Hinnant's
/// algorithms.
public struct CivilDate: Hashable, Sendable {
    public var year: Int64
    public var month: Int64
    public var day: Int64

    public init(year: Int64, month: Int64, day: Int64) {
        self.year = year
        self.month = month
        self.day = day
    }

    public init(daysSinceEpoch days: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    public var daysSinceEpoch: Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// 0 for Sunday through 6 for Saturday.
    public var weekday: Int64 {
        (daysSinceEpoch % 7 + 11) % 7  // 1970-01-01 was a Thursday; % keeps the sign of a negative.
    }

    public static func isLeapYear(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// `YYYY-MM-DD`.
    public var text: String {
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }
}

/// A point in wall-clock time, ordered, written as `SECONDS.NANOSECONDS` in state files.
public struct WallTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var seconds: Int64
    public var nanoseconds: Int64

    public init(seconds: Int64, nanoseconds: Int64) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// Parses `1732312345.123456789` or a bare `1732312345`.
    public init?(parsing text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let seconds = Int64(parts[0]), seconds >= 0 else { return nil }
        var nanoseconds: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 9, let value = Int64(digits), value >= 0
            else { return nil }
            nanoseconds = value
            for _ in digits.count..<9 { nanoseconds *= 10 }
        }
        self.init(seconds: seconds, nanoseconds: nanoseconds)
    }

    public var description: String {
        let fraction = String(nanoseconds)
        return "\(seconds)." + String(repeating: "0", count: 9 - fraction.count) + fraction
    }

    public var asDouble: Double { Double(seconds) + Double(nanoseconds) / 1e9 }

    /// This time plus `interval` seconds (not negative).
    public func adding(seconds interval: Double) -> WallTime {
        let whole = Int64(interval.rounded(.down))
        var nanos = nanoseconds + Int64((interval - Double(whole)) * 1e9)
        var secs = seconds + whole
        if nanos >= 1_000_000_000 {
            nanos -= 1_000_000_000
            secs += 1
        }
        return WallTime(seconds: secs, nanoseconds: nanos)
    }

    /// Seconds from self to `later`.
    public func seconds(until later: WallTime) -> Double { later.asDouble - asDouble }

    public static func < (lhs: WallTime, rhs: WallTime) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }
}
