import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// A worker riding out its store: an outage is said once and waited for, and the writes an
// attempt's outcome depends on are tried until the store takes them.
extension Worker {
    /// Says once that the store cannot be reached.
    mutating func noteStoreLost(_ error: StoreError) {
        guard !storeLost else { return }
        storeLost = true
        log(error.message)
    }

    /// Says once that it answers again.
    mutating func noteStoreBack() {
        let outage = store.takeRecovered()
        guard storeLost || outage != nil else { return }
        storeLost = false
        log("the store answers again\(outage.map { " (unreachable for \(formatDuration((Moment.now() - $0.since).rounded())))" } ?? "")")
    }

    /// A write the outcome of an attempt depends on, tried until the store takes it: an
    /// outage only delays it (a stop request too: the orchestrator's grace bounds the wait).
    /// Nil once the orchestrator is gone, which ends the worker and fences its claim.
    /// - Throws: what the store refused for another reason than being unreachable.
    mutating func stored<T>(_ what: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T? {
        while true {
            do {
                let result = try body()
                noteStoreBack()
                return result
            } catch where error.isUnreachable {
                if !storeLost { log("\(what) waits for the store: \(error.message)") }
                storeLost = true
                switch signals.sleep(seconds: 0.25, wakingOn: lifeline.map { [$0] } ?? [], stopsOn: { [.terminate, .interrupt, .hangup].contains($0.signal) }) {
                case .readable:
                    noteOrphaned()
                    return nil
                case .stopped(let received):
                    if !stopping { log("\(received.signal.name): stopping once the store has taken \(what)") }
                    stopping = true
                case .elapsed:
                    break
                }
            }
        }
    }
}
