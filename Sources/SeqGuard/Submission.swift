import SeqSystem

/// `--submit`, `--wait`, `--runs` and `--cancel`: runs handed to the guard that outlive
/// their caller (see SubmittedRun for what is kept where).
public enum Submission {
    /// `seqexec --submit [OPTIONS] CMD…`: checks that CMD can run (127, 126), then queues it
    /// exactly as a foreground run would, supervised by a process in a session of its own
    /// (stdin /dev/null, output to its log). Prints the run's id once it has its place in the
    /// queue (or the lock), and returns 0.
    @available(*, noasync)
    public static func submit(_ configuration: GuardConfiguration) -> Int32 {
        do {
            print(try start(configuration))
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }

    /// Queues `configuration`'s command as `--submit` does and returns the run's id once the
    /// run has its place.
    /// - Throws: `GuardFailure` with the CLI's message and status: 127 (not found), 126 (not
    ///   executable), or the state's failure.
    @available(*, noasync)
    public static func start(_ configuration: GuardConfiguration) throws(GuardFailure) -> String {
        let name = configuration.arguments[0]
        do { _ = try Spawn.lookUp(name) } catch {
            if error == .permissionDenied {
                throw GuardFailure(exitCode: ExitCode.cannotExecute, "'\(name)' cannot be executed: not an executable file; fix its mode or the PATH; nothing was queued")
            }
            throw GuardFailure(exitCode: ExitCode.notFound, "'\(name)' not found\(name.contains("/") ? "" : " on PATH"); check the name or the PATH; nothing was queued")
        }
        let store: RunStore
        let log: FileDescriptor
        let id = RunStore.newID()
        do {
            let (_, state) = try configuration.openState()
            defer { state.close() }
            store = try RunStore(state: state)
            do throws(GuardFailure) {
                try store.prune(keep: RunStore.defaultKeep)
                guard let opened = try store.directory.openFile("\(id).log", [.writeOnly, .create, .exclusive]) else {
                    throw GuardFailure("cannot create run \(id)'s log in \(store.directory.path); submit again")
                }
                log = opened
            } catch {
                // A server (--mcp) submits for as long as it lives: nothing of a failed submit stays open.
                store.close()
                throw error
            }
        }
        let announce: (read: FileDescriptor, write: FileDescriptor)
        let relayPid: Int32
        do {
            announce = try FileSystem.pipe()
            relayPid = try Processes.fork()
        } catch {
            log.close()
            store.close()
            throw GuardFailure("cannot start a supervisor for the run: \(error)")
        }
        if relayPid == 0 {
            announce.read.close()
            relay(configuration, id: id, store: store, log: log, announce: announce.write)
        }
        announce.write.close()
        log.close()
        defer { store.close() }
        // Wait until every holder of the pipe has let go: the supervisor once the run has its
        // place (it writes one byte first), the relay once the run's record is written.
        var placed = false
        while true {
            _ = Poll.readable([announce.read], timeoutMilliseconds: -1)
            guard let bytes = try? announce.read.read(upTo: 16) else { continue }
            if bytes.isEmpty { break }
            if bytes.contains(0x71) { placed = true }
        }
        announce.read.close()
        guard placed, (try? store.run(id)) != nil else {
            throw GuardFailure("run \(id) did not get its place in the queue; see \(store.logPath(id))")
        }
        return id
    }

    /// The detached side of a submit: leads a session of its own, starts the front (the
    /// guarded run proper) with its output on a pipe, records the run, and copies the output
    /// to the log, up to the cap, until every writer is gone.
    static func relay(_ configuration: GuardConfiguration, id: String, store: RunStore, log: FileDescriptor, announce: FileDescriptor) -> Never {
        let reporter = configuration.reporter
        do {
            try Processes.startSession()
            // Submitted from inside a guarded command, the run is no part of it: it keeps no
            // descriptor of the outer run (its lock's owner record would stay held for as long
            // as this run lives) and no nested-call token (it queues like any caller).
            FileDescriptor.closeAll(keeping: [log.rawValue, announce.rawValue, store.directory.descriptor.rawValue])
            let output = try FileSystem.pipe()
            let input = try FileSystem.open("/dev/null", .readOnly)
            // Nothing of the caller's stays open here: a `$(seqexec --submit …)` reads to the
            // end of its pipe, which must come when the id is printed, not when the run ends.
            try input.duplicate(onto: 0)
            try log.duplicate(onto: 1)
            try log.duplicate(onto: 2)
            let frontPid = try Processes.fork()
            if frontPid == 0 {
                output.read.close()
                log.close()
                store.close()
                try input.duplicate(onto: 0)
                try output.write.duplicate(onto: 1)
                try output.write.duplicate(onto: 2)
                input.close()
                output.write.close()
                var run = configuration
                run.runID = id
                run.ignoresInheritedTokens = true
                run.announce = announce
                ProcessExit.now(GuardedCommand.run(run))
            }
            input.close()
            output.write.close()
            let front = (try? ProcStat.read(frontPid))?.identity ?? ProcessIdentity(pid: frontPid, startTime: 0)
            do {
                try store.save(SubmittedRun(
                    id: id, command: GuardedCommand.displayCommand(configuration.arguments), submittedAt: Clock.wallTime(),
                    relay: ProcessIdentity.current(), front: front))
            } catch {
                // A run nobody could wait for must not run: it leaves the queue.
                Processes.signal(front, .terminate)
                throw error
            }
            announce.close()
            store.close()
            copy(output.read, to: log, maximumBytes: RunStore.defaultLogMaximumBytes)
            _ = try? Spawn.waitFor(frontPid)
            ProcessExit.now(0)
        } catch let failure as GuardFailure {
            reporter.error(failure.message)
        } catch {
            reporter.error("cannot start run \(id): \(error)")
        }
        ProcessExit.now(ExitCode.toolFailure)
    }

    /// Copies `source` to `log` until end of file; past `maximumBytes`, says so once in the
    /// log and reads the rest without keeping it, so the command never blocks on a full pipe.
    static func copy(_ source: FileDescriptor, to log: FileDescriptor, maximumBytes: Int) {
        var written = 0
        var capped = false
        while true {
            _ = Poll.readable([source], timeoutMilliseconds: -1)
            guard let bytes = try? source.read(upTo: 65536) else { continue }
            if bytes.isEmpty { return }
            if written + bytes.count <= maximumBytes {
                _ = try? log.writeAll(bytes)
                written += bytes.count
            } else if !capped {
                capped = true
                _ = try? log.writeAll(Array(bytes.prefix(max(0, maximumBytes - written))))
                _ = try? log.writeAll("\n[seqexec: the log reached \(maximumBytes >> 10) KB; the rest of the output was dropped]\n")
            }
        }
    }

    /// Where a submitted run is now, in words and for JSON.
    public enum State: Sendable, Equatable {
        case queued(position: Int, of: Int)
        case running(pid: Int32, since: WallTime)
        /// Between its place and its start: taking the lock, waiting out git or memory.
        case starting
        case ended(SubmittedRun.Result)
        /// Its processes are gone and no result was recorded (its supervisor was killed).
        case lost

        public var name: String {
            switch self {
            case .queued: return "queued"
            case .running: return "running"
            case .starting: return "starting"
            case .ended: return "ended"
            case .lost: return "lost"
            }
        }

        public var description: String {
            switch self {
            case .queued(let position, let total): return "queued, position \(position) of \(total)"
            case .running(let pid, let since): return "running, pid \(pid), since \(Clock.localClockTime(since))"
            case .starting: return "starting"
            case .ended(let result): return "ended with status \(result.status) (\(result.ended)) at \(Clock.localClockTime(result.endedAt))"
            case .lost: return "lost: its supervisor is gone and recorded no status"
            }
        }
    }

    static func state(of run: SubmittedRun, store: RunStore, lockDirectory: StateDirectory) -> State {
        if let result = try? store.result(run.id) { return .ended(result) }
        if !run.front.isAlive && !run.relay.isAlive {
            // The result may have landed between the two looks.
            if let result = try? store.result(run.id) { return .ended(result) }
            return .lost
        }
        if let queue = try? WaitQueue(directory: lockDirectory).read().ordered,
           let index = queue.firstIndex(where: { $0.process == run.front }) {
            return .queued(position: index + 1, of: queue.count)
        }
        for claim in (try? ProjectLock(directory: lockDirectory).inspect()) ?? [] where claim.record?.holder == run.front {
            if let record = claim.record { return .running(pid: (record.child ?? record.supervisor ?? record.holder).pid, since: record.since) }
        }
        return .starting
    }

    /// `seqexec --wait ID [-w S] [--tail]`: the run's output from the start (or from now),
    /// then its own exit status. Killing this process changes nothing about the run. With a
    /// time limit, gives up with 75 and says where the run is.
    @available(*, noasync)
    public static func wait(_ configuration: GuardConfiguration, id: String, timeout: Double?, tail: Bool) -> Int32 {
        let reporter = configuration.reporter
        let state: StateDirectory
        let store: RunStore
        let run: SubmittedRun
        let log: FileDescriptor
        do throws(GuardFailure) {
            (_, state) = try configuration.openState()
            store = try RunStore(state: state)
            do throws(GuardFailure) { run = try store.existing(id, listing: "'seqexec --runs'") } catch {
                state.close()
                store.close()
                throw error
            }
            guard let opened = try store.directory.openFile("\(id).log", .readOnly) else {
                throw GuardFailure("the log of run \(id) is gone (\(store.logPath(id))); see 'seqexec --runs'")
            }
            log = opened
        } catch {
            reporter.error(error.message)
            return error.exitCode
        }
        defer {
            log.close()
            store.close()
            state.close()
        }
        /// Copies what the log has gained to stdout; a closed stdout stops the copying, not the wait.
        var copying = true
        func drain(show: Bool) {
            while let bytes = try? log.read(upTo: 65536), !bytes.isEmpty {
                if show && copying {
                    do { try FileDescriptor.standardOutput.writeAll(bytes) } catch { copying = false }
                }
            }
        }
        drain(show: !tail)
        let relay = Processes.openPidfd(run.relay)
        defer { relay?.close() }
        let deadline = timeout.map { Clock.monotonicNanoseconds() + Int64($0 * 1e9) }
        while true {
            // The relay ends once every writer of the output is gone: the log is whole.
            if relay == nil || Poll.readable([relay!], timeoutMilliseconds: 0).contains(0) {
                drain(show: true)
                if let result = try? store.result(id) { return result.status }
                reporter.error("run \(id) ended without a status: its supervisor was killed (see \(store.logPath(id)))")
                return ExitCode.toolFailure
            }
            if let deadline, Clock.monotonicNanoseconds() >= deadline {
                drain(show: true)
                let now = Self.state(of: run, store: store, lockDirectory: state)
                reporter.error("run \(id) is still \(now.description); wait again with 'seqexec --wait \(id)'")
                return ExitCode.gaveUpWaiting
            }
            // Output is copied as it comes, every 50 ms (an inotify watch costs ~10 ms to
            // close here, more than a whole run); the end comes at once through the pidfd.
            var wait: Int64 = 50_000_000
            if let deadline { wait = min(wait, max(0, deadline - Clock.monotonicNanoseconds())) }
            _ = Poll.readable([relay!], timeoutMilliseconds: Int32(wait / 1_000_000))
            drain(show: true)
        }
    }

    /// `seqexec --runs [--json]`: the project's submitted runs, oldest first.
    public static func list(_ configuration: GuardConfiguration, json: Bool) -> Int32 {
        do {
            let (_, lanes) = try configuration.openState()
            defer { lanes.close() }
            let store = try RunStore(state: lanes)
            defer { store.close() }
            let runs = try store.runs()
            let states = runs.map { Self.state(of: $0, store: store, lockDirectory: lanes) }
            if json {
                print(JSON.encode(.array(zip(runs, states).map { run, now in Self.json(run, now, store: store) })))
            } else if runs.isEmpty {
                print("seqexec: no submitted runs in \(store.directory.path)")
            } else {
                var rows = [["ID", "STATE", "COMMAND", "LOG"]]
                for (run, now) in zip(runs, states) { rows.append([run.id, now.description, run.command, store.logPath(run.id)]) }
                print(TextTable.render(rows), terminator: "")
            }
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }

    /// One run and where it is now, as `--runs --json` gives it.
    static func json(_ run: SubmittedRun, _ now: State, store: RunStore) -> JSON.Value {
        var fields: [(String, JSON.Value)] = [
            ("id", .string(run.id)), ("command", .string(run.command)),
            ("submitted_at", .string(Clock.isoUTC(run.submittedAt))), ("state", .string(now.name)),
        ]
        switch now {
        case .queued(let position, let total): fields += [("position", .integer(Int64(position))), ("queue_length", .integer(Int64(total)))]
        case .running(let pid, let since): fields += [("pid", .integer(Int64(pid))), ("since", .string(Clock.isoUTC(since)))]
        case .ended(let result):
            fields += [("exit_status", .integer(Int64(result.status))), ("ended", .string(result.ended)), ("ended_at", .string(Clock.isoUTC(result.endedAt)))]
        case .starting, .lost: break
        }
        fields.append(("log", .string(store.logPath(run.id))))
        return .object(fields)
    }

    /// `seqexec --cancel ID`: a queued run leaves the queue (its front is asked to stop, as
    /// Ctrl-C would); a running one's command tree is ended through the one teardown
    /// (SIGTERM, the kill grace, SIGKILL). Waits for the run's status, then says what it did.
    @available(*, noasync)
    public static func cancel(_ configuration: GuardConfiguration, id: String) -> Int32 {
        do {
            print(try cancelRun(configuration, id: id))
            return 0
        } catch {
            configuration.reporter.error(error.message)
            return error.exitCode
        }
    }

    /// Cancels run `id` as `--cancel` does; returns what it did, in one line.
    @available(*, noasync)
    public static func cancelRun(_ configuration: GuardConfiguration, id: String) throws(GuardFailure) -> String {
        do {
            let (_, state) = try configuration.openState()
            defer { state.close() }
            let store = try RunStore(state: state)
            defer { store.close() }
            let run = try store.existing(id, listing: "'seqexec --runs'")
            let before = Self.state(of: run, store: store, lockDirectory: state)
            switch before {
            case .ended, .lost:
                return "run \(id) has already \(before.description)"
            case .running:
                let children = ((try? ProjectLock(directory: state).inspect()) ?? []).compactMap { claim in
                    claim.record?.holder == run.front ? claim.record?.child : nil
                }
                _ = Teardown.graceful(configuration.killGrace).run(find: Teardown.TreeFinder(roots: children).find)
            case .queued, .starting:
                Processes.signal(run.front, .terminate)
            }
            // The status follows once the supervisor has recorded the run.
            if let relay = Processes.openPidfd(run.relay) {
                _ = Poll.readable([relay], timeoutMilliseconds: Int32((configuration.killGrace + 10) * 1000))
                relay.close()
            }
            let after = Self.state(of: run, store: store, lockDirectory: state)
            return "cancelled run \(id) (it was \(before.name)); it \(after == .lost ? "is " : "has ")\(after.description)"
        }
    }
}
