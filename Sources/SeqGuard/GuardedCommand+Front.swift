import SeqSystem

// The split of a guarded run into the front (the process the caller started) and the
// supervisor (its child, which waits, claims, supervises and records).

extension GuardedCommand {
    /// Runs `configuration.arguments` under the project's lock. Returns the exit status.
    @available(*, noasync)
    public static func run(_ configuration: GuardConfiguration) -> Int32 {
        var reporter = configuration.reporter
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
                // A shared lock's lease lives only as long as the supervisor renews it: if the
                // supervisor is killed, its command's tree comes to the front (a subreaper), which
                // ends it before the lease can pass to another host.
                let sharedGrace = configuration.store == nil ? nil : min(configuration.killGrace, configuration.lease / 5)
                if sharedGrace != nil { _ = try? Processes.becomeChildSubreaper() }
                // The supervisor says when the run has its place; the front's copy must not
                // keep `--submit` waiting.
                configuration.announce?.close()
                defer { channel.read.close() }
                let status = waitAsFront(supervisor: supervisorPid, signals: signals, report: channel.read, reporter: reporter,
                                         display: displayCommand(configuration.arguments), sharedGrace: sharedGrace)
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
        // This process waits in the line and holds the locks: its words must not wait on
        // stderr's reader (a full pipe, Ctrl-S), or the line would wait with them.
        reporter.neverBlocks = true
        let status: Int32
        do {
            status = try run(configuration, front: front, signals: signals, reporter: reporter, frontReport: report)
        } catch {
            reporter.error(error.message)
            status = error.exitCode
        }
        // The locks are released and the run recorded: what stderr could not take yet goes
        // now (before the front answers, so the caller sees it first), and the front may
        // answer while this process exits beside it.
        reporter.flushHeldBack()
        _ = try? report?.writeAll(FrontReport.encode(status))
        return status
    }

    /// The front's part: wait for the supervisor's report and answer its status. A signal
    /// sent to this process goes on to the supervisor, which forwards it to the command (or,
    /// while it waits, leaves the queue); one from the terminal reached them both already.
    /// Killing the front during the run leaves the run supervised.
    @available(*, noasync)
    static func waitAsFront(supervisor pid: Int32, signals: SignalReceiver, report: FileDescriptor, reporter: Reporter, display: String,
                            sharedGrace: Double? = nil) -> Int32 {
        var message: [UInt8] = []
        var reportOpen = true
        while true {
            // The report first: the supervisor's exit may be seen in the same wake-up.
            while reportOpen, let chunk = try? report.read(upTo: 16) {
                if chunk.isEmpty { reportOpen = false } else { message += chunk }
            }
            let said = FrontReport.decode(message)
            if let status = said.status { return status }
            do {
                // Ended without a report: killed, or it became the command (a nested call).
                if let status = try Spawn.reap(pid) {
                    // Killed under a command that lives on: the command has not ended, and
                    // holds the lock (its tree does) until it does.
                    if case .signaled(let signal) = status, let command = said.command, command.isAlive, let sharedGrace {
                        reporter.error("supervisor pid \(pid) was killed (\(signal.name)); ending '\(display)' (pid \(command.pid)) and its tree: no one renews the shared lock's lease")
                        endOrphanedTree(grace: sharedGrace)
                        return ExitCode.toolFailure
                    }
                    if case .signaled(let signal) = status, let command = said.command, command.isAlive {
                        reporter.error("supervisor pid \(pid) was killed (\(signal.name)); '\(display)' (pid \(command.pid)) runs on unsupervised, holding the lock; 'seqexec --status' shows it, 'seqexec --kill-all' ends it")
                        return ExitCode.toolFailure
                    }
                    return status.shellExitCode
                }
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

extension GuardedCommand {
    /// Ends every process left under the front (a subreaper): the command and whatever it
    /// started, reparented here when their supervisor died.
    static func endOrphanedTree(grace: Double) {
        let me = Processes.currentPid
        let roots = Processes.descendants(of: [me]).map(\.identity)
        Teardown.graceful(grace).run(find: Teardown.TreeFinder(roots: roots).find, reap: { while (try? Spawn.reapAny()) != nil {} })
    }
}

/// The supervisor's reports to the front, in order: the command's process once it started
/// (`C`, pid and start time), then the exit status (`E`, 4 bytes).
enum FrontReport {
    static func encode(_ status: Int32) -> [UInt8] {
        [UInt8(ascii: "E")] + bytes(UInt64(UInt32(bitPattern: status)), count: 4)
    }

    static func started(_ command: ProcessIdentity) -> [UInt8] {
        [UInt8(ascii: "C")] + bytes(UInt64(UInt32(bitPattern: command.pid)), count: 4) + bytes(command.startTime, count: 8)
    }

    static func bytes(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) }
    }

    static func number(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
    }

    /// What the reports so far say: the command's process, and the status once it came.
    static func decode(_ message: [UInt8]) -> (command: ProcessIdentity?, status: Int32?) {
        var command: ProcessIdentity?
        var index = 0
        while index < message.count {
            switch message[index] {
            case UInt8(ascii: "C") where message.count >= index + 13:
                command = ProcessIdentity(pid: Int32(bitPattern: UInt32(number(message[(index + 1)..<(index + 5)]))),
                                          startTime: number(message[(index + 5)..<(index + 13)]))
                index += 13
            case UInt8(ascii: "E") where message.count >= index + 5:
                return (command, Int32(bitPattern: UInt32(number(message[(index + 1)..<(index + 5)]))))
            default:
                return (command, nil)
            }
        }
        return (command, nil)
    }
}
