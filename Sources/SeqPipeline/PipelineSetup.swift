import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// `seqpipe init` and `device remove`'s drain: what a command does to a pipeline's files
// and its running workers.

extension PipelinePaths {
    /// `seqpipe init`: the store's directory, the store at the current schema, and a
    /// pipeline.json with every default unless one is there. Returns whether it wrote the config.
    /// - Throws: `GuardFailure` naming the directory, store or file that could not be made.
    public func initialize() throws(GuardFailure) -> (wroteConfig: Bool, store: SQLJobStore) {
        do { try FileSystem.makeDirectories(directory) } catch {
            throw GuardFailure("cannot create \(directory): \(error)", errno: error)
        }
        let store: SQLJobStore
        do {
            store = try SQLJobStore.open(database, create: true)
            try store.migrate()
        } catch { throw GuardFailure(error.message, cause: error) }
        guard !FileSystem.exists(config) else { return (false, store) }
        do { try FileSystem.writeFile(config, PipelineConfig.defaultText, mode: 0o644, replacing: false) } catch {
            throw GuardFailure("cannot write \(config): \(error)", errno: error)
        }
        return (true, store)
    }

    /// How `stopAll` went.
    public enum StopOutcome: Sendable {
        case notRunning
        /// Every process of the run ended; `killed` are those that needed SIGKILL.
        case stopped(orchestrator: Int32, killed: [Teardown.Target])
        /// The orchestrator could not be signalled (another user's).
        case cannotSignal(orchestrator: Int32)
        /// Some still hold the store after the grace.
        case stillRunning(orchestrator: Int32, killed: [Teardown.Target], survivors: [Int32])

        /// What `stop-all` prints: the lines for stdout and, when it failed, the one-line error.
        public func report(store: String) -> (text: String, failure: String?) {
            switch self {
            case .notRunning:
                return ("no orchestrator runs on \(store)\n", nil)
            case .cannotSignal(let pid):
                return ("", "cannot signal the orchestrator (pid \(pid)); is it another user's?")
            case .stopped(_, let killed), .stillRunning(_, let killed, _):
                var text = ""
                for target in killed { text += "killed pid \(target.process.pid) (\(target.command)): it did not stop within the grace\n" }
                if case .stillRunning(_, _, let survivors) = self {
                    return (text, "the run has not stopped yet (pid \(survivors.map { "\($0)" }.joined(separator: ", "))); see 'seqpipe status'")
                }
                return (text + "stopped\n", nil)
            }
        }
    }

    /// `seqpipe stop-all`: asks the orchestrator running on this store to stop, and waits for
    /// it and every process of its run (`stopRun`), with `config`'s grace times.
    @available(*, noasync)
    public func stopAll(config: PipelineConfig, announce: (Int32) -> Void) -> StopOutcome {
        guard isURL || FileSystem.exists(database), let locks = try? locks(create: false) else { return .notRunning }
        defer { locks.directory.close() }
        guard let holder = locks.instance.holder() else { return .notRunning }
        let pid = holder.holder.pid
        announce(pid)
        guard let (_, report) = locks.stopRun(grace: config.workerStopSeconds + 10) else {
            return .stopped(orchestrator: pid, killed: [])
        }
        if report.ended.isEmpty && holder.holder.isAlive { return .cannotSignal(orchestrator: pid) }
        let killed = report.ended.filter { report.killed.contains($0.process) }
        if !report.isComplete || locks.store.isHeld {
            return .stillRunning(orchestrator: pid, killed: killed, survivors: report.survivors.map(\.process.pid))
        }
        return .stopped(orchestrator: pid, killed: killed)
    }
}

extension PipelinePaths {
    /// Before `device remove`: a device a worker of the run holds (the kernel's word: its
    /// lock) is refused, or with `force` drained: held so it takes no new job, and waited
    /// for until its job is done. Its worker then stops and is not started again.
    /// - Throws: `GuardFailure` (exit 1) naming the holder and the two ways on.
    @available(*, noasync)
    public func drainDevice(_ name: String, store: any JobStore, force: Bool, announce: (String) -> Void) throws(GuardFailure) {
        guard let locks = try? locks(create: false) else { return }
        defer { locks.directory.close() }
        let lock = locks.device(name)
        guard lock.isHeld else { return }
        guard force else {
            let holders = lock.holders().map { "\($0.pid)" }.joined(separator: ", ")
            throw GuardFailure(exitCode: 1, "device \(name) is in use by a worker of the running orchestrator (pid \(holders)); stop the run first ('seqpipe stop-all'), or drain it with 'seqpipe device remove \(name) --force' (its worker finishes its job, then stops)")
        }
        do {
            try store.holdDevice(name, until: Moment.now() + 365 * 86400, reason: "being removed (device remove --force)")
            var said = false
            while let job = try store.jobs(in: [.claimed, .running], limit: 100_000).jobs.first(where: { $0.device == name }) {
                if !said { announce("device \(name): no new job; waiting for job \(job.id) to finish\n") }
                said = true
                _ = Poll.readable([], timeoutMilliseconds: 250)
            }
        } catch { throw GuardFailure("store \(storeName): \(error.message)", cause: error) }
    }
}
