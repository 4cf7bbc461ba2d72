import Glibc

/// open(2)'s flags, by name. O_CLOEXEC is not among them: `FileSystem.open` always adds it.
public struct OpenOptions: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// O_RDONLY is 0: the absence of the other two access modes.
    public static let readOnly = OpenOptions(rawValue: O_RDONLY)
    public static let writeOnly = OpenOptions(rawValue: O_WRONLY)
    public static let readWrite = OpenOptions(rawValue: O_RDWR)
    public static let create = OpenOptions(rawValue: O_CREAT)
    public static let exclusive = OpenOptions(rawValue: O_EXCL)
    public static let truncate = OpenOptions(rawValue: O_TRUNC)
    public static let append = OpenOptions(rawValue: O_APPEND)
    public static let noFollow = OpenOptions(rawValue: O_NOFOLLOW)
    public static let nonBlocking = OpenOptions(rawValue: O_NONBLOCK)
    public static let directory = OpenOptions(rawValue: O_DIRECTORY)
}
