import SeqSystem

// The split of a guarded run into the front (the process the caller started) and the
// supervisor (its child, which waits, claims, supervises and records).

extension GuardedCommand {
    /// Runs `configuration.arguments` under the project's lock. Returns the exit status.
    @available(*, noasync)
    public static func run(_ configuration: GuardConfiguration) -> Int32 {
        let reporter = configuration.reporter
        let signals: SignalReceiver
        do {
            // Before any thread exists, so every thread inherits the blocked mask.
            signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup, .quit, .child])
        } catch {
            reporter.error("cannot set up signal handling: \(error)")
            return ExitCode.toolFailure
        }
        // The front and the supervisor. The process the caller started (and may kill) stays
        // a front: it forwards signals and answers the status. A child of it does the rest:
        // waits in the queue (ended with the front while it waits), takes the locks, and
        // supervises the command as its parent and subreaper, letting the locks go only once
        // no process of the tree is left. A kill -9 of seqexec, or a command that closes every
        // descriptor it inherited, cannot free the lock while the command runs. Split this
        // early, the fork copies little, and nothing forks after the locks are taken.
        var report: FileDescriptor?
        let front = ProcessIdentity.current()
        do {
            let channel = try FileSystem.pipe()
            let supervisorPid: Int32
            do { supervisorPid = try Processes.fork() } catch {
                channel.read.close()
                channel.write.close()
                throw error
            }
            if supervisorPid > 0 {
                channel.write.close()
                // The supervisor says when the run has its place; the front's copy must not
                // keep `--submit` waiting.
                configuration.announce?.close()
                defer { channel.read.close() }
                let status = waitAsFront(supervisor: supervisorPid, signals: signals, report: channel.read)
                // The lock is free and the run recorded: what is left of the supervisor is its
                // exit, which need not hold up the caller. Nested under another guarded run,
                // though, it is reaped first: an orphan still exiting would be taken for a
                // leftover of the outer run's tree.
                if Spawn.environmentValue(tokensVariable) != nil { _ = try? Spawn.waitFor(supervisorPid) }
                return status
            }
            channel.read.close()
            report = channel.write
            // Waiting is the front's business: if it is killed, this child leaves the queue.
            _ = try? Processes.setParentDeathSignal(.terminate)
            if Processes.parentPid != front.pid { return Signal.terminate.shellExitCode }
        } catch {
            reporter.notice("cannot fork a supervisor (\(error)); supervising in this process")
        }
        let status: Int32
        do {
            status = try run(configuration, front: front, signals: signals, reporter: reporter)
        } catch {
            reporter.error(error.message)
            status = error.exitCode
        }
        // The locks are released and the run recorded: the front may answer now, while this
        // process exits beside it.
        _ = try? report?.writeAll(FrontReport.encode(status))
        return status
    }

    /// The front's part: wait for the supervisor's report and answer its status. A signal
    /// sent to this process goes on to the supervisor, which forwards it to the command (or,
    /// while it waits, leaves the queue); one from the terminal reached them both already.
    /// Killing the front during the run leaves the run supervised.
    @available(*, noasync)
    static func waitAsFront(supervisor pid: Int32, signals: SignalReceiver, report: FileDescriptor) -> Int32 {
        var message: [UInt8] = []
        var reportOpen = true
        while true {
            // The report first: the supervisor's exit may be seen in the same wake-up.
            while reportOpen, let chunk = try? report.read(upTo: 16) {
                if chunk.isEmpty { reportOpen = false } else { message += chunk }
            }
            if let status = FrontReport.decode(message) { return status }
            do {
                // Ended without a report: killed, or it became the command (a nested call).
                if let status = try Spawn.reap(pid) { return status.shellExitCode }
            } catch {
                return ExitCode.toolFailure  // not our child any more: nothing left to wait for
            }
            let ready = Poll.readable(reportOpen ? [signals.descriptor, report] : [signals.descriptor], timeoutMilliseconds: -1)
            guard ready.contains(0) else { continue }
            for received in signals.drain() where received.signal != .child && !received.cameFromTerminal {
                Processes.signalChild(pid, received.signal)
            }
        }
    }
}

/// The supervisor's report to the front: the exit status, 4 bytes.
enum FrontReport {
    static func encode(_ status: Int32) -> [UInt8] {
        let value = UInt32(bitPattern: status)
        return (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32(8 * $0)) }
    }

    static func decode(_ bytes: [UInt8]) -> Int32? {
        guard bytes.count >= 4 else { return nil }
        return Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[$1]) << UInt32(8 * $1) })
    }
}
