import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// The orchestrator and a store that goes away: its start waits for it, and an outage is
// said once, and again (with an alert) when it ends.
extension Orchestrator {
    /// The start's work with the store, done again while the store cannot be reached (said
    /// once; a stop signal meanwhile ends the run): a store restarting as the run starts is
    /// waited for, not a failure. Every step of it may be done again.
    /// - Throws: `GuardFailure` with the store's message for any other failure.
    @available(*, noasync)
    func waitingOutTheStore<T>(_ body: () throws -> T) throws(GuardFailure) -> T {
        var said = false
        while true {
            do { return try body() } catch let error as StoreError where error.isUnreachable {
                if !said { reporter.error("\(error.message); waiting for it") }
                said = true
                if case .stopped = signals.sleep(seconds: 0.5, stopsOn: { [.terminate, .interrupt, .hangup].contains($0.signal) }) {
                    throw GuardFailure("store \(paths.storeName): \(error.message); stopped while waiting for it", cause: error)
                }
            } catch let error as StoreError {
                throw GuardFailure("store \(paths.storeName): \(error.message)", cause: error)
            } catch let failure as GuardFailure {
                throw failure
            } catch { throw GuardFailure("\(error)", cause: error) }
        }
    }

    /// Says once that the store cannot be reached (the connection tries again at each call,
    /// with backoff), and once that it answers again, then as an alert and an event.
    func noteStore(_ beat: inout HostBeat) {
        let recovered = store.takeRecovered()
        if let outage = store.outage {
            guard beat.storeDown == nil else { return }
            beat.storeDown = outage.since
            reporter.error(outage.error.message)
        } else if let since = recovered?.since ?? beat.storeDown {
            beat.storeDown = nil
            let message = "store \(paths.storeName) was unreachable for \(formatDuration((Moment.now() - since).rounded())) (since \(Clock.localDateTime(since.wallTime)))\(beat.selfFenced ? "; host \(store.host) ended its workers meanwhile" : "")"
            say("the store answers again: \(message)")
            _ = try? store.raiseAlert("store", kind: .store, message: message, now: Moment.now())
            try? store.addEvent(Event(at: Moment.now(), kind: .storeBack, message: message))
        }
    }
}
