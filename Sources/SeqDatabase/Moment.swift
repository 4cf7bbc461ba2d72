import SeqSystem

/// A moment on the wall clock, as the pipeline and its store keep times: when a job was
/// created, until when an account rests, when an event happened. The store holds its
/// `seconds` since the epoch (REAL). Durations between moments are plain seconds (Double);
/// the guard's timers run on the monotonic clock (Int64 nanoseconds) and leases on the boot
/// clock (`bootSeconds`), which are other clocks and so never a Moment.
public struct Moment: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral {
    /// Seconds since 1970-01-01T00:00:00Z.
    public var seconds: Double

    public init(seconds: Double) { self.seconds = seconds }
    public init(floatLiteral value: Double) { seconds = value }
    public init(integerLiteral value: Int64) { seconds = Double(value) }

    /// Now, on the wall clock.
    public static func now() -> Moment {
        let time = Clock.wallTime()
        return Moment(seconds: Double(time.seconds) + Double(time.nanoseconds) / 1e9)
    }

    public static func < (lhs: Moment, rhs: Moment) -> Bool { lhs.seconds < rhs.seconds }
    public static func + (moment: Moment, seconds: Double) -> Moment { Moment(seconds: moment.seconds + seconds) }
    public static func - (moment: Moment, seconds: Double) -> Moment { Moment(seconds: moment.seconds - seconds) }
    /// The seconds from `rhs` to `lhs`.
    public static func - (lhs: Moment, rhs: Moment) -> Double { lhs.seconds - rhs.seconds }

    /// `2026-11-23T10:01:02Z`.
    public var iso: String { Clock.isoUTC(wallTime) }
    /// The guard's wall time, whole seconds.
    public var wallTime: WallTime { WallTime(seconds: Int64(seconds.rounded(.down)), nanoseconds: 0) }
    public var description: String { iso }
}
