/// A duration for people, the one format of the three tools: `12s`, `3m04s`, `1h02m`. Under
/// a minute a fraction shows as tenths (`0.5s`, `12.3s`), or as milliseconds under a tenth
/// (`40ms`): tests and demos configure fractions, and "0s" would hide them. `wholeSeconds`
/// drops the fraction, for a time that is counted while it grows (waited, running for).
public func formatDuration(_ seconds: Double, wholeSeconds: Bool = false) -> String {
    let seconds = seconds.isFinite ? max(0, seconds) : 0
    if !wholeSeconds && seconds < 60 && seconds != seconds.rounded(.down) {
        let tenths = Int((seconds * 10).rounded())
        if tenths == 0 { return "\(Int((seconds * 1000).rounded()))ms" }
        if tenths < 600 { return "\(tenths / 10).\(tenths % 10)s" }
    }
    let whole = Int(seconds.rounded(wholeSeconds ? .down : .toNearestOrAwayFromZero))
    if whole < 60 { return "\(whole)s" }
    if whole < 3600 { return "\(whole / 60)m\(whole % 60 < 10 ? "0" : "")\(whole % 60)s" }
    return "\(whole / 3600)h\((whole % 3600) / 60 < 10 ? "0" : "")\((whole % 3600) / 60)m"
}
