import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// `seqpipe bench-claims`: how many claims a store takes per second from concurrent
/// claimers with no step processes (scripts/bench-pipeline reads it). The parent starts N
/// members of itself; each claims on its own device and records a success until nothing is
/// left; the parent prints the claims and the wall time.
public enum ClaimBench {
    /// One claimer: claim and finish on device `d<index>` until no job is left. Returns the claims made.
    public static func member(store: any JobStore, index: Int) throws(StoreError) -> Int {
        var claims = 0
        let policy = FailurePolicy()
        while true {
            let now = Moment.now()
            guard let claim = try store.claim(worker: index, device: "d\(index)", now: now, today: "bench", bootSeconds: Clock.secondsSinceBoot()) else {
                if try store.remainingWork(today: "bench") == 0 { return claims }
                continue
            }
            claims += 1
            _ = try store.finish(claim, outcome: .success, policy: policy, now: now, today: "bench")
        }
    }

    /// Starts `claimers` members (`argv` plus the member's index), waits for them, and
    /// answers the claims they made and the wall time in seconds.
    @available(*, noasync)
    public static func run(claimers: Int, argv: [String], environment: [String]) throws(GuardFailure) -> (claims: Int, seconds: Double) {
        let started = Clock.monotonicNanoseconds()
        var members: [(pid: Int32, output: String)] = []
        for index in 0..<claimers {
            let output = "/tmp/seqpipe-bench-claims-\(Processes.currentPid)-\(index)"
            let file: FileDescriptor
            do { file = try FileSystem.open(output, [.writeOnly, .create, .truncate], mode: 0o600) } catch {
                throw GuardFailure("cannot open \(output): \(error)", errno: error)
            }
            defer { file.close() }
            do {
                members.append((try Spawn.spawn(argv + [String(index)], environment: environment, resetSignals: [], output: file), output))
            } catch { throw GuardFailure("cannot start a claimer: \(error)", errno: error) }
        }
        var claims = 0
        var failures: [String] = []
        for member in members {
            let status = try? Spawn.waitFor(member.pid)
            let text = String(decoding: (try? FileSystem.readFile(member.output)) ?? [], as: UTF8.self)
            try? FileSystem.removeFile(member.output)
            if status == .exited(0), let count = Int(text.split(separator: "\n").last ?? "") { claims += count } else { failures.append(text) }
        }
        guard failures.isEmpty else { throw GuardFailure("a claimer failed: \(failures.joined(separator: "; "))") }
        return (claims, Double(Clock.monotonicNanoseconds() - started) / 1e9)
    }
}
