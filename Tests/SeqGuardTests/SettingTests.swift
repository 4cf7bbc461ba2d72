@testable import SeqGuard
import Testing

@Suite struct SettingTests {
    /// The one duration format of the three tools.
    @Test func durationsKeepTheirFractionWhenShort() {
        #expect(formatDuration(0.85) == "0.9s" && formatDuration(12.34) == "12.3s" && formatDuration(59.97) == "1m00s")
        #expect(formatDuration(12.9, wholeSeconds: true) == "12s" && formatDuration(3725) == "1h02m" && formatDuration(-1) == "0s")
        #expect(formatDuration(0.2) == "0.2s")
        #expect(formatDuration(0.01) == "10ms")
        #expect(formatDuration(8) == "8s")
        #expect(formatDuration(600) == "10m00s")
    }

    @Test func durationsAreDecimalAndBounded() throws {
        #expect(try Setting.seconds("30", "-t") == 30)
        #expect(try Setting.seconds("2.5", "-t") == 2.5)
        #expect(try Setting.seconds(".5", "-t") == 0.5)
        #expect(try Setting.seconds("31536000", "-t") == 31_536_000)
        for bad in ["1e10", "0x10", "inf", "nan", "-1", "+1", "31536000.5", "1.2.3", "", ".", " 1", "1 ", "١"] {
            #expect(throws: GuardFailure.self, "\(bad)") { try Setting.seconds(bad, "-t") }
        }
    }

    @Test func durationsTakeUnits() throws {
        #expect(try Setting.seconds("500ms", "-t") == 0.5)
        #expect(try Setting.seconds("90s", "-t") == 90)
        #expect(try Setting.seconds("10m", "-t") == 600)
        #expect(try Setting.seconds("1h30m", "-t") == 5400)
        #expect(try Setting.seconds("1.5h", "-t") == 5400)
        #expect(try Setting.seconds("365d", "-t") == 31_536_000)
        for bad in ["366d", "1h30", "h", "1x", "1hh", "1H", "1h 30m", "-1m", "1e3s", "ms"] {
            #expect(throws: GuardFailure.self, "\(bad)") { try Setting.seconds(bad, "-t") }
        }
    }

    @Test func wholeNumbersAreDigitsAndBounded() throws {
        #expect(try Setting.wholeNumber("0", "-m", minimum: 0) == 0)
        #expect(try Setting.wholeNumber("1073741824", "-m", minimum: 0) == 1 << 30)
        for bad in ["17592186044416", "9223372036854775807", "99999999999999999999", "-1", "+5", "0x10", "1e3", "", "12a"] {
            #expect(throws: GuardFailure.self, "\(bad)") { try Setting.wholeNumber(bad, "-m", minimum: 0) }
        }
    }

    /// Random strings never trap and never give a value out of range.
    @Test func randomStringsNeitherCrashNorEscapeTheRange() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789.eE+-xXabcdfinINFpP _\u{0}\u{FF}٣".unicodeScalars)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...24, using: &generator)
            var text = ""
            for _ in 0..<length { text.unicodeScalars.append(alphabet.randomElement(using: &generator)!) }
            if let value = try? Setting.seconds(text, "-t") {
                #expect(value >= 0 && value <= Setting.maximumSeconds && Int64(value * 1e9) >= 0, "\(text)")
            }
            if let value = try? Setting.wholeNumber(text, "-m", minimum: 0) {
                #expect(value >= 0 && value <= Setting.maximumWholeNumber && Int64(value) << 20 > 0 || value == 0, "\(text)")
            }
        }
    }
}

/// seqexec's and make-seq's options are declared once (`GuardOptions`): the scanner, `--help`,
/// the environment and the completions all read the same list, so it must be consistent.
@Suite struct DeclaredOptionsTests {
    @Test func everyOptionAndVariableIsDeclaredOnce() {
        for options in [GuardOptions.seqexec, GuardOptions.makeSeq] {
            let names = options.specs.flatMap(\.names)
            #expect(Set(names).count == names.count, "a name declared twice: \(names)")
            for option in options where option.spec != nil {
                #expect(!option.summary.isEmpty && !option.help.isEmpty, "\(option.name ?? "") has a summary and help")
                #expect(option.helpLinesMention, "\(option.name ?? "")")
            }
        }
        let variables = GuardOptions.settings.environmentNames
        #expect(Set(variables).count == variables.count && variables.count >= 17)
        #expect(GuardOptions.settings.allSatisfy { $0.apply != nil }, "every setting sets something")
        #expect(GuardOptions.seqexecModes.allSatisfy { $0.apply == nil && $0.environment == nil }, "a mode is not a setting")
    }

    /// A value given under any name reaches the configuration through the one declaration,
    /// and a bad one is refused naming the option as typed.
    @Test func anOptionSetsWhatItsDeclarationSays() throws {
        var configuration = GuardConfiguration()
        try configuration.apply(.init(name: "--timeout", typed: "-t", value: "1m30s"))
        try configuration.apply(.init(name: "--priority", typed: "--priority", value: "low"))
        try configuration.apply(.init(name: "--verbose", typed: "-v", value: nil))
        try configuration.apply(.init(name: "--no-git-wait", typed: "--no-git-wait", value: nil))
        try configuration.apply(.init(name: "--git-wait", typed: "--git-wait", value: "3"))
        #expect(configuration.timeout == 90 && configuration.priority == .low && configuration.verbose)
        #expect(configuration.gitMode == .auto && configuration.gitWait == 3, "a wait asked for after --no-git-wait turns git safety back on")
        try configuration.apply(.init(name: "--timeout", typed: "-t", value: "0"))
        #expect(configuration.timeout == nil, "0 means no limit")
        #expect(throws: GuardFailure.self) { try configuration.apply(.init(name: "--slots", typed: "--slots", value: "0")) }
        do {
            try configuration.apply(.init(name: "--memory-metric", typed: "--memory-metric", value: "vsz"))
            Issue.record("vsz was accepted")
        } catch {
            #expect(error.message == "invalid --memory-metric 'vsz': expected rss or pss")
        }
    }
}

extension ToolOption {
    /// `--help` shows this option's first help line beside or under its names.
    var helpLinesMention: Bool {
        let text = [self].helpLines
        return spec.map { spec in spec.names.allSatisfy(text.contains) } ?? true
            && text.contains(help.split(separator: "\n")[0])
    }
}
