import SeqSystem

/// Where seqexec's own words go: stderr, one line each, `seqexec: ` in front; verbose steps
/// carry `[SEQUENTIAL]` so they can be told from the command's output.
public struct Reporter: Sendable {
    public var toolName: String
    public var verbose: Bool
    public var quiet: Bool
    /// Set in a process that waits in a line or holds a lock (a guarded run's supervisor):
    /// its words never wait on stderr's reader, so a full pipe or a terminal stopped with
    /// Ctrl-S holds up no one. What stderr cannot take yet is held back (see StandardError)
    /// and written once the locks are released.
    public var neverBlocks = false

    public init(toolName: String, verbose: Bool = false, quiet: Bool = false) {
        self.toolName = toolName
        self.verbose = verbose
        self.quiet = quiet
    }

    /// An error or warning: printed even with --quiet.
    public func error(_ message: String) {
        write("\(toolName): \(message)\n")
    }

    /// A notice a person should see (waiting, leftovers ended); silenced by --quiet.
    public func notice(_ message: String) {
        if !quiet { write("\(toolName): \(message)\n") }
    }

    /// A warning a person should act on (memory nearing its limit): `[SEQUENTIAL]` in front,
    /// silenced by --quiet.
    public func warning(_ message: String) {
        if !quiet { write("[SEQUENTIAL] \(toolName): warning: \(message)\n") }
    }

    /// One step, with --verbose only.
    public func step(_ message: @autoclosure () -> String) {
        if verbose && !quiet { write("[SEQUENTIAL] \(message())\n") }
    }

    public func write(_ text: String) {
        if neverBlocks { StandardError.write(text) } else { try? FileDescriptor.standardError.writeAll(text) }
    }

    /// A line the next one replaces (a waiting line): when stderr cannot take it now, it is
    /// dropped rather than held back. Returns whether it went.
    @discardableResult
    public func writeReplaceable(_ text: String) -> Bool {
        if neverBlocks { return StandardError.writeIfReady(text) }
        write(text)
        return true
    }

    /// Whether stderr takes nothing now (a full pipe, a stopped terminal): a waiter then lets
    /// the line move past it. Only asked of a process whose words never block.
    public var outputIsBlocked: Bool { neverBlocks && StandardError.isBlocked }

    /// Writes what was held back, waiting as long as the reader takes: once no one waits on
    /// this process.
    public func flushHeldBack() {
        if neverBlocks { StandardError.flush() }
    }

    public var stderrIsTerminal: Bool { FileDescriptor.standardError.isTerminal }
}

/// A failure of the guard itself, with the exit status it maps to.
public struct GuardFailure: Error, Sendable, CustomStringConvertible {
    public var exitCode: Int32
    public var message: String
    public var errno: Errno?
    /// The error of a lower layer this one says in its own words (a store's `StoreError`):
    /// kept, so a caller can still ask it what it was.
    public var cause: (any Error & Sendable)?

    public init(exitCode: Int32 = ExitCode.toolFailure, _ message: String, errno: Errno? = nil, cause: (any Error & Sendable)? = nil) {
        self.exitCode = exitCode
        self.message = message
        self.errno = errno
        self.cause = cause
    }

    public var description: String { message }

    /// The fix to name for `errno`: a descriptor limit or a full disk has its own, whatever
    /// the path; anything else gets `otherwise`.
    public static func fix(for errno: Errno, otherwise: String) -> String {
        if errno == .tooManyOpenFiles { return "raise the limit on open files ('ulimit -n', now \(Processes.openFileLimit))" }
        if errno == .tooManyOpenFilesInSystem { return "the system is out of open files; close some programs" }
        if errno == .noSpace { return "free some space on that file system" }
        return otherwise
    }

    /// At start-up: too few descriptors allowed to run at all (the runtime itself needs
    /// some to read its arguments). Nil when there are enough.
    public static func checkOpenFileLimit(tool: String, minimum: UInt64 = 16) -> GuardFailure? {
        let limit = Processes.openFileLimit
        guard limit < minimum else { return nil }
        return GuardFailure("\(tool) needs at least \(minimum) open files and the limit is \(limit); raise it ('ulimit -n \(minimum)')")
    }
}

/// The exit statuses seqexec uses for itself, as timeout(1) and env(1) do.
public enum ExitCode {
    public static let timedOut: Int32 = 124
    public static let toolFailure: Int32 = 125
    public static let cannotExecute: Int32 = 126
    public static let notFound: Int32 = 127
    public static let gaveUpWaiting: Int32 = 75
    /// A newer waiter asking `--order newest-first` took this one's place in the line.
    public static let replaced: Int32 = 76
    /// A shared lock's lease could not be renewed (the store did not answer, or the lease ran
    /// out): the command's tree was ended before another host could take the lock.
    public static let leaseLost: Int32 = 77
    /// The memory monitor ended the command (128 + SIGKILL, as a shell reports a kill -9).
    public static let memoryLimit: Int32 = 137
}
