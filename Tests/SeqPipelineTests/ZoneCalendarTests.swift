import SeqDatabase
import Foundation
@testable import PipelineModel
@testable import SeqPipeline
import SeqSystem
import Testing

@Suite struct ZoneCalendarTests {
    /// The day in a zone, computed from tzdata without touching TZ: the environment is the
    /// same after, since a worker's steps inherit it and a TZ they did not ask for would move
    /// their clocks.
    @Test func theDayInAZoneLeavesTheEnvironmentAsItWas() {
        let before = ProcessInfo.processInfo.environment["TZ"]
        // 2026-12-01 23:30 UTC is already 2 December in Berlin and still 1 December in New York.
        let moment = 1_796_167_800.0
        #expect(ZoneCalendar.day(of: moment, zone: "UTC") == "2026-12-01")
        if ZoneCalendar.isKnownZone("Europe/Berlin") && ZoneCalendar.isKnownZone("America/New_York") {
            #expect(ZoneCalendar.day(of: moment, zone: "Europe/Berlin") == "2026-12-02")
            #expect(ZoneCalendar.day(of: moment, zone: "America/New_York") == "2026-12-01")
        } else {
            print("skipped: the Berlin/New York days (no tzdata here; apt-get install tzdata)")
        }
        #expect(ProcessInfo.processInfo.environment["TZ"] == before)
    }

    /// Against date(1), which reads the same files through glibc: moments on both sides of
    /// daylight-saving changes in both hemispheres, half-hour and 45-minute zones, a zone
    /// whose change happens at 26:00, and years past the files' last transition (the footer rule).
    @Test func daysAgreeWithDateAcrossZonesAndDaylightChanges() throws {
        let zones = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/St_Johns",
                     "Pacific/Chatham", "Asia/Jerusalem", "America/Sao_Paulo", "Pacific/Apia", "Africa/Casablanca"]
            .filter(ZoneCalendar.isKnownZone)
        guard zones.count >= 5, FileManager.default.isExecutableFile(atPath: "/bin/date") else {
            print("skipped: comparing days with date(1) (needs tzdata and coreutils: apt-get install tzdata coreutils)")
            return
        }
        var generator = SystemRandomNumberGenerator()
        var moments: [Int64] = [0, 1_711_846_800, 1_711_846_799, 1_729_990_800, 1_743_901_200, 1_759_593_600]
        // Minutes around midnight and around 01:00-03:00 local, where the days and the changes are.
        for _ in 0..<60 { moments.append(Int64.random(in: 0...4_102_444_800, using: &generator)) }
        for _ in 0..<40 { moments.append(Int64.random(in: 2_200_000_000...4_000_000_000, using: &generator) / 3600 * 3600 + [-60, 0, 59, 1800].randomElement()!) }
        var script = ""
        for zone in zones { for moment in moments { script += "TZ=\(zone) /bin/date -d @\(moment) +%F\n" } }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let expected = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        process.waitUntilExit()
        try #require(expected.count == zones.count * moments.count)
        var index = 0
        var mismatches: [String] = []
        for zone in zones {
            for moment in moments {
                let day = ZoneCalendar.day(of: Double(moment), zone: zone)
                if day != expected[index] { mismatches.append("\(zone) @\(moment): \(day), date says \(expected[index])") }
                index += 1
            }
        }
        print("zone calendar: \(index) days in \(zones.count) zones compared with date(1), \(mismatches.count) different")
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }

    /// The footer rule on its own, where files run out (fat files stop in 2037, slim ones
    /// earlier): northern and southern hemisphere, and times past 24:00.
    @Test func posixRulesGiveTheOffsetsTheySay() throws {
        let berlin = try #require(PosixZoneRule("CET-1CEST,M3.5.0,M10.5.0/3"))
        // 2040-03-25 is the last Sunday of March 2040: 01:00 UTC is the change.
        let change = CivilDate(year: 2040, month: 3, day: 25).daysSinceEpoch * 86400 + 3600
        #expect(berlin.offset(at: change - 1) == 3600)
        #expect(berlin.offset(at: change) == 7200)
        let sydney = try #require(PosixZoneRule("AEST-10AEDT,M10.1.0,M4.1.0/3"))
        let january = CivilDate(year: 2045, month: 1, day: 15).daysSinceEpoch * 86400
        let july = CivilDate(year: 2045, month: 7, day: 15).daysSinceEpoch * 86400
        #expect(sydney.offset(at: january) == 11 * 3600)
        #expect(sydney.offset(at: july) == 10 * 3600)
        #expect(try #require(PosixZoneRule("<+0545>-5:45")).offset(at: july) == 5 * 3600 + 45 * 60)
        #expect(try #require(PosixZoneRule("EST5EDT,M3.2.0,M11.1.0")).offset(at: january) == -5 * 3600)
        #expect(try #require(PosixZoneRule("IST-2IDT,M3.4.4/26,M10.5.0")).offset(at: july) == 3 * 3600)
        #expect(PosixZoneRule("CET-1CEST,M3.5") == nil)
        #expect(PosixZoneRule("") == nil)
        #expect(ZoneRules(tzif: Array("not a zone file".utf8)) == nil)
    }

    @Test func civilDatesRoundTripAndKnowTheirWeekday() {
        for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
            let date = CivilDate(daysSinceEpoch: days)
            #expect(date.daysSinceEpoch == days)
        }
        #expect(CivilDate(daysSinceEpoch: 0).weekday == 4)
        #expect(CivilDate(daysSinceEpoch: -1).weekday == 3)
        #expect(CivilDate(year: 2026, month: 12, day: 2).weekday == 3)
        #expect(ZoneCalendar.parseISO("2026-12-02T10:00:00Z") == 1_796_205_600)
    }
}
