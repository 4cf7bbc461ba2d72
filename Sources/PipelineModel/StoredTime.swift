import SeqDatabase
import SeqGuard
import SeqSystem

/// `2026-11-23T10:01:02Z` for a stored time, "" for none.
public func isoTime(_ moment: Moment?) -> String { moment?.iso ?? "" }
