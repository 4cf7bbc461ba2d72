import SeqGuard
import SeqSystem

/// Wall-clock seconds since the epoch, as the store keeps deadlines.
public func nowSeconds() -> Double {
    let time = Clock.wallTime()
    return Double(time.seconds) + Double(time.nanoseconds) / 1e9
}

/// `2026-11-23T10:01:02Z` for a stored time.
public func isoTime(_ seconds: Double?) -> String {
    guard let seconds else { return "" }
    return Clock.isoUTC(WallTime(seconds: Int64(seconds.rounded(.down)), nanoseconds: 0))
}

/// A duration for people: `formatSeconds`, but a short one keeps its fraction (tests and
/// demos configure milliseconds, and "0s" would hide them).
public func durationText(_ seconds: Double) -> String {
    if seconds < 10, seconds != seconds.rounded(.down) {
        let tenths = Int((seconds * 10).rounded())
        if tenths > 0 { return "\(tenths / 10).\(tenths % 10)s" }
        return "\(Int((seconds * 1000).rounded()))ms"
    }
    return formatSeconds(seconds)
}
