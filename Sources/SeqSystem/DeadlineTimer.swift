import CSeqSystem
import Glibc

/// A kernel timer as a descriptor (timerfd on CLOCK_BOOTTIME): readable once it expires, so a
/// poll loop wakes for it, and it runs on whatever else the process is doing (a process stuck in
/// a network call cannot hold it back). Boot time keeps counting through a suspend, so a host
/// that slept past its deadline finds the timer expired when it wakes.
public final class DeadlineTimer: Sendable {
    public let descriptor: FileDescriptor

    public init() throws(Errno) {
        let raw = timerfd_create(CLOCK_BOOTTIME, Int32(TFD_CLOEXEC) | Int32(TFD_NONBLOCK))
        guard raw >= 0 else { throw Errno.current }
        descriptor = FileDescriptor(rawValue: raw)
    }

    deinit { descriptor.close() }

    /// Fires `seconds` from now on the boot clock (at once for 0 or less); replaces any earlier setting.
    public func fire(inSeconds seconds: Double) {
        let nanoseconds = max(1, Int64(seconds * 1e9))
        var setting = itimerspec()
        setting.it_value = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = timerfd_settime(descriptor.rawValue, 0, &setting, nil as UnsafeMutablePointer<itimerspec>?)
    }

    /// Whether it has fired (without waiting).
    public var hasFired: Bool { Poll.readable([descriptor], timeoutMilliseconds: 0).contains(0) }
}

/// An event counter as a descriptor (eventfd): readable once the kernel (or another
/// process) has signalled it, as a cgroup's memory threshold does.
public final class EventCounter: Sendable {
    public let descriptor: FileDescriptor

    public init() throws(Errno) {
        let raw = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard raw >= 0 else { throw Errno.current }
        descriptor = FileDescriptor(rawValue: raw)
    }

    deinit { descriptor.close() }

    /// The count signalled since the last call (0 when none), which resets it.
    public func take() -> UInt64 {
        guard let bytes = try? descriptor.read(upTo: 8), bytes.count == 8 else { return 0 }
        return bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
    }
}

/// A file's changes as a descriptor (inotify, IN_MODIFY): readable once the file was modified,
/// as a cgroup v2 `memory.events` is when one of its counts goes up.
public final class FileChangeWatch: Sendable {
    public let descriptor: FileDescriptor

    public init(_ path: String) throws(Errno) {
        let raw = inotify_init1(Int32(IN_CLOEXEC) | Int32(IN_NONBLOCK))
        guard raw >= 0 else { throw Errno.current }
        descriptor = FileDescriptor(rawValue: raw)
        guard inotify_add_watch(raw, path, UInt32(IN_MODIFY)) >= 0 else {
            let error = Errno.current
            descriptor.close()
            throw error
        }
    }

    deinit { descriptor.close() }

    /// Whether the file changed since the last call, which forgets the changes seen.
    public func take() -> Bool {
        var changed = false
        while let bytes = try? descriptor.read(upTo: 4096), !bytes.isEmpty { changed = true }
        return changed
    }
}
