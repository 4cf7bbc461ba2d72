import CSeqSystem
import Glibc

/// How a child ended, decoded once from waitid's siginfo_t.
public enum TerminationStatus: Sendable, Equatable {
    case exited(Int32)
    case signaled(Signal)

    /// The shell's convention: the exit code, or 128+N for death by signal N.
    public var shellExitCode: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return signal.shellExitCode
        }
    }
}

/// Starting and reaping child processes.
public enum Spawn {
    /// posix_spawnp(3): runs `arguments[0]` found on PATH, with `arguments` as argv and
    /// `environment` as envp. The child's signal mask is emptied and `resetSignals` go back to
    /// their default action. Descriptors pass through unless they are close-on-exec.
    /// - Throws: the errno of the failed exec (ENOENT: not found; EACCES/ENOEXEC: not runnable).
    /// With `output`, the child's stdout and stderr both go to that descriptor, and with
    /// `input` its stdin comes from that one. Each of `passing` is open in the child as the
    /// descriptor number given. With `newProcessGroup`, the child leads a process group of its
    /// own: a terminal's Ctrl-C does not reach it, and whoever started it ends it in order.
    public static func spawn(
        _ arguments: [String], environment: [String], resetSignals: [Signal],
        input: FileDescriptor? = nil, output: FileDescriptor? = nil, passing: [(descriptor: FileDescriptor, as: Int32)] = [],
        newProcessGroup: Bool = false
    ) throws(Errno) -> Int32 {
        try spawn(arguments.map { Array($0.utf8) }, environment: environment.map { Array($0.utf8) }, resetSignals: resetSignals,
                  input: input, output: output, passing: passing, newProcessGroup: newProcessGroup)
    }

    /// The same, with argv and the environment as bytes, passed to the kernel exactly as
    /// given: an argument, a variable or a program path need not be UTF-8.
    public static func spawn(
        _ arguments: [[UInt8]], environment: [[UInt8]], resetSignals: [Signal],
        input: FileDescriptor? = nil, output: FileDescriptor? = nil, passing: [(descriptor: FileDescriptor, as: Int32)] = [],
        newProcessGroup: Bool = false
    ) throws(Errno) -> Int32 {
        precondition(!arguments.isEmpty, "spawn needs a program")
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in resetSignals { sigaddset(&defaults, signal.rawValue) }
        if BrokenPipe.resetInChildren { sigaddset(&defaults, SIGPIPE) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            flags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = cStrings(arguments)
        let envp = cStrings(environment)
        defer {
            freeCStrings(argv)
            freeCStrings(envp)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let input { posix_spawn_file_actions_adddup2(&actions, input.rawValue, 0) }
        if let output {
            posix_spawn_file_actions_adddup2(&actions, output.rawValue, 1)
            posix_spawn_file_actions_adddup2(&actions, output.rawValue, 2)
        }
        // dup2 onto itself clears close-on-exec (glibc 2.29 and later, POSIX 2024).
        for (descriptor, target) in passing { posix_spawn_file_actions_adddup2(&actions, descriptor.rawValue, target) }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0]!, &actions, &attributes, argv, envp)
        if rc != 0 { throw Errno(rawValue: rc) }
        return pid
    }

    /// execvp(3): replaces this process. Returns only on failure, with the errno.
    public static func replaceProcess(_ arguments: [[UInt8]], environment: [[UInt8]]) -> Errno {
        // An ignored SIGPIPE would survive the exec; the command gets what we started with.
        if BrokenPipe.resetInChildren { _ = Glibc.signal(SIGPIPE, SIG_DFL) }
        let argv = cStrings(arguments)
        let envp = cStrings(environment)
        cseq_execvpe(argv[0]!, argv, envp)
        let error = Errno.current
        freeCStrings(argv)
        freeCStrings(envp)
        return error
    }

    /// A NULL-terminated vector of malloc'd C strings, as execve wants. A plain pointer, not
    /// an Array of optionals: on the start-up path of every guarded run, instantiating that
    /// generic type at run time costs more than the copying.
    static func cStrings(_ list: [[UInt8]]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let vector = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: list.count + 1)
        for index in list.indices { vector[index] = cString(list[index]) }
        vector[list.count] = nil
        return vector
    }

    static func freeCStrings(_ vector: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) {
        var index = 0
        while let pointer = vector[index] {
            free(pointer)
            index += 1
        }
        vector.deallocate()
    }

    /// A malloc'd NUL-terminated copy of `bytes` (which hold no NUL: argv and environ cannot).
    static func cString(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar>? {
        let pointer = malloc(bytes.count + 1)!.assumingMemoryBound(to: CChar.self)
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress { memcpy(pointer, base, raw.count) }
        }
        pointer[bytes.count] = 0
        return pointer
    }

    /// open(2) of a path given as bytes (a name that is not UTF-8). Returns the descriptor or -1.
    public static func openRaw(_ path: [UInt8], _ options: OpenOptions, _ mode: UInt32) -> Int32 {
        guard let pointer = cString(path) else { return -1 }
        defer { free(pointer) }
        return cseq_open(pointer, options.rawValue | O_CLOEXEC, mode)
    }

    /// This process's argv as the kernel gave it, byte for byte.
    public static func rawArguments() -> [[UInt8]] {
        (0..<Int(CommandLine.argc)).map { index in
            guard let pointer = CommandLine.unsafeArgv[index] else { return [] }
            return Array(UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: strlen(pointer)))
        }
    }

    /// The current environment as `NAME=value` entries, byte for byte.
    public static func rawEnvironment() -> [[UInt8]] {
        var result: [[UInt8]] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(Array(UnsafeBufferPointer(start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self), count: strlen(entry))))
            pointer += 1
        }
        return result
    }

    /// Reaps one child that has ended, if any. Returns nil when children exist but none has
    /// ended yet. - Throws: `Errno.noChildProcesses` when this process has no children at all.
    public static func reapAny() throws(Errno) -> (pid: Int32, status: TerminationStatus)? {
        var info = siginfo_t()
        _ = try valueOrErrno { waitid(P_ALL, 0, &info, WEXITED | WNOHANG) }
        let pid = cseq_siginfo_pid(&info)
        if pid == 0 { return nil }
        return (pid, decode(&info))
    }

    /// Waits for `pid` to end and reaps it.
    public static func waitFor(_ pid: Int32) throws(Errno) -> TerminationStatus {
        var info = siginfo_t()
        _ = try valueOrErrno { waitid(P_PID, id_t(pid), &info, WEXITED) }
        return decode(&info)
    }

    /// Reaps `pid` if it has ended; nil while it runs.
    public static func reap(_ pid: Int32) throws(Errno) -> TerminationStatus? {
        var info = siginfo_t()
        _ = try valueOrErrno { waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG) }
        if cseq_siginfo_pid(&info) == 0 { return nil }
        return decode(&info)
    }

    static func decode(_ info: inout siginfo_t) -> TerminationStatus {
        let code = cseq_siginfo_code(&info)
        let status = cseq_siginfo_status(&info)
        if code == CLD_EXITED { return .exited(status) }
        return .signaled(Signal(rawValue: status))
    }

    /// Where execvp(3) would find `command`: itself when it holds a `/`, else the first
    /// executable file of that name on PATH. Throws `.noSuchFile` when there is none and
    /// `.permissionDenied` when the only match cannot be executed (127 and 126 to a shell).
    public static func lookUp(_ command: String) throws(Errno) -> String {
        if command.contains("/") {
            guard FileSystem.exists(command) else { throw .noSuchFile }
            guard FileSystem.isExecutableFile(command) else { throw .permissionDenied }
            return command
        }
        var denied = false
        let path = environmentValue("PATH") ?? "/usr/local/bin:/bin:/usr/bin"
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + command
            if FileSystem.isExecutableFile(candidate) { return candidate }
            if FileSystem.exists(candidate) { denied = true }
        }
        throw denied ? .permissionDenied : .noSuchFile
    }

    /// The current environment as `NAME=value` strings.
    public static func currentEnvironment() -> [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }

    /// getenv(3).
    public static func environmentValue(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

/// poll(2) over a few descriptors.
public enum Poll {
    /// Waits until one of `descriptors` is readable or `timeoutMilliseconds` pass (-1: forever).
    /// Returns the indices of the readable ones (empty on timeout). EINTR counts as a timeout.
    public static func readable(_ descriptors: [FileDescriptor], timeoutMilliseconds: Int32) -> [Int] {
        var fds = descriptors.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
        let n = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        guard n > 0 else { return [] }
        return fds.indices.filter { fds[$0].revents != 0 }
    }

    /// Sleeps for `milliseconds` (used only where no event exists to wait on).
    public static func sleep(milliseconds: Int32) {
        _ = Glibc.poll(nil, 0, milliseconds)
    }
}

/// Watches a lock file from a helper thread: see `cseq_start_flock_watcher`.
public enum FlockWatcher {
    /// Opens `path` in `directory` and starts a thread that writes a byte to `notify` once no
    /// exclusive flock on it is held. Returns false if the file is gone or no thread started.
    public static func start(path: String, relativeTo directory: FileDescriptor, notify: FileDescriptor) -> Bool {
        guard let fd = try? FileSystem.open(path, [.readOnly, .noFollow], relativeTo: directory) else { return false }
        if cseq_start_flock_watcher(fd.rawValue, notify.rawValue) != 0 {
            fd.close()
            return false
        }
        return true
    }
}

/// Ending this process.
public enum ProcessExit {
    /// exit(3): flushes stdio and ends the process with `code`.
    public static func now(_ code: Int32) -> Never { Glibc.exit(code) }
    /// _exit(2): ends a forked child that must not run its parent's exit handlers or flush
    /// its parent's buffers.
    public static func immediately(_ code: Int32) -> Never { Glibc._exit(code) }
}

extension Array where Element == [UInt8] {
    /// In an environment of `NAME=value` byte entries: sets `name` to `value` (removing every
    /// earlier entry of it), or removes it when `value` is nil. Other entries stay as they are.
    public mutating func setVariable(_ name: String, _ value: String?) {
        let prefix = [UInt8]((name + "=").utf8)
        removeAll { $0.starts(with: prefix) }
        if let value { append(prefix + [UInt8](value.utf8)) }
    }
}
