import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// `seqpipe device-server`: the guard around one device's server, started by the device's
/// worker as a member of the run. It keeps the store's and the device's locks open in the
/// server (so the fence of a dead worker finds the server among the device's holders), runs
/// the server through the Supervisor (its whole tree under the memory limit, a SIGTERM passed
/// on, leftovers ended), and ends the tree at once when the worker is gone.
public enum DeviceServerMember {
    /// Runs `argv` until it ends; returns its shell exit status.
    /// - Parameter deviceLock: the device's lock as the worker passed it down.
    @available(*, noasync)
    public static func run(_ argv: [String], member: RunMember, device: String, deviceLock: Int32?, config: PipelineConfig,
                           reporter: Reporter) -> Int32 {
        guard !argv.isEmpty else {
            reporter.error("device-server: no server command given")
            return 2
        }
        if let raw = deviceLock {
            guard let locks = member.locks, let file = try? FileSystem.status(locks.device(device).name, relativeTo: locks.directory.descriptor),
                  let mine = try? FileDescriptor(rawValue: raw).status(), mine.device == file.device, mine.inode == file.inode else {
                reporter.error("device-server: descriptor \(raw) is not device \(device)'s lock; only a worker starts a device server")
                return ExitCode.toolFailure
            }
            // Numbered high and kept open across the exec: the server holds the device too.
            let held = FileDescriptor(rawValue: raw).movedUp()
            do { try held.clearCloseOnExec() } catch {
                reporter.error("device-server: cannot keep device \(device)'s lock open: \(error)")
                return ExitCode.toolFailure
            }
        }
        let input = try? FileSystem.open("/dev/null", [.readOnly])
        defer { input?.close() }
        var supervisor = Supervisor(
            signals: member.signals, reporter: reporter, timeout: nil, killGrace: config.killGraceSeconds,
            memory: config.serverMemoryMegabytes.map { MemoryPolicy(limitBytes: Int64($0) << 20, interval: 1) })
        supervisor.input = input
        supervisor.cancel = member.lifeline
        let run = supervisor.run(argv, environment: Spawn.currentEnvironment()) { _ in }
        switch run.ending {
        case .exited(let status): return status.shellExitCode
        case .couldNotStart(let error):
            reporter.error("device-server: cannot start '\(argv[0])': \(error)")
            return error == .noSuchFile ? ExitCode.notFound : ExitCode.cannotExecute
        case .memoryExceeded: return ExitCode.memoryLimit
        case .timedOut, .stopped: return 143
        }
    }
}

/// A worker's own device server as it runs: the guard member around it and, once seen, the
/// server process itself.
struct RunningServer {
    var member: ProcessIdentity
    var server: ProcessIdentity?
    var port: Int
}
