import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// The store's locks, in one directory beside the database, named by the database file's
/// device and inode: whoever starts seqpipe on this store, by whatever path, finds them.
/// - `orchestrator.lock/owner`: the single-instance lock, held by every process of a run
///   (the orchestrator, its workers and scheduler, and every command they start).
/// - `device-NAME.lock`: held by a device's worker and everything it runs on the device.
/// - `job-ID.lock`: held by one attempt of a job, from its claim to its outcome, and by its
///   steps. A job goes back to the queue only once this is free.
public struct PipelineLocks: Sendable {
    public var directory: StateDirectory
    /// The store's lock as this run member inherited it (moved to a high number), if it did.
    public private(set) var inherited: FileDescriptor?

    public init(directory: StateDirectory) { self.directory = directory }

    public var instance: InstanceLock { InstanceLock(directory: directory) }

    /// The single-instance lock's owner file, as a lock whose holders can be found.
    public var store: LockFile { LockFile(directory: directory, name: "\(LockNamespace.pipeline.claimName)/\(ProjectLock.ownerFileName)") }

    public func device(_ name: String) -> LockFile { LockFile(directory: directory, name: "device-\(Self.fileName(name)).lock") }

    public func job(_ id: String) -> LockFile { LockFile(directory: directory, name: "job-\(Self.fileName(id)).lock") }

    /// A name as a file name: letters, digits, `.`, `_` and `-` as they are, the rest as
    /// %XX; a long one as its SHA-1.
    static func fileName(_ name: String) -> String {
        var text = ""
        for byte in name.utf8 {
            let plain = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || (byte == 0x2E && !text.isEmpty)
            if plain { text.append(Character(UnicodeScalar(byte))) } else {
                let hex = String(byte, radix: 16, uppercase: true)
                text += "%" + (byte < 16 ? "0" + hex : hex)
            }
        }
        return text.count <= 160 ? text : "sha1-" + SHA1.hexDigest(Array(name.utf8))
    }

    /// What each holder of the pipeline's locks is, for the lines that say what a fence ended:
    /// "job j00353 on d1", "device d1", "the store".
    public func roles(devices: [String], jobs: [Job]) -> [ProcessIdentity: String] {
        var roles: [ProcessIdentity: String] = [:]
        for process in store.holders() { roles[process] = "the store" }
        for name in devices { for process in device(name).holders() { roles[process] = "device \(name)" } }
        for job in jobs {
            for process in self.job(job.id).holders() { roles[process] = "job \(job.id)\(job.device.map { " on \($0)" } ?? "")" }
        }
        return roles
    }
}

extension PipelinePaths {
    /// The store's lock directory, beside the database (its real directory), named by the
    /// database file's device and inode.
    /// - Throws: `GuardFailure` when the store does not exist or the directory is unsafe.
    public func locks(create: Bool = true) throws(GuardFailure) -> PipelineLocks {
        if isURL {
            // A server's store: this host's lock state, named by the URL (password hidden),
            // where seqexec keeps its own (SEQEXEC_STATE_DIR, else /tmp/seqguard-UID).
            let base = Spawn.environmentValue("SEQEXEC_STATE_DIR").flatMap { $0.isEmpty ? nil : $0 }
            let directory = try StateDirectory.open(project: Project(root: "store \(storeName)"), base: base, namespace: .pipeline, create: create)
            return PipelineLocks(directory: directory)
        }
        let real: String
        let status: FileStatus
        do {
            real = try FileSystem.realPath(database)
            status = try FileSystem.status(real)
        } catch {
            throw GuardFailure("no store at \(database): \(error); create it with 'seqpipe init'", errno: error)
        }
        let slash = real.lastIndex(of: "/")!
        let base = slash == real.startIndex ? "/" : String(real[..<slash])
        let directory = try StateDirectory.open(
            project: Project(root: "store \(status.device):\(status.inode)"), base: base, namespace: .pipeline, create: create,
            checkBase: false)
        return PipelineLocks(directory: directory)
    }
}

/// Fencing: an attempt's leftovers are ended, and the kernel confirms its locks are free,
/// before anything else acts on its job or its device.
struct Fencer {
    var locks: PipelineLocks
    var store: any JobStore
    var config: PipelineConfig
    /// Where the lines go: the orchestrator's stderr or a worker's log.
    var say: (String) -> Void

    /// The step a claimed job was in, for "the orphaned post of j00353".
    func stepName(_ job: Job) -> String {
        config.steps.indices.contains(job.progress) ? config.steps[job.progress].name : "attempt"
    }

    /// Ends whatever still holds `device`'s lock or the locks of `jobs` (their attempts'
    /// leftovers), saying what it waits for in status and events, and waits until the kernel
    /// says all are free. Returns whether all are free.
    @available(*, noasync)
    func fence(device: String?, jobs: [Job], worker: Int?, sparing: Set<ProcessIdentity> = [], grace: Double? = nil,
               reap: () -> Void = {}) -> Bool {
        var files = jobs.map { locks.job($0.id) }
        if let device { files.append(locks.device(device)) }
        let key = "fence:\(device ?? jobs.first?.id ?? "-")"
        var raised = false
        let fence = LockFile.fence(
            files, teardown: .graceful(grace ?? config.killGraceSeconds), sparing: sparing, seconds: config.killGraceSeconds + 5,
            onHolders: { holders in
                let pids = holders.map { "\($0.process.pid)" }.joined(separator: ", ")
                let what = jobs.first.map { "the orphaned \(stepName($0)) of \($0.id)\(device.map { " on \($0)" } ?? "")" }
                    ?? "the orphaned processes on \(device ?? "-")"
                let message = "waiting for \(what) (pid \(pids.isEmpty ? "?" : pids)) to end"
                say(message)
                raised = true
                _ = try? store.raiseAlert(key, kind: .fence, message: message, now: Moment.now())
                try? store.addEvent(Event(at: Moment.now(), kind: .fence, job: jobs.first?.id, device: device, worker: worker, message: message))
            }, reap: reap)
        if raised {
            let ended = fence.report.ended.map { "pid \($0.process.pid) (\($0.command))\(fence.report.killed.contains($0.process) ? " with SIGKILL" : "")" }
            let message = fence.free
                ? "fenced: ended \(ended.isEmpty ? "nothing (it ended by itself)" : ended.joined(separator: ", ")); the lock is free"
                : "fence incomplete: \(fence.report.survivors.map { "pid \($0.process.pid)" }.joined(separator: ", ")) still hold\(fence.report.survivors.count == 1 ? "s" : "") the lock"
            say(message)
            try? store.addEvent(Event(at: Moment.now(), kind: fence.free ? .fenceDone : .fenceIncomplete, job: jobs.first?.id, device: device,
                                      worker: worker, message: message))
            if fence.free { _ = try? store.clearAlert(key, now: Moment.now()) }
        }
        return fence.free
    }

    /// Removes the lock files of jobs whose attempts are over (no process holds them).
    func forget(_ jobs: [Job]) {
        for job in jobs {
            let lock = locks.job(job.id)
            if let held = try? lock.tryAcquire() {
                lock.remove(holding: held)
                held.close()
            }
        }
    }
}

extension PipelineLocks {
    /// Keeps the store's lock, inherited from the orchestrator as descriptor `raw`, open in
    /// every command this process starts: the run's lock lives while any of them does.
    /// - Throws: `GuardFailure` when `raw` is not the store's lock.
    public mutating func inherit(descriptor raw: Int32) throws(GuardFailure) {
        guard raw > 2, let original = try? FileDescriptor(rawValue: raw).status(), original.isRegularFile else {
            throw GuardFailure("descriptor \(raw) is not the lock of this store (\(store.path)); only 'seqpipe run' starts workers")
        }
        // Numbered high, so a step's `exec 8>file` cannot close it by landing on its number.
        let fd = FileDescriptor(rawValue: raw).movedUp()
        guard let mine = try? fd.status(), let file = try? FileSystem.status(store.name, relativeTo: directory.descriptor),
              mine.device == file.device, mine.inode == file.inode else {
            throw GuardFailure("descriptor \(raw) is not the lock of this store (\(store.path)); only 'seqpipe run' starts workers")
        }
        do { try fd.clearCloseOnExec() } catch { throw GuardFailure("cannot keep the store's lock open: \(error)", errno: error) }
        inherited = fd
    }

    /// Asks the orchestrator holding the store to stop and waits for every process of its run
    /// to end: SIGTERM to the orchestrator and `grace` seconds for it to stop its workers,
    /// then SIGKILL to whatever still holds the store. Returns what was ended, or nil when
    /// no orchestrator runs.
    @available(*, noasync)
    public func stopRun(grace: Double) -> (orchestrator: OwnerRecord, report: Teardown.Report)? {
        guard let record = instance.holder() else { return nil }
        let orchestrator = record.holder
        let holders = { store.holders().map { Teardown.Target($0, command: (try? ProcStat.read($0.pid).command) ?? "?") } }
        let report = Teardown([.send(.terminate, grace: grace)]).run(find: { signal in
            if signal == .terminate && orchestrator.isAlive { return [Teardown.Target(orchestrator, command: record.command)] }
            // The orchestrator is gone (or the grace is over): the run's other processes.
            return holders()
        })
        return (record, report)
    }
}

extension LockNamespace {
    /// seqpipe's single-instance lock: one orchestrator per store.
    static let pipeline = LockNamespace(directoryPrefix: "seqpipe-", claimName: "orchestrator.lock")
}
