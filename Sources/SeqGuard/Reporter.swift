import SeqSystem

/// Where seqexec's own words go: stderr, one line each, `seqexec: ` in front; verbose steps
/// carry `[SEQUENTIAL]` so they can be told from the command's output.
public struct Reporter: Sendable {
    public var toolName: String
    public var verbose: Bool
    public var quiet: Bool

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
        try? FileDescriptor.standardError.writeAll(text)
    }

    public var stderrIsTerminal: Bool { FileDescriptor.standardError.isTerminal }
}

/// A failure of the guard itself, with the exit status it maps to.
public struct GuardFailure: Error, Sendable, CustomStringConvertible {
    public var exitCode: Int32
    public var message: String
    public var errno: Errno?

    public init(exitCode: Int32 = ExitCode.toolFailure, _ message: String, errno: Errno? = nil) {
        self.exitCode = exitCode
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
}

/// The exit statuses seqexec uses for itself, as timeout(1) and env(1) do.
public enum ExitCode {
    public static let timedOut: Int32 = 124
    public static let toolFailure: Int32 = 125
    public static let cannotExecute: Int32 = 126
    public static let notFound: Int32 = 127
    public static let gaveUpWaiting: Int32 = 75
    /// The memory monitor ended the command (128 + SIGKILL, as a shell reports a kill -9).
    public static let memoryLimit: Int32 = 137
}
