import CSeqSystem
import Glibc

/// A signal, by name: the layers above this one never see a raw signal number.
public struct Signal: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let hangup = Signal(rawValue: SIGHUP)
    public static let interrupt = Signal(rawValue: SIGINT)
    public static let quit = Signal(rawValue: SIGQUIT)
    public static let kill = Signal(rawValue: SIGKILL)
    public static let terminate = Signal(rawValue: SIGTERM)
    public static let segmentationFault = Signal(rawValue: SIGSEGV)
    public static let abort = Signal(rawValue: SIGABRT)
    public static let brokenPipe = Signal(rawValue: SIGPIPE)
    public static let user1 = Signal(rawValue: SIGUSR1)
    public static let user2 = Signal(rawValue: SIGUSR2)
    public static let child = Signal(rawValue: SIGCHLD)
    public static let `continue` = Signal(rawValue: SIGCONT)
    public static let stop = Signal(rawValue: SIGSTOP)

    /// The name a person sees in messages: "SIGTERM", or "signal 40" for one without a name here.
    public var name: String {
        switch self {
        case .hangup: return "SIGHUP"
        case .interrupt: return "SIGINT"
        case .quit: return "SIGQUIT"
        case .kill: return "SIGKILL"
        case .terminate: return "SIGTERM"
        case .segmentationFault: return "SIGSEGV"
        case .abort: return "SIGABRT"
        case .brokenPipe: return "SIGPIPE"
        case .user1: return "SIGUSR1"
        case .user2: return "SIGUSR2"
        case .child: return "SIGCHLD"
        case .continue: return "SIGCONT"
        case .stop: return "SIGSTOP"
        default: return "signal \(rawValue)"
        }
    }

    public var description: String { name }

    /// The shell's status for a process this signal ended: 128 + N.
    public var shellExitCode: Int32 { 128 + rawValue }
}

/// A signal as read from a signalfd: which one, and who sent it.
public struct ReceivedSignal: Sendable, Equatable {
    public var signal: Signal
    /// si_code: SI_USER for kill(2), SI_KERNEL (0x80) when a terminal sent it to its foreground group.
    public var code: Int32
    public var senderPid: Int32

    /// Sent by the terminal driver to the whole foreground process group (Ctrl-C, Ctrl-\),
    /// so the command already has its own copy.
    public var cameFromTerminal: Bool { code == 0x80 }
}

/// Signals taken out of asynchronous delivery and read from a descriptor instead, so the
/// wait loop and the supervisor handle them in one place with no handler code.
public struct SignalReceiver: Sendable {
    public let descriptor: FileDescriptor
    public let signals: [Signal]

    /// Blocks `signals` for this thread and opens a signalfd for them. Call before any other
    /// thread starts, so every thread inherits the mask.
    public init(signals: [Signal]) throws(Errno) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal.rawValue) }
        let rc = pthread_sigmask(SIG_BLOCK, &set, nil)
        if rc != 0 { throw Errno(rawValue: rc) }
        let fd = try valueOrErrno { signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) }
        self.descriptor = FileDescriptor(rawValue: fd)
        self.signals = signals
    }

    /// Unblocks the signals again (before exec'ing another program in this process).
    public func restoreMask() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal.rawValue) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Every signal pending now; empty if none.
    public func drain() -> [ReceivedSignal] {
        var result: [ReceivedSignal] = []
        var info = signalfd_siginfo()
        while true {
            let n = withUnsafeMutableBytes(of: &info) { raw in
                Glibc.read(descriptor.rawValue, raw.baseAddress, raw.count)
            }
            if n == MemoryLayout<signalfd_siginfo>.size {
                result.append(ReceivedSignal(
                    signal: Signal(rawValue: Int32(info.ssi_signo)), code: info.ssi_code, senderPid: Int32(info.ssi_pid)))
                continue
            }
            if n == -1 && Errno.current == .interrupted { continue }
            return result
        }
    }

    /// How a `sleep` ended.
    public enum SleepEnd: Sendable, Equatable {
        case elapsed
        /// A signal for which `stopsOn` held.
        case stopped(ReceivedSignal)
        /// `wakingOn[index]` turned readable.
        case readable(index: Int)
    }

    /// The one signal-aware sleep: up to `seconds`, cut short by a signal for which
    /// `stopsOn` holds or by any of `wakingOn` turning readable. Other signals are read and
    /// the sleep goes on.
    public func sleep(
        seconds: Double, wakingOn descriptors: [FileDescriptor] = [], stopsOn: (ReceivedSignal) -> Bool
    ) -> SleepEnd {
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while true {
            let left = deadline - Clock.monotonicNanoseconds()
            if left <= 0 { return .elapsed }
            let ready = Poll.readable([descriptor] + descriptors, timeoutMilliseconds: Int32(clamping: left / 1_000_000 + 1))
            if let index = ready.first(where: { $0 > 0 }) { return .readable(index: index - 1) }
            if ready.contains(0), let signal = drain().first(where: stopsOn) { return .stopped(signal) }
        }
    }

    /// Which of `signals` a child should get reset to the default action: those not ignored
    /// by whoever started us (an ignored SIGHUP under nohup must stay ignored).
    public func signalsToReset() -> [Signal] {
        signals.filter { cseq_signal_is_ignored($0.rawValue) == 0 }
    }
}

/// SIGPIPE, which a wrapper must not die of: `seqexec make test 2>&1 | head` closes seqexec's
/// stdout while the command runs, and the supervisor must see the command to its end.
public enum BrokenPipe {
    /// Set when this process ignores SIGPIPE but its commands must get it at its default
    /// action (whoever started us did not ignore it).
    // nonisolated(unsafe): written once by the executable before any thread or child starts.
    nonisolated(unsafe) static var resetInChildren = false

    /// Ignores SIGPIPE in this process: writes to a closed pipe fail with EPIPE instead.
    /// Commands spawned afterwards get the disposition this process started with.
    public static func ignore() {
        if cseq_signal_is_ignored(SIGPIPE) == 0 { resetInChildren = true }
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
    }
}
