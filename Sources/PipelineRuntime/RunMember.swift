import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// The set-up every process that `seqpipe run` starts shares (a worker, the scheduler, a
/// recurring run): signals as a stop request, orphans reparented here, a lifeline to its
/// parent (readable once the parent is gone), and the store's lock kept open in every command
/// it starts, but no other inherited descriptor.
public struct RunMember: Sendable {
    public var signals: SignalReceiver
    public var lifeline: FileDescriptor?
    public var locks: PipelineLocks?

    /// - Parameters: `what` names the member in messages; `parent` is the pid that started it
    ///   (0: none to watch); `lockDescriptor` the store's lock it inherited, if any.
    /// - Throws: `GuardFailure` when the parent is already gone, the descriptor is not this
    ///   store's lock, or the signal set-up fails.
    public static func setUp(_ what: String, parent: Int32, lockDescriptor: Int32?, paths: PipelinePaths) throws(GuardFailure) -> RunMember {
        FileDescriptor.closeInheritedOnExec()
        let signals: SignalReceiver
        do {
            signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup, .child])
            // Where pidfds are missing, the parent's death still arrives, as a stop request.
            try Processes.setParentDeathSignal(.terminate)
            try Processes.becomeChildSubreaper()
        } catch { throw GuardFailure("\(what): cannot set up: \(error)", errno: error) }
        var member = RunMember(signals: signals)
        if parent != 0 {
            member.lifeline = Processes.parentPidfd(expected: parent)
            if Processes.parentPid != parent { throw GuardFailure("\(what): its parent (pid \(parent)) is already gone") }
        }
        if let lockDescriptor {
            do {
                var opened = try paths.locks(create: false)
                try opened.inherit(descriptor: lockDescriptor)
                member.locks = opened
            } catch { throw GuardFailure("\(what): \(error.message)", errno: error.errno) }
        }
        return member
    }
}
