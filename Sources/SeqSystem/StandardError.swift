import Synchronization
import Glibc

/// A process's own words on stderr, written so that its reader never holds it up: a full
/// pipe, a terminal stopped with Ctrl-S or a reader that went away takes nothing now, and
/// what it cannot take is held back, in order, for the next write or for `flush()`. A
/// process that waits in a line, or holds a lock others wait for, must not sit in write(2).
public enum StandardError {
    /// What stderr could not take yet; at most `limit` bytes, then the oldest are dropped
    /// and the drop is said once the output moves again.
    static let heldBack = Mutex<(bytes: [UInt8], dropped: Int)>(([], 0))
    static let limit = 64 * 1024

    /// Writes `text`, or as much of it as stderr takes now, and holds the rest back.
    public static func write(_ text: String) {
        heldBack.withLock { state in
            state.bytes += text.utf8
            if state.bytes.count > limit {
                let excess = state.bytes.count - limit
                state.bytes.removeFirst(excess)
                state.dropped += excess
            }
            drain(&state)
        }
    }

    /// A line a later one replaces (a waiting line): written whole if stderr takes anything
    /// now and nothing is held back, else dropped. Returns whether it went.
    @discardableResult
    public static func writeIfReady(_ text: String) -> Bool {
        heldBack.withLock { state in
            drain(&state)
            guard state.bytes.isEmpty, FileDescriptor.standardError.takesWritesNow else { return false }
            state.bytes += text.utf8
            drain(&state)
            return true
        }
    }

    /// Whether stderr cannot take our words now (after writing what was held back): a full
    /// pipe, a stopped terminal. A regular file, /dev/null or a closed stderr never is.
    public static var isBlocked: Bool {
        heldBack.withLock { state in
            drain(&state)
            return !state.bytes.isEmpty || !FileDescriptor.standardError.takesWritesNow
        }
    }

    /// Writes what was held back, waiting for the reader as long as it takes: for when no
    /// one waits on this process any more (its locks are released).
    public static func flush() {
        heldBack.withLock { state in
            if state.dropped > 0 {
                state.bytes = Array("[\(state.dropped) bytes of this tool's messages were dropped: its stderr took nothing for too long]\n".utf8) + state.bytes
                state.dropped = 0
            }
            try? FileDescriptor.standardError.writeAll(state.bytes)
            state.bytes = []
        }
    }

    static func drain(_ state: inout (bytes: [UInt8], dropped: Int)) {
        guard !state.bytes.isEmpty else { return }
        let written = FileDescriptor.standardError.writeWithoutWaiting(state.bytes)
        state.bytes.removeFirst(written)
    }
}

extension FileDescriptor {
    /// Whether a write would be taken now: poll(2) for POLLOUT without waiting. A pipe with
    /// no room, or a terminal whose output is stopped (Ctrl-S), says no.
    public var takesWritesNow: Bool {
        var entry = pollfd(fd: rawValue, events: Int16(POLLOUT), revents: 0)
        guard Glibc.poll(&entry, 1, 0) == 1 else { return false }
        // An error or a hang-up (no reader) takes writes the way /dev/null does: they fail
        // at once and hold nothing up.
        return entry.revents & Int16(POLLOUT | POLLERR | POLLHUP | POLLNVAL) != 0
    }

    /// Writes what the descriptor takes now without waiting; returns how many bytes went.
    /// A pipe, FIFO or terminal is written through a description of its own opened with
    /// O_NONBLOCK (so the shared one, which the caller and the command also write through,
    /// keeps its mode); a socket with MSG_DONTWAIT; a regular file as usual. A failed write
    /// (no reader, a closed descriptor) counts as written: there is nothing to wait for.
    public func writeWithoutWaiting(_ bytes: [UInt8]) -> Int {
        guard !bytes.isEmpty else { return 0 }
        var info = stat()
        guard fstat(rawValue, &info) == 0 else { return bytes.count }
        let kind = info.st_mode & S_IFMT
        if kind == S_IFSOCK {
            let n = bytes.withUnsafeBytes { send(rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            return n >= 0 ? n : (Errno.current == .wouldBlock || Errno.current == .interrupted ? 0 : bytes.count)
        }
        guard kind == S_IFIFO || kind == S_IFCHR else {
            try? writeAll(bytes)
            return bytes.count
        }
        let own = Glibc.open("/proc/self/fd/\(rawValue)", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard own >= 0 else {
            // No description of our own (a FIFO's reader is gone: ENXIO): one write, only if
            // poll says it is taken, of no more than the kernel takes whole (PIPE_BUF).
            guard takesWritesNow else { return 0 }
            let n = bytes.withUnsafeBytes { Glibc.write(rawValue, $0.baseAddress, min($0.count, Int(PIPE_BUF))) }
            return n >= 0 ? n : bytes.count
        }
        defer { _ = Glibc.close(own) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(own, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n; continue }
            let error = Errno.current
            if error == .interrupted { continue }
            if n == 0 || error == .wouldBlock { return offset }
            return bytes.count
        }
        return offset
    }
}
