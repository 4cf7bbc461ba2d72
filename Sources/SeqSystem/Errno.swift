import CSeqSystem
import Glibc

/// An error number from the kernel, with spelled-out names for the ones this toolkit decides on.
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let notPermitted = Errno(rawValue: EPERM)
    public static let noSuchFile = Errno(rawValue: ENOENT)
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let noChildProcesses = Errno(rawValue: ECHILD)
    public static let wouldBlock = Errno(rawValue: EWOULDBLOCK)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let badAddress = Errno(rawValue: EFAULT)
    public static let fileExists = Errno(rawValue: EEXIST)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let isDirectory = Errno(rawValue: EISDIR)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let tooManySymlinks = Errno(rawValue: ELOOP)
    public static let directoryNotEmpty = Errno(rawValue: ENOTEMPTY)
    public static let busy = Errno(rawValue: EBUSY)
    public static let notImplemented = Errno(rawValue: ENOSYS)
    public static let execFormatError = Errno(rawValue: ENOEXEC)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    public static let hostUnreachable = Errno(rawValue: EHOSTUNREACH)
    public static let operationCanceled = Errno(rawValue: ECANCELED)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)
    public static let noSpace = Errno(rawValue: ENOSPC)
    public static let readOnlyFileSystem = Errno(rawValue: EROFS)
    public static let argumentListTooLong = Errno(rawValue: E2BIG)

    /// The calling thread's errno.
    public static var current: Errno { Errno(rawValue: cseq_errno()) }

    public var description: String {
        guard let text = strerror(rawValue) else { return "errno \(rawValue)" }
        return String(cString: text)
    }
}

/// Runs a syscall wrapper, retrying on EINTR, and turns -1 into a thrown `Errno`.
/// EBADF and EFAULT mean a bug in this program (a closed or wild descriptor), so they stop it.
@inline(__always)
func valueOrErrno<T: BinaryInteger>(
    retryOnInterrupt: Bool = true, _ body: () -> T
) throws(Errno) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Errno.current
        if error == .interrupted && retryOnInterrupt { continue }
        precondition(
            error != .badFileDescriptor && error != .badAddress,
            "unacceptable errno \(error.rawValue): \(error)")
        throw error
    }
}
