import SeqDatabase
import SeqSystem

/// Keeps a held shared lock's lease while the command runs, in a process of its own (a child
/// of the supervisor that owns the database connection from then on), and arms the kernel
/// timer that ends the command when the lease cannot be kept.
///
/// A process, not a thread: the release build is a static executable, and libpq, loaded at
/// run time, brings its own C library, which knows nothing of a thread the static one
/// started. A process also keeps a renewal stuck in a silent network out of the supervisor.
///
/// The argument that two hosts never both run under the lock: the timer is set from the
/// moment each successful renewal was *sent*, to fire `margin` seconds before `lease` runs
/// out from then. The database computed the lease's end after it received that statement,
/// so by its clock the lease ends later than the holder's timer assumes; and the supervisor
/// ends the tree (SIGTERM, its grace, SIGKILL) within `margin`. Another host takes the lock
/// only once the database's clock is past the lease's end; by then the tree is gone. The timer
/// is the kernel's (one timerfd, shared by the keeper and the supervisor across the fork): a
/// keeper stuck in a network call, or killed, cannot hold it back. What this cannot cover is a
/// holder whose whole machine stops (a frozen VM) and wakes after the lease: its command may
/// run a moment before the timer's expiry is seen. That is what `SEQEXEC_FENCE` is for.
final class LeaseKeeper {
    /// Readable once the command must end: the lease is about to run out unrenewed, or
    /// another run ended this one (replaced, cancelled, revoked).
    let timer: DeadlineTimer
    /// The keeper process.
    let pid: Int32
    /// What the keeper says (one line per news: `ended KIND BY`, `lost`, `error MESSAGE`).
    let news: FileDescriptor
    /// Written once to ask the keeper to give the lock back and exit.
    let stop: FileDescriptor
    /// Where the keeper hears of the command's process once it started.
    let told: FileDescriptor
    var heard: [UInt8] = []

    /// Why the timer fired early.
    enum Why: Equatable {
        case ended(SharedLock.Ending, by: String)
        case lost
    }

    /// Starts keeping run `id`'s lease, whose last renewal (the acquisition) was sent at
    /// `sentAt` on the boot clock.
    /// - Parameter grace: from SIGTERM to SIGKILL when the keeper itself ends the tree (its
    ///   supervisor is gone).
    init(lock: SharedLock, id: Int64, lease: Double, margin: Double, sentAt: Double, grace: Double) throws(Errno) {
        timer = try DeadlineTimer()
        timer.fire(inSeconds: sentAt + lease - margin - Clock.secondsSinceBoot())
        let news = try FileSystem.pipe()
        let stop = try FileSystem.pipe()
        let told = try FileSystem.pipe()
        let pid: Int32
        do { pid = try Processes.fork() } catch {
            for descriptor in [news.read, news.write, stop.read, stop.write, told.read, told.write] { descriptor.close() }
            throw error
        }
        if pid == 0 {
            news.read.close()
            stop.write.close()
            told.write.close()
            var keeper = Keeper(lock: lock, id: id, lease: lease, margin: margin, grace: grace, timer: timer,
                                news: news.write, stop: stop.read, told: told.read)
            keeper.keep()
        }
        news.write.close()
        stop.read.close()
        told.read.close()
        self.pid = pid
        self.news = news.read
        self.stop = stop.write
        self.told = told.write
    }

    deinit {
        news.close()
        stop.close()
        told.close()
    }

    /// Tells the keeper which process the command is, so that it can end the command's tree
    /// should the supervisor die.
    func tell(command: ProcessIdentity) {
        _ = try? told.writeAll(FrontReport.started(command))
    }

    /// The keeper's lines so far.
    func lines() -> [String] {
        while let chunk = try? news.read(upTo: 4096), !chunk.isEmpty { heard += chunk }
        return String(decoding: heard, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Why the command had to end, once the timer fired; nil while the lease is kept.
    var why: Why? {
        for line in lines().reversed() {
            if line == "lost" { return .lost }
            if line.hasPrefix("ended ") {
                let rest = line.dropFirst(6)
                let kind = rest.prefix { $0 != " " }
                return .ended(SharedLock.Ending(rawValue: String(kind)) ?? .revoked, by: String(rest.dropFirst(kind.count + 1)))
            }
        }
        return nil
    }

    /// The last error the keeper met renewing, if any.
    var lastError: String? {
        lines().last { $0.hasPrefix("error ") }.map { String($0.dropFirst(6)) }
    }

    /// Gives the lock back: the keeper deletes the run's row and exits. Waits up to `seconds`
    /// for it; a keeper stuck on a store that does not answer is killed (the lease runs out).
    func release(waitingUpTo seconds: Double) {
        _ = try? stop.writeAll([1])
        let deadline = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        // Reaped here, or already (by the supervisor's reaper): either way it is gone.
        func gone() -> Bool {
            do { return try Spawn.reap(pid) != nil } catch { return true }
        }
        // Its end closes the news pipe: wait on that, not on a clock.
        var ended = gone()
        while !ended, Clock.monotonicNanoseconds() < deadline {
            _ = lines()
            let left = max(1, (deadline - Clock.monotonicNanoseconds()) / 1_000_000)
            _ = Poll.readable([news], timeoutMilliseconds: Int32(clamping: left))
            ended = gone() || (try? news.read(upTo: 1)).map { $0.isEmpty } == true
        }
        if ended { _ = try? Spawn.waitFor(pid) }
        if !ended {
            _ = Processes.signalChild(pid, .kill)
            _ = try? Spawn.waitFor(pid)
        }
    }
}

/// The keeper process's part: renew every third of the lease (every half second while the
/// store does not answer), re-arming the timer after each success; asked to stop, give the
/// lock back. If the supervisor dies (its end of `stop` closes), renew no more and end the
/// command's tree: with the supervisor and the front both gone, no one else would, and the
/// lease is about to pass to another host.
struct Keeper {
    let lock: SharedLock
    let id: Int64
    let lease: Double
    let margin: Double
    let grace: Double
    let timer: DeadlineTimer
    let news: FileDescriptor
    let stop: FileDescriptor
    let told: FileDescriptor
    var command: ProcessIdentity?
    var heard: [UInt8] = []

    mutating func keep() -> Never {
        let interval = lease / 3
        var failing = false
        var done = false
        var lastError = ""
        while true {
            let wait = failing ? min(interval, 0.5) : interval
            let ready = Poll.readable(command == nil ? [stop, told] : [stop], timeoutMilliseconds: Int32(wait * 1000))
            if ready.contains(1) { listen() }
            if ready.contains(0) {
                // A byte: the command is over, give the lock back. The end of the pipe: the
                // supervisor is gone while its tree may still run; end it, and let the lease
                // run out rather than hand the lock on now.
                if let byte = try? stop.read(upTo: 1), !byte.isEmpty { break }
                listen()
                if let command, command.isAlive {
                    Teardown.graceful(grace).run(find: Teardown.TreeFinder(roots: [command]).find)
                }
                ProcessExit.immediately(0)
            }
            guard !done else { continue }
            let sent = Clock.secondsSinceBoot()
            do {
                switch try lock.renew(id) {
                case .renewed:
                    failing = false
                    timer.fire(inSeconds: sent + lease - margin - Clock.secondsSinceBoot())
                case .ended(let kind, let by):
                    done = true
                    _ = try? news.writeAll("ended \(kind.rawValue) \(by)\n")
                    timer.fire(inSeconds: 0)
                case .lost:
                    done = true
                    _ = try? news.writeAll("lost\n")
                    timer.fire(inSeconds: 0)
                }
            } catch {
                failing = true
                if error.message != lastError {
                    lastError = error.message
                    _ = try? news.writeAll("error \(error.message)\n")
                }
            }
        }
        try? lock.leave(id)
        ProcessExit.immediately(0)
    }

    /// Reads the command's identity from the supervisor.
    mutating func listen() {
        while let chunk = try? told.read(upTo: 64), !chunk.isEmpty { heard += chunk }
        if let started = FrontReport.decode(heard).command { command = started }
    }
}
