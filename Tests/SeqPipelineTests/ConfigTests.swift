@testable import PipelineModel
@testable import SeqPipeline
import SeqDatabase
import SeqSystem
import Testing
import TestSupport

@Suite struct ConfigTests {
    func error(_ text: String) -> String {
        do {
            _ = try PipelineConfig.parse(text, path: "p.json")
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func theDefaultFileParsesToTheDefaults() throws {
        let config = try PipelineConfig.parse(PipelineConfig.defaultText, path: "p.json")
        let defaults = PipelineConfig()
        #expect(config.steps.count == 1 && config.steps[0].attempts == 3)
        #expect(config.appiumPort(worker: 2) == 4727 && config.systemPort(worker: 2) == 8220)
        #expect(config.heartbeatSeconds == 30 && config.hungAfterSeconds == 120)
        #expect(config.preBaseSeconds == defaults.preBaseSeconds && config.postFallbackSeconds == 15)
        #expect(config.policy.poisonAfter == 3 && config.policy.maxInfrastructureAttempts == 10)
        #expect(config.infrastructurePatterns == defaults.infrastructurePatterns)
        #expect(Set(config.permanentPatterns.map(\.type)) == Set(defaults.permanentPatterns.map(\.type)))
        #expect(config.scheduler.memoryCriticalMegabytes == defaults.scheduler.memoryCriticalMegabytes && config.pools.isEmpty)
        #expect(config.watchdog.intervalSeconds == 300 && config.watchdog.hungAfterSeconds == 900 && config.watchdog.producer == nil)
        #expect(config.watchdog.healthIntervalSeconds == defaults.watchdog.healthIntervalSeconds && config.watchdog.claimMaxSeconds == 1800)
    }

    @Test func resetTimingAndAccountRestParse() throws {
        let config = try PipelineConfig.parse(#"{"steps": [{"run": ["x"]}], "reset": ["r"], "reset_when": "both", "account_rest_seconds": [60, 120]}"#, path: "p.json")
        #expect(config.resetWhen == .both && config.resetWhen.beforeJob && config.resetWhen.betweenAttempts)
        #expect(config.policy.accountRestSeconds == 60...120)
        let plain = try PipelineConfig.parse(#"{"steps": [{"run": ["x"]}], "account_rest_seconds": 0}"#, path: "p.json")
        #expect(plain.resetWhen == .attempt && plain.policy.accountRestSeconds == nil)
        #expect(error(#"{"steps": [{"run": ["x"]}], "reset_when": "always"}"#).contains("reset_when: expected \"job\""))
        #expect(error(#"{"steps": [{"run": ["x"]}], "account_rest_seconds": [5, 1]}"#).contains("account_rest_seconds: expected"))
    }

    @Test func badConfigNamesTheFileTheKeyAndWhatWasExpected() {
        #expect(error("{") == "p.json: not valid JSON; check brackets, quotes and commas (no trailing commas, no comments)")
        #expect(error(#"{"steps": []}"#).hasPrefix("p.json: steps: expected a non-empty list of steps"))
        #expect(error(#"{"steps": [{"run": "echo hi"}]}"#).hasPrefix("p.json: steps[0].run: expected"))
        #expect(error(#"{"steps": [{"run": ["x"], "timeout_seconds": "ten"}]}"#).hasPrefix("p.json: steps[0].timeout_seconds: expected"))
        #expect(error(#"{"steps": [{"run": ["x"]}], "retries": {"max_attempt": 3}}"#).hasPrefix("p.json: retries.max_attempt:"))
        #expect(error(#"{"steps": [{"run": ["x"]}], "day_zone": "Mars/Olympus"}"#).contains("day_zone: expected an IANA time zone"))
        #expect(error(#"{"steps": [{"run": ["x"]}], "workers": {"appium_port_base": 0}}"#).hasPrefix("p.json: workers.appium_port_base: expected"))
    }

    @Test func recurringJobsParseWithDefaultsAndNameBadKeys() throws {
        let config = try PipelineConfig.parse(#"""
            {"steps": [{"run": ["x"]}],
             "recurring": [{"name": "posting", "run": ["post"], "interval_seconds": 300, "priority": "P0", "critical": true},
                           {"name": "plan", "run": ["plan"], "interval_seconds": [5400, 7200], "offset_seconds": 120, "overlap": "queue"}]}
            """#, path: "p.json")
        #expect(config.recurring.map(\.name) == ["posting", "plan"])
        #expect(config.recurring[0].attempts == 3 && config.recurring[1].attempts == 1)  // critical or not
        #expect(config.recurring[1].intervalMinimum == 5400 && config.recurring[1].intervalMaximum == 7200)
        #expect((0..<20).allSatisfy { _ in (5400...7200).contains(config.recurring[1].nextInterval()) })
        let timeline = Schedule.timeline(config.recurring, horizon: 3600).map { "\(Schedule.clock($0.at)) \($0.job.name)" }
        #expect(timeline.prefix(3) == ["0:00 posting", "2:00 plan", "5:00 posting"])
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [{"name": "a", "run": ["x"], "interval_seconds": [9, 3]}]}"#)
            .hasPrefix("p.json: recurring[0].interval_seconds: expected seconds between runs"))
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [{"name": "a", "run": ["x"], "interval_seconds": 1, "priority": "P9"}]}"#)
            .hasPrefix("p.json: recurring[0].priority: expected one of \"P0\""))
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [{"name": "a", "run": ["x"], "interval_seconds": 1}, {"name": "a", "run": ["y"], "interval_seconds": 1}]}"#)
            .contains("recurring[1].name: expected a name no other recurring job has"))
        #expect(error(#"{"steps": [{"run": ["x"]}], "scheduler": {"missed": "all"}}"#) == "p.json: scheduler.missed: expected \"once\" or \"skip\" (found \"all\")")
    }

    @Test func watchdogPoolsAndDependenciesParseAndNameBadReferences() throws {
        let config = try PipelineConfig.parse(#"""
            {"steps": [{"run": ["x"]}],
             "pools": {"browser": 3},
             "watchdog": {"interval_seconds": 60, "producer": "plan"},
             "recurring": [{"name": "plan", "run": ["plan"], "interval_seconds": 300, "stuck_after_seconds": 7800, "needs": ["browser"]},
                           {"name": "reply", "run": ["reply"], "interval_seconds": 300, "hung_after_seconds": 120,
                            "after": [{"job": "plan", "max_age_seconds": 1800}]}]}
            """#, path: "p.json")
        #expect(config.pools == ["browser": 3] && config.watchdog.intervalSeconds == 60 && config.watchdog.producer == "plan")
        #expect(config.recurring[0].hungAfterSeconds == 900 && config.recurring[0].stuckAfterSeconds == 7800 && config.recurring[0].needs == ["browser"])
        #expect(config.recurring[1].hungAfterSeconds == 120 && config.recurring[1].stuckAfterSeconds == nil)
        #expect(config.recurring[1].after.map(\.job) == ["plan"] && config.recurring[1].after[0].maxAgeSeconds == 1800)
        let job = { (name: String, extra: String) in #"{"name": "\#(name)", "run": ["x"], "interval_seconds": 1\#(extra)}"# }
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [\#(job("a", #", "needs": ["gpu"]"#))]}"#)
            == #"p.json: recurring[0].needs[0]: expected a pool named in "pools" (found "gpu"; pools: none defined)"#)
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [\#(job("a", #", "after": [{"job": "b", "max_age_seconds": 5}]"#))]}"#)
            .hasPrefix(#"p.json: recurring[0].after[0].job: expected the name of another recurring job (found "b""#))
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [\#(job("a", #", "after": [{"job": "b"}]"#))]}"#)
            .hasPrefix("p.json: recurring[0].after[0].max_age_seconds: expected how recent"))
        #expect(error(#"{"steps": [{"run": ["x"]}], "recurring": [\#(job("a", #", "after": [{"job": "b", "max_age_seconds": 5}]"#)), \#(job("b", #", "after": [{"job": "a", "max_age_seconds": 5}]"#))]}"#)
            == #"p.json: recurring: expected jobs whose "after" rules do not wait on each other in a circle (found a → b → a)"#)
        #expect(error(#"{"steps": [{"run": ["x"]}], "watchdog": {"producer": "nobody"}, "recurring": [\#(job("a", ""))]}"#)
            .hasPrefix(#"p.json: watchdog.producer: expected the name of a recurring job that adds jobs (found "nobody""#))
        #expect(error(#"{"steps": [{"run": ["x"]}], "pools": {"browser": 0}}"#) == "p.json: pools.browser: expected a whole number ≥ 1")
        #expect(error(#"{"steps": [{"run": ["x"]}], "watchdog": {"every": 5}}"#).hasPrefix("p.json: watchdog.every: unknown key"))
    }

    @Test func placeholdersFillFromTheJobAndRefuseUnknownNames() throws {
        let placeholders = Placeholders(values: ["job_id": "j1", "video": "/v/a b.mp4"])
        #expect(try placeholders.fill(["post", "{video}", "--id={job_id}", "{{literal}}"]) == ["post", "/v/a b.mp4", "--id=j1", "{literal}"])
        #expect(throws: ConfigError.self) { try placeholders.fill("{caption}") }
    }

    @Test func failuresAreClassedByTheConfiguredPatterns() {
        let classifier = Classifier(config: PipelineConfig())
        #expect(classifier.classify(output: "Error: Account SUSPENDED", timedOut: false).0 == .permanent(type: "suspended"))
        #expect(classifier.classify(output: "adb: device offline", timedOut: false).0 == .infrastructure)
        #expect(classifier.classify(output: "", timedOut: true).0 == .infrastructure)
        #expect(classifier.classify(output: "NullPointerException", timedOut: false).0 == .retryable)
    }

    @Test func delaysFollowTheDevicesResponseTime() {
        let config = PipelineConfig()
        #expect(config.delay(pre: true, responseSeconds: 2) == 8 + 3)
        #expect(config.delay(pre: false, responseSeconds: 2) == 10 + 3)
        #expect(config.delay(pre: true, responseSeconds: 60) == 8 + 8)  // capped
        #expect(config.delay(pre: true, responseSeconds: nil) == 12)  // nothing measured
        #expect(config.delay(pre: false, responseSeconds: nil) == 15)
    }

}

@Suite struct ProgressCSVTests {
    @Test func exportThenImportGivesTheSameRows() throws {
        let directory = TemporaryDirectory()
        let store = try makeStore(directory)
        var tricky = Job(id: "a", account: "alice")
        tricky.payload = [("video", "/media/one, two.mp4"), ("caption", "say \"hi\"\nsecond line")]
        var failed = Job(id: "b", account: "bob")
        failed.status = .failed
        failed.error = "account suspended"
        failed.errorType = "suspended"
        failed.attempts = 2
        failed.completedAt = 1_795_400_000
        var running = Job(id: "c", account: "carol")
        running.status = .running
        running.worker = 1
        _ = try store.addJobs([tricky, failed, running])
        let exported = ProgressCSV.export(try store.jobs())
        #expect(exported.hasPrefix("job_id,account,video_path,caption,status,worker_id,claimed_at,completed_at,error,attempts,max_attempts,retry_at,error_type,priority\r\n"))

        let imported = try ProgressCSV.importJobs(exported, file: "progress.csv", defaultMaxAttempts: 3)
        let other = TemporaryDirectory()
        let copy = try makeStore(other)
        _ = try copy.addJobs(imported)
        let again = ProgressCSV.export(try copy.jobs())
        // A row that was running when exported comes back pending: its run died with the export.
        let expected = exported.split(separator: "\r\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("c,carol,,,running,1,") ? "c,carol,,,pending,1," + $0.dropFirst("c,carol,,,running,1,".count) : String($0) }
            .joined(separator: "\r\n")
        #expect(again == expected)
        #expect(try copy.job("a")?.field("caption") == "say \"hi\"\nsecond line")
        #expect(try copy.job("b")?.completedAt == 1_795_400_000)
    }

    @Test func badRowsNameTheLine() {
        func error(_ text: String) -> String {
            do { _ = try ProgressCSV.importJobs(text, file: "in.csv", defaultMaxAttempts: 3); return "no error" } catch { return error.message }
        }
        #expect(error("job_id,account\nj1,\n") == "in.csv:2: account is empty for job j1")
        #expect(error("job_id,account,status\nj1,a,done\n").hasPrefix("in.csv:2: status 'done' is not one of pending"))
        #expect(error("job_id,account,caption\nj1,a,\"open\n") == "in.csv:2: a quoted field never ends; close its double quote")
        #expect(error("video,caption\n").hasPrefix("in.csv:1: no 'job_id' column"))
    }
}

@Suite struct ShellWordsTests {
    @Test func splitsLikeAShellWithoutOne() throws {
        #expect(try ShellWords.split("appium -p {appium_port}  --log-level info") == ["appium", "-p", "{appium_port}", "--log-level", "info"])
        #expect(try ShellWords.split("a 'b c' \"d \\\"e\\\" $\" f\\ g ''") == ["a", "b c", "d \"e\" $", "f g", ""])
        #expect(try ShellWords.split("   ") == [])
    }

    @Test func refusesWhatOnlyAShellWouldMean() {
        for line in ["appium | tee log", "a; b", "a > log", "echo $HOME", "a && b", "x `y`"] {
            #expect(throws: ConfigError.self) { try ShellWords.split(line) }
        }
        #expect(throws: ConfigError.self) { try ShellWords.split("a 'b") }
        #expect(throws: ConfigError.self) { try ShellWords.split("a \"b") }
    }
}

@Suite struct LayeredErrorTests {
    /// A store that cannot be opened is said by the layer above in its own words, and the
    /// store's own error is kept as the cause, which a caller can still ask.
    @Test func aStoreFailureKeepsItsCauseAcrossTheLayers() throws {
        let directory = TemporaryDirectory()
        let database = directory.path + "/pipeline.db"
        try FileSystem.writeFile(database, String(repeating: "not a database ", count: 400))
        do {
            _ = try PipelinePaths(database: database, config: directory.path + "/pipeline.json").initialize()
            Issue.record("a file that is no database was opened as a store")
        } catch {
            let cause = try #require(error.cause as? StoreError, "\(error.message)")
            #expect(!cause.isUnreachable && error.message.contains(cause.message), "\(error.message) / \(cause.message)")
        }
    }
}

/// Each command's own help: every option it declares is named there, and how it exits.
@Suite struct CommandHelpTests {
    @Test func everyCommandsHelpNamesItsOptionsAndItsExits() {
        for command in PipelineCommand.all where !command.hidden && !command.help.isEmpty {
            let details = command.details
            #expect(details.contains("EXIT: 0"), "\(command.name)'s help says how it exits")
            for option in command.options.flatMap(\.names) {
                #expect(details.contains(option), "\(command.name) --help names \(option)")
            }
        }
    }
}
