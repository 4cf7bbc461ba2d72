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

