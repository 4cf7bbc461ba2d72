import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// The orchestrator's part in a farm: its host's lease, the take-over of lost hosts, the
// scheduler's leadership, and fencing itself off when the store cannot be reached.
extension Orchestrator {
    /// What the heartbeat keeps between beats.
    struct HostBeat {
        /// This host runs the farm's scheduler.
        var leading: Bool
        /// When the lease was last renewed (monotonic nanoseconds).
        var lastRenewal: Int64
        /// The host ended its workers: its lease could not be renewed.
        var selfFenced = false
        /// The store could not be reached since this wall-clock time (said once).
        var storeDown: Moment?
    }

    /// This host's heartbeat in the store: its lease renewed (registered again if another
    /// host took it over meanwhile), other hosts whose lease ran out taken over, the
    /// scheduler's leadership kept or taken. A host that cannot renew for longer than its
    /// lease less one heartbeat ends its workers' trees (it fences itself: another host will
    /// take its claims over) and starts them again once the store answers.
    @available(*, noasync)
    func beatInStore(_ slots: inout [Slot], _ beat: inout HostBeat, reap: () -> Void) {
        let now = Clock.monotonicNanoseconds()
        do {
            if try !store.renewHost(leaseSeconds: config.hostLeaseSeconds, now: Moment.now()) {
                say("host \(store.host) was taken over by another host (its lease ran out); its claims went back to the queue; registering again")
                _ = try store.registerHost(pid: Processes.currentPid, leaseSeconds: config.hostLeaseSeconds, now: Moment.now(), configVersion: config.version)
            }
            beat.lastRenewal = now
            noteStore(&beat)
            if beat.selfFenced {
                beat.selfFenced = false
                say("the store answers again: starting the workers")
                for index in slots.indices where slots[index].process == nil { slots[index].restartAt = now }
            }
            for takeover in try store.takeOverLostHosts(policy: config.policy, now: Moment.now()) {
                say("host \(takeover.host) lost its lease: took back \(takeover.requeued.isEmpty ? "no claim" : takeover.requeued.joined(separator: " ")); \(takeover.devices.count) of its devices held as unreachable")
            }
            if !config.recurring.isEmpty {
                let leads = try store.lead("scheduler", leaseSeconds: config.hostLeaseSeconds, now: Moment.now())
                if leads != beat.leading {
                    say(leads ? "this host leads the scheduler now" : "another host leads the scheduler now: stopping this one's")
                    beat.leading = leads
                    for index in slots.indices where slots[index].scheduler {
                        if leads { slots[index].restartAt = now } else if let process = slots[index].process { Processes.signal(process, .terminate) }
                    }
                }
            }
        } catch {
            if !error.isUnreachable { reporter.error("store \(paths.storeName): \(error.message)") }
            noteStore(&beat)
            let silent = Double(now - beat.lastRenewal) / 1e9
            if !beat.selfFenced && silent > config.hostLeaseSeconds - config.heartbeatSeconds {
                beat.selfFenced = true
                say("the lease of host \(store.host) could not be renewed for \(formatDuration(silent.rounded())): ending its workers before another host takes their jobs over")
                let members = slots.compactMap(\.process)
                Teardown.graceful(config.killGraceSeconds).run(find: Teardown.TreeFinder(roots: members).find, reap: reap)
            }
        }
    }
}
