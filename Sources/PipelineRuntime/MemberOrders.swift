import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// What a process of `seqpipe run` is told when it is started (a worker or the scheduler by
/// the orchestrator, a device server by its worker, a recurring run by the scheduler): its
/// role, its device and index, the config version it runs under, the process it serves and
/// the descriptors it inherits. One type on both sides: `command` writes it for exec, and the
/// member reads it back with `init(role:options:words:)`, so no member parses argv by hand
/// and a restarted worker runs under the same config version as its siblings.
public struct MemberOrders: Sendable, Equatable {
    public enum Role: String, Sendable, CaseIterable {
        case worker
        case scheduler
        case recurringRun = "recurring-run"
        case deviceServer = "device-server"
    }

    public var role: Role
    /// The pid of the process it serves (its lifeline); 0 for none.
    public var parent: Int32
    /// The store's instance lock, inherited as this descriptor.
    public var lockDescriptor: Int32?
    /// The store's config version the run uses; nil reads the newest (or the file).
    public var configVersion: Int?
    /// A worker's or device server's worker index and device.
    public var index: Int?
    public var device: String?
    /// A device server's device lock, inherited as this descriptor.
    public var deviceLockDescriptor: Int32?
    /// A recurring run's job.
    public var job: String?
    /// A device server's command line.
    public var server: [String] = []

    public init(_ role: Role, parent: Int32, lockDescriptor: Int32?, configVersion: Int?) {
        self.role = role
        self.parent = parent
        self.lockDescriptor = lockDescriptor
        self.configVersion = configVersion
    }

    /// The options each role's hidden command accepts (its declaration in the command table).
    public static func options(for role: Role) -> [OptionSpec] {
        let common = [OptionSpec("--parent", kind: .value), OptionSpec("--lock-fd", kind: .value), OptionSpec("--config-version", kind: .value)]
        switch role {
        case .worker: return common + [OptionSpec("--index", kind: .value), OptionSpec("--device", kind: .value)]
        case .deviceServer: return common + [OptionSpec("--index", kind: .value), OptionSpec("--device", kind: .value), OptionSpec("--device-lock-fd", kind: .value)]
        case .scheduler, .recurringRun: return common
        }
    }

    /// The command line that starts the member: this executable, the store as the member
    /// must name it (`paths.memberStore`), and the orders.
    public func command(executable: String, paths: PipelinePaths) -> [String] {
        var argv = [executable] + paths.memberStore([]).arguments + ["--config", paths.config, role.rawValue, "--parent", String(parent)]
        if let lockDescriptor { argv += ["--lock-fd", String(lockDescriptor)] }
        if let configVersion { argv += ["--config-version", String(configVersion)] }
        if let index { argv += ["--index", String(index)] }
        if let device { argv += ["--device", device] }
        if let deviceLockDescriptor { argv += ["--device-lock-fd", String(deviceLockDescriptor)] }
        if let job { argv.append(job) }
        if role == .deviceServer { argv += ["--"] + server }
        return argv
    }

    /// The orders as the member's command line gave them (`options` scanned with
    /// `options(for:)`, `words` the rest); a missing or malformed one is named.
    public init(role: Role, options: ScannedArguments, words: [String]) throws(GuardFailure) {
        func number(_ name: String) throws(GuardFailure) -> Int? {
            guard let text = options.value(name) else { return nil }
            guard let value = Int(text), value >= 0 else { throw GuardFailure("\(role.rawValue): \(name) '\(text)' is not a whole number") }
            return value
        }
        self.init(role, parent: Int32(try number("--parent") ?? 0), lockDescriptor: try number("--lock-fd").map(Int32.init),
                  configVersion: try number("--config-version"))
        switch role {
        case .worker, .deviceServer:
            index = try number("--index") ?? 0
            guard let device = options.value("--device") else { throw GuardFailure("\(role.rawValue): --device is required") }
            self.device = device
            deviceLockDescriptor = try number("--device-lock-fd").map(Int32.init)
            server = role == .deviceServer ? words : []
        case .recurringRun:
            guard words.count == 1 else { throw GuardFailure("recurring-run: expected the name of a recurring job") }
            job = words[0]
        case .scheduler:
            break
        }
    }
}
