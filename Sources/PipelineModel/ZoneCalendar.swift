import SeqDatabase
import SeqSystem

/// Calendar days in a named time zone, for daily limits and "today" counts: read from the
/// zone's tzdata file (TZif, RFC 8536) by this code, not by setting TZ for libc, which would
/// change the environment every step the worker starts inherits.
public enum ZoneCalendar {
    /// The calendar day (`YYYY-MM-DD`) of `seconds` in `zone` (an IANA name such as
    /// `Europe/Berlin`, or `UTC`). A zone this machine does not know counts as UTC; the
    /// configuration refuses such names before it gets here (`isKnownZone`).
    /// The day `moment` falls on in `zone`.
    public static func day(of moment: Moment, zone: String) -> String { day(of: moment.seconds, zone: zone) }

    public static func day(of seconds: Double, zone: String) -> String {
        let moment = Int64(seconds.rounded(.down))
        let local = moment + (ZoneRules.named(zone)?.offset(at: moment) ?? 0)
        let days = local >= 0 ? local / 86400 : (local - 86399) / 86400
        return CivilDate(daysSinceEpoch: days).text
    }

    /// Whether `zone` names a zone this machine knows (tzdata), or is UTC.
    public static func isKnownZone(_ zone: String) -> Bool {
        if zone == "UTC" || zone == "GMT" { return true }
        guard let path = ZoneRules.path(of: zone) else { return false }
        return FileSystem.exists(path)
    }

    /// Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.fff][Z]` (or a space for the T),
    /// read as UTC; nil for anything else.
    public static func parseISO(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                guard bytes[index] >= 48 && bytes[index] <= 57 else { return nil }
                value = value * 10 + Int64(bytes[index] - 48)
            }
            return value
        }
        guard bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 32, bytes[13] == 58, bytes[16] == 58,
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fraction = 0.0
        var index = 19
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var scale = 0.1
            while index < bytes.count, bytes[index] >= 48 && bytes[index] <= 57 {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
        }
        if index < bytes.count, bytes[index] == 90 { index += 1 }
        guard index == bytes.count else { return nil }
        let days = CivilDate(year: year, month: month, day: day).daysSinceEpoch
        // A day the month does not have (2026-02-30) is no time, not 2026-03-02.
        let back = CivilDate(daysSinceEpoch: days)
        guard back.year == year, back.month == month, back.day == day else { return nil }
        return Double(days * 86400 + hour * 3600 + minute * 60 + second) + fraction
    }
}

/// One zone's UTC offsets: the transitions of its TZif file, and the POSIX TZ rule in the
/// file's footer for the moments after the last one.
struct ZoneRules: Sendable {
    /// Transition instants (UTC seconds), ascending, and the offset in force from each.
    var transitions: [Int64] = []
    var offsets: [Int64] = []
    /// The offset before the first transition.
    var initialOffset: Int64 = 0
    var footer: PosixZoneRule?

    static func path(of zone: String) -> String? {
        guard !zone.isEmpty, !zone.hasPrefix("/"), !zone.split(separator: "/").contains("..") else { return nil }
        return "/usr/share/zoneinfo/" + zone
    }

    /// The rules of `zone`; nil for UTC and for a zone whose file is missing or unreadable.
    static func named(_ zone: String) -> ZoneRules? {
        guard zone != "UTC", zone != "GMT", let path = path(of: zone),
              let bytes = try? FileSystem.readFile(path) else { return nil }
        return ZoneRules(tzif: bytes)
    }

    /// Parses a TZif file (version 1, 2, 3 or 4); nil if it is not one.
    init?(tzif bytes: [UInt8]) {
        var reader = ByteReader(bytes: bytes)
        guard let header = reader.header() else { return nil }
        var counts = header.counts
        var timeSize = 4
        if header.version >= 2 {
            // Skip the version 1 block: the 64-bit block after it says the same for all time.
            guard reader.skip(counts.dataSize(timeSize: 4)), let second = reader.header() else { return nil }
            counts = second.counts
            timeSize = 8
        }
        var transitions: [Int64] = []
        for _ in 0..<counts.times {
            guard let time = reader.signed(size: timeSize) else { return nil }
            transitions.append(time)
        }
        var indices: [Int] = []
        for _ in 0..<counts.times {
            guard let index = reader.unsigned(size: 1) else { return nil }
            indices.append(Int(index))
        }
        var typeOffsets: [Int64] = []
        var typeIsDaylight: [Bool] = []
        for _ in 0..<counts.types {
            guard let offset = reader.signed(size: 4), let isDaylight = reader.unsigned(size: 1), reader.skip(1) else { return nil }
            typeOffsets.append(offset)
            typeIsDaylight.append(isDaylight != 0)
        }
        guard !typeOffsets.isEmpty, indices.allSatisfy({ $0 < typeOffsets.count }) else { return nil }
        self.transitions = transitions
        offsets = indices.map { typeOffsets[$0] }
        // RFC 8536 3.2: local time before the first transition is type 0.
        initialOffset = typeOffsets[0]
        if header.version >= 2, reader.skip(counts.dataSize(timeSize: 8) - counts.transitionsSize(timeSize: 8)),
           let text = reader.footer() {
            footer = PosixZoneRule(text)
        }
    }

    /// Seconds to add to UTC for local time at `moment`.
    func offset(at moment: Int64) -> Int64 {
        if let last = transitions.last, moment >= last, let footer { return footer.offset(at: moment) }
        if transitions.isEmpty, let footer { return footer.offset(at: moment) }
        guard let first = transitions.first, moment >= first else { return initialOffset }
        // The last transition at or before `moment`.
        var low = 0
        var high = transitions.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if transitions[middle] <= moment { low = middle } else { high = middle - 1 }
        }
        return offsets[low]
    }
}

/// The counts in a TZif header, and the sizes of the data they describe.
private struct TZifCounts {
    var utIndicators = 0, standardIndicators = 0, leapSeconds = 0, times = 0, types = 0, characters = 0

    func transitionsSize(timeSize: Int) -> Int { times * timeSize + times + types * 6 }

    func dataSize(timeSize: Int) -> Int {
        transitionsSize(timeSize: timeSize) + characters + leapSeconds * (timeSize + 4) + standardIndicators + utIndicators
    }
}

private struct ByteReader {
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, index + count <= bytes.count else { return false }
        index += count
        return true
    }

    mutating func unsigned(size: Int) -> UInt64? {
        guard index + size <= bytes.count else { return nil }
        var value: UInt64 = 0
        for byte in bytes[index..<index + size] { value = value << 8 | UInt64(byte) }
        index += size
        return value
    }

    /// A big-endian two's-complement integer of 4 or 8 bytes.
    mutating func signed(size: Int) -> Int64? {
        guard let raw = unsigned(size: size) else { return nil }
        return size == 8 ? Int64(bitPattern: raw) : Int64(Int32(bitPattern: UInt32(raw)))
    }

    mutating func header() -> (version: Int, counts: TZifCounts)? {
        guard index + 44 <= bytes.count, Array(bytes[index..<index + 4]) == Array("TZif".utf8) else { return nil }
        let versionByte = bytes[index + 4]
        index += 20
        var counts = TZifCounts()
        guard let ut = unsigned(size: 4), let std = unsigned(size: 4), let leap = unsigned(size: 4),
              let times = unsigned(size: 4), let types = unsigned(size: 4), let characters = unsigned(size: 4),
              types > 0, types <= 256, times < 1 << 20, characters < 1 << 16, leap < 1 << 16, ut <= types, std <= types
        else { return nil }
        (counts.utIndicators, counts.standardIndicators, counts.leapSeconds) = (Int(ut), Int(std), Int(leap))
        (counts.times, counts.types, counts.characters) = (Int(times), Int(types), Int(characters))
        return (versionByte == 0 ? 1 : Int(versionByte) - 48, counts)
    }

    /// The footer's TZ string, between two newlines.
    mutating func footer() -> String? {
        guard index < bytes.count, bytes[index] == 10,
              let end = bytes[(index + 1)...].firstIndex(of: 10) else { return nil }
        return String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
    }
}

/// A POSIX TZ rule such as `CET-1CEST,M3.5.0,M10.5.0/3` or `<+0330>-3:30`: a standard
/// offset, and optionally a daylight offset with the rules for when it starts and ends.
struct PosixZoneRule: Sendable, Equatable {
    /// Seconds east of UTC (POSIX writes them west: `EST5` is -5 hours).
    var standardOffset: Int64
    var daylight: Daylight?

    struct Daylight: Sendable, Equatable {
        var offset: Int64
        var start: DateRule
        /// Seconds after local midnight of the start day, in standard time (may be negative or past 24 h).
        var startTime: Int64
        var end: DateRule
        /// Seconds after local midnight of the end day, in daylight time.
        var endTime: Int64
    }

    enum DateRule: Sendable, Equatable {
        /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = the last) of month `m`.
        case monthWeekDay(month: Int64, week: Int64, weekday: Int64)
        /// `Jn`: day 1...365, never counting 29 February.
        case julianNoLeap(Int64)
        /// `n`: day 0...365, counting 29 February.
        case zeroBased(Int64)

        /// Days since the epoch of this rule's day in `year`.
        func day(in year: Int64) -> Int64 {
            let january1 = CivilDate(year: year, month: 1, day: 1).daysSinceEpoch
            switch self {
            case .julianNoLeap(let n):
                return january1 + n - 1 + (CivilDate.isLeapYear(year) && n >= 60 ? 1 : 0)
            case .zeroBased(let n):
                return january1 + n
            case .monthWeekDay(let month, let week, let weekday):
                let first = CivilDate(year: year, month: month, day: 1)
                var day = first.daysSinceEpoch + (weekday - first.weekday + 7) % 7 + (week - 1) * 7
                let nextMonth = month == 12 ? CivilDate(year: year + 1, month: 1, day: 1) : CivilDate(year: year, month: month + 1, day: 1)
                while day >= nextMonth.daysSinceEpoch { day -= 7 }
                return day
            }
        }
    }

    /// Parses the rule; nil for text that is not one.
    init?(_ text: String) {
        var scanner = RuleScanner(bytes: Array(text.utf8))
        guard scanner.name(), let standard = scanner.offset() else { return nil }
        standardOffset = -standard
        if scanner.atEnd { return }
        guard scanner.name() else { return nil }
        var daylightOffset = standardOffset + 3600
        if let explicit = scanner.offset() { daylightOffset = -explicit }
        guard scanner.take(44), let start = scanner.dateRule() else { return nil }
        let startTime = scanner.take(47) ? scanner.offset() : 7200
        guard let startTime, scanner.take(44), let end = scanner.dateRule() else { return nil }
        let endTime = scanner.take(47) ? scanner.offset() : 7200
        guard let endTime, scanner.atEnd else { return nil }
        daylight = Daylight(offset: daylightOffset, start: start, startTime: startTime, end: end, endTime: endTime)
    }

    func offset(at moment: Int64) -> Int64 {
        guard let daylight else { return standardOffset }
        let localDays = (moment + standardOffset) >= 0 ? (moment + standardOffset) / 86400 : (moment + standardOffset - 86399) / 86400
        let year = CivilDate(daysSinceEpoch: localDays).year
        // Daylight time is in force between this year's start and end (both as UTC instants);
        // in the southern hemisphere the end comes first in the calendar year.
        let start = daylight.start.day(in: year) * 86400 + daylight.startTime - standardOffset
        let end = daylight.end.day(in: year) * 86400 + daylight.endTime - daylight.offset
        let inDaylight = start < end ? (moment >= start && moment < end) : (moment >= start || moment < end)
        return inDaylight ? daylight.offset : standardOffset
    }
}

private struct RuleScanner {
    let bytes: [UInt8]
    var index = 0

    var atEnd: Bool { index == bytes.count }

    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// A zone abbreviation: `<...>` or three or more letters.
    mutating func name() -> Bool {
        if take(60) {
            guard let close = bytes[index...].firstIndex(of: 62) else { return false }
            index = close + 1
            return true
        }
        let start = index
        while index < bytes.count, (65...90).contains(bytes[index]) || (97...122).contains(bytes[index]) { index += 1 }
        return index - start >= 3
    }

    mutating func digits() -> Int64? {
        let start = index
        var value: Int64 = 0
        while index < bytes.count, (48...57).contains(bytes[index]), index - start < 3 {
            value = value * 10 + Int64(bytes[index] - 48)
            index += 1
        }
        return index > start ? value : nil
    }

    /// `[+-]hh[:mm[:ss]]` as seconds; nil when there is no number here.
    mutating func offset() -> Int64? {
        let save = index
        var sign: Int64 = 1
        if take(45) { sign = -1 } else { _ = take(43) }
        guard let hours = digits() else {
            index = save
            return nil
        }
        var seconds = hours * 3600
        if take(58) {
            guard let minutes = digits() else { return nil }
            seconds += minutes * 60
            if take(58) {
                guard let rest = digits() else { return nil }
                seconds += rest
            }
        }
        return sign * seconds
    }

    mutating func dateRule() -> PosixZoneRule.DateRule? {
        if take(77) {
            guard let month = digits(), take(46), let week = digits(), take(46), let weekday = digits(),
                  (1...12).contains(month), (1...5).contains(week), (0...6).contains(weekday) else { return nil }
            return .monthWeekDay(month: month, week: week, weekday: weekday)
        }
        if take(74) {
            guard let day = digits(), (1...365).contains(day) else { return nil }
            return .julianNoLeap(day)
        }
        guard let day = digits(), (0...365).contains(day) else { return nil }
        return .zeroBased(day)
    }
}
