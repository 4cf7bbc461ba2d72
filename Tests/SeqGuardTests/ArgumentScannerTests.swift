import SeqGuard
import Testing

@Suite struct ArgumentScannerTests {
    let specs = [
        OptionSpec("-v", "--verbose"), OptionSpec("-q", "--quiet"), OptionSpec("-t", "--timeout", kind: .value),
        OptionSpec("--json"), OptionSpec("--accounts", kind: .values), OptionSpec("--priority", kind: .value),
    ]

    func scan(_ words: [String], stop: Bool = false) throws(UsageError) -> ScannedArguments {
        try ArgumentScanner.scan(words, options: specs, stopAtFirstPositional: stop)
    }

    @Test func bundledShortFlagsAndAttachedValues() throws {
        let scanned = try scan(["-vq", "-t5", "-vt", "7", "--timeout=9", "--timeout", "11"])
        #expect(scanned.options.map(\.name) == ["--verbose", "--quiet", "--timeout", "--verbose", "--timeout", "--timeout", "--timeout"])
        #expect(scanned.values("--timeout") == ["5", "7", "9", "11"])
        #expect(scanned.value("--timeout") == "11")
        #expect(scanned.options[2].typed == "-t" && scanned.options[5].typed == "--timeout")
        #expect(scanned.has("--quiet") && !scanned.has("--json"))
    }

    @Test func optionsAfterPositionalWordsUnlessACommandStarts() throws {
        let anywhere = try scan(["status", "--json", "extra", "-v"])
        #expect(anywhere.positional == ["status", "extra"] && anywhere.has("--json") && anywhere.has("--verbose"))
        let command = try scan(["-v", "make", "-j4", "--json"], stop: true)
        #expect(command.positional == ["make", "-j4", "--json"] && command.restIndex == 1 && !command.has("--json"))
        let none = try scan(["-v"], stop: true)
        #expect(none.positional.isEmpty && none.restIndex == 1)
    }

    @Test func doubleDashEndsOptionsAndALoneDashIsAWord() throws {
        let scanned = try scan(["-v", "--", "--json", "-q"], stop: true)
        #expect(scanned.positional == ["--json", "-q"] && scanned.restIndex == 2 && !scanned.has("--json"))
        let dash = try scan(["-", "-v"])
        #expect(dash.positional == ["-"] && dash.has("--verbose"))
    }

    @Test func valuesMayStartWithADashAndListsRunToTheNextOption() throws {
        #expect(try scan(["--priority", "-5"]).value("--priority") == "-5")
        let scanned = try scan(["dir", "--accounts", "a", "b", "c", "--json", "more"])
        #expect(scanned.values("--accounts") == ["a", "b", "c"] && scanned.positional == ["dir", "more"])
        #expect(try scan(["--accounts=a", "b"]).values("--accounts") == ["a", "b"])
    }

    @Test func mistakesAreNamed() {
        #expect(throws: UsageError("unknown option '--nope'")) { try scan(["--nope"]) }
        #expect(throws: UsageError("unknown option '-x' in '-vxq'")) { try scan(["-vxq"]) }
        #expect(throws: UsageError("unknown option '-x'")) { try scan(["-x"]) }
        #expect(throws: UsageError("option --json takes no value")) { try scan(["--json=1"]) }
        #expect(throws: UsageError("option -t needs a value")) { try scan(["-t"]) }
        #expect(throws: UsageError("option --timeout needs a value")) { try scan(["--timeout"]) }
        #expect(throws: UsageError("option --accounts needs at least one value")) { try scan(["--accounts", "--json"]) }
    }
}

@Suite struct HelpTextTests {
    let help = """
        OVERVIEW: a tool

        USAGE: tool [--db PATH] COMMAND [ARGS...]

        COMMANDS:
          init                 Create things.
          device add NAME [--url URL]
                     [--stop CMD]
          device list | device remove NAME
          retry JOB | cancel JOB

        OPTIONS:
          -h, --help           Show this help.

        """

    @Test func aCommandsLinesUnderTheUsageLine() throws {
        let device = try #require(HelpText.command("device", of: help, tool: "tool"))
        #expect(device == """
            USAGE: tool [--db PATH] COMMAND [ARGS...]

            COMMANDS:
              device add NAME [--url URL]
                         [--stop CMD]
              device list | device remove NAME

            Options go before or after the command; see 'tool --help' for the rest.

            """)
        #expect(HelpText.command("cancel", of: help, tool: "tool")?.contains("  retry JOB | cancel JOB\n") == true)
        #expect(HelpText.command("init", of: help, tool: "tool")?.contains("device") == false)
        #expect(HelpText.command("worker", of: help, tool: "tool") == nil)
        #expect(HelpText.command("-h", of: help, tool: "tool") == nil, "OPTIONS is not COMMANDS")
    }
}
