import SeqDatabase

/// A state or kind the store records as a word: a worker's state, a host's, a recurring
/// job's, an alert's kind. The word is the raw value; one this version does not name (a newer
/// version wrote it) is read and shown as it is, never refused. `Of` tells the kinds apart,
/// so a host's state cannot be compared with a worker's.
public struct StoredWord<Of>: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}
