import Glibc
import SeqSystem
import Testing

@Suite(.serialized) struct SleepTests {
    /// The one signal-aware sleep: it runs its time out, goes on through a signal it was not
    /// told to stop for, and ends early for one it was, or when a descriptor turns readable.
    /// Signals are sent to this thread only (it blocks them), never to the test process.
    @Test func sleepEndsOnAStopSignalOrAReadableDescriptorAndOnlyThen() throws {
        let receiver = try SignalReceiver(signals: [.user1, .user2])
        defer {
            _ = receiver.drain()
            receiver.restoreMask()
            receiver.descriptor.close()
        }
        let isStop: (ReceivedSignal) -> Bool = { $0.signal == .user2 }

        var start = Clock.monotonicNanoseconds()
        #expect(receiver.sleep(seconds: 0.05, stopsOn: isStop) == .elapsed)
        #expect(Clock.monotonicNanoseconds() - start >= 50_000_000)

        pthread_kill(pthread_self(), SIGUSR1)
        start = Clock.monotonicNanoseconds()
        #expect(receiver.sleep(seconds: 0.05, stopsOn: isStop) == .elapsed, "SIGUSR1 is not a stop")
        #expect(Clock.monotonicNanoseconds() - start >= 50_000_000)

        pthread_kill(pthread_self(), SIGUSR2)
        guard case .stopped(let signal) = receiver.sleep(seconds: 30, stopsOn: isStop) else {
            Issue.record("SIGUSR2 did not end the sleep")
            return
        }
        #expect(signal.signal == .user2)

        let pipe = try FileSystem.pipe()
        defer { pipe.read.close(); pipe.write.close() }
        try pipe.write.writeAll([1])
        #expect(receiver.sleep(seconds: 30, wakingOn: [pipe.read], stopsOn: isStop) == .readable(index: 0))
    }
}
