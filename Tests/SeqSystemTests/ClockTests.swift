import Glibc
import SeqSystem
import Testing

@Suite(.serialized) struct ClockTests {
    /// The day in a zone, and no trace of the zone left in the environment: a worker's steps
    /// inherit it, and a TZ they did not ask for would move their clocks.
    @Test func theDayInAZoneLeavesTheEnvironmentAsItWas() {
        let before = getenv("TZ").map { String(cString: $0) }
        // 2026-12-01 23:30 UTC is already 2 December in Berlin and still 1 December in New York.
        let moment = 1_796_167_800.0
        #expect(Clock.day(of: moment, zone: "UTC") == "2026-12-01")
        if Clock.isKnownZone("Europe/Berlin") && Clock.isKnownZone("America/New_York") {
            #expect(Clock.day(of: moment, zone: "Europe/Berlin") == "2026-12-02")
            #expect(Clock.day(of: moment, zone: "America/New_York") == "2026-12-01")
        }
        #expect(getenv("TZ").map { String(cString: $0) } == before)
    }
}
