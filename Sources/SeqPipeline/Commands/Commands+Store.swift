import PipelineStore
import PipelineModel
import SeqDatabase
import PipelineRuntime
import SeqGuard
import SeqSystem

// The commands that fill and change the store: init, device, account, add-job, add-folder,
// import-csv, export-csv, seed, retry and cancel.

extension Invocation {
    func initializeCommand() {
        expect(0, "no arguments")
        do {
            let (wroteConfig, _) = try paths.initialize()
            if wroteConfig { printOut("wrote \(paths.config)\n") }
        } catch { fail(error.message) }
        let store = openStore()
        printOut("store \(paths.storeName) ready (schema \(store.schemaVersion))\n")
        // The config the runs use lives in the store; pipeline.json is how it gets there.
        if let (version, new) = pickUpEditedFile(into: store), new { printOut("config version \(version) loaded from \(paths.config)\n") }
    }

    func deviceCommand() {
        guard let sub = words.first else { usage("expected add, list, remove, pause, resume or release") }
        let store = openStore()
        switch sub {
        case "add":
            if words.count != 2 { usage("expected a device name: seqpipe device add NAME [--url URL] ...") }
            let device: Device
            do {
                // A store shared by hosts: the device is this machine's unless named otherwise; on
                // one host (SQLite) it is any host's, so a renamed machine still drives it.
                device = try Device.checked(
                    name: words[1], url: options.value("--url"), health: options.value("--health"), server: options.value("--server"),
                    serverRestart: options.value("--server-restart"), restart: options.value("--restart"), stop: options.value("--stop"),
                    host: options.value("--host") ?? (paths.isURL ? Processes.hostName() : ""), config: loadConfig(store: store))
            } catch { usage(error.message) }
            storeCall { () throws(StoreError) in try store.addDevice(device) }
            printOut("device \(device.name) added\n")
        case "list":
            if words.count != 1 { usage("expected no arguments") }
            printOut(Listing.devices(storeCall { () throws(StoreError) in try store.devices() }, localHost: store.host))
        case "remove":
            if words.count != 2 { usage("expected a device name") }
            let name = words[1]
            guard storeCall({ () throws(StoreError) in try store.devices() }).contains(where: { $0.name == name }) else {
                fail("no device '\(name)'; see 'seqpipe device list'", 1)
            }
            do { try paths.drainDevice(name, store: store, force: options.has("--force"), announce: printOut) } catch { fail(error.message, error.exitCode) }
            if !storeCall({ () throws(StoreError) in try store.removeDevice(name) }) {
                fail("no device '\(name)'; see 'seqpipe device list'", 1)
            }
            printOut("device \(name) removed\n")
        case "pause", "resume", "release":
            if words.count != 2 { usage("expected a device name: seqpipe device \(sub) NAME") }
            let action = HandActions.DeviceAction(rawValue: sub)!
            say(storeCall { () throws(StoreError) in try HandActions.device(action, words[1], by: HandActions.terminalUser, store: store) })
        default: usage("expected add, list, remove, pause, resume or release, not '\(sub)'")
        }
    }

    func accountCommand() {
        guard let sub = words.first else { usage("expected add, list or resume") }
        let store = openStore()
        switch sub {
        case "add":
            if words.count != 2 { usage("expected an account name: seqpipe account add NAME [--daily-limit N]") }
            let limit = number("--daily-limit", default: 0)
            storeCall { () throws(StoreError) in try store.addAccount(words[1], dailyLimit: limit) }
            printOut("account \(words[1]) added\(limit > 0 ? " (\(limit) a day)" : "")\n")
        case "list":
            if words.count != 1 { usage("expected no arguments") }
            let today = ZoneCalendar.day(of: Moment.now(), zone: loadConfig(store: store).dayZone)
            let done = storeCall { () throws(StoreError) in try store.successes(on: today) }
            printOut(Listing.accounts(storeCall { () throws(StoreError) in try store.accounts() }, successesToday: done, now: Moment.now()))
        case "resume":
            if words.count != 2 { usage("expected an account name") }
            say(storeCall { () throws(StoreError) in try HandActions.resumeAccount(words[1], by: HandActions.terminalUser, store: store) })
        default: usage("expected add, list or resume, not '\(sub)'")
        }
    }

    func addJobCommand() {
        expect(0, "options only: seqpipe add-job --account A [--video PATH] ...")
        guard let account = options.value("--account"), !account.isEmpty else { usage("--account is required") }
        let store = openStore()
        let config = loadConfig(store: store)
        var job = Job(id: options.value("--id") ?? "", account: account)
        job.priority = priority()
        job.maxAttempts = number("--max-attempts", default: config.maxAttempts, minimum: 1)
        if let video = options.value("--video") { job.payload.append(("video", video)) }
        if let caption = options.value("--caption") { job.payload.append(("caption", caption)) }
        for field in options.values("--field") {
            guard let equals = field.firstIndex(of: "="), equals != field.startIndex else { usage("--field '\(field)' must be KEY=VALUE") }
            job.payload.append((String(field[..<equals]), String(field[field.index(after: equals)...])))
        }
        if let missing = Placeholders.missing(for: job, config: config) { fail("job \(job.id.isEmpty ? "to add" : job.id): \(missing)", 1) }
        let ids = storeCall { () throws(StoreError) in try store.addJobs([job]) }
        printOut("\(ids[0])\n")
    }

    func addFolderCommand() {
        expect(1, "a folder: seqpipe add-folder DIR --accounts A B C")
        let accounts = options.values("--accounts")
        guard !accounts.isEmpty else { usage("--accounts A [B...] is required") }
        let store = openStore()
        let config = loadConfig(store: store)
        let existing = Set(storeCall { () throws(StoreError) in try store.jobs() }.compactMap { $0.field("video") })
        let made: (jobs: [Job], skipped: Int)
        do {
            made = try JobSources.folder(
                words[0], accounts: accounts, priority: priority(),
                maxAttempts: number("--max-attempts", default: config.maxAttempts, minimum: 1), existingVideos: existing)
        } catch { fail(error.message, 1) }
        if let job = made.jobs.first, let missing = Placeholders.missing(for: job, config: config) { fail("\(words[0]): \(missing)", 1) }
        let ids = storeCall { () throws(StoreError) in try store.addJobs(made.jobs) }
        printOut("added \(ids.count) job\(ids.count == 1 ? "" : "s") over \(min(accounts.count, max(ids.count, 1))) account\(accounts.count == 1 ? "" : "s")\(made.skipped > 0 ? "; \(made.skipped) file(s) already queued" : "")\n")
    }

    func importCsvCommand() {
        expect(1, "a CSV file")
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(words[0]) } catch { fail("cannot read \(words[0]): \(error)", 1) }
        let store = openStore()
        let config = loadConfig(store: store)
        let rows: [(job: Job, line: Int)]
        var problems: [(line: Int, text: String)]
        do {
            let read = try ProgressCSV.importRows(ProgressCSV.text(bytes, file: words[0]), file: words[0], defaultMaxAttempts: config.maxAttempts)
            rows = read.rows
            problems = read.problems.map { ($0.line, $0.message) }
        } catch {
            fail(error.message, 1)
        }
        // Every bad row, each on its own line, in the file's order; nothing is imported then.
        let known = Set(storeCall { () throws(StoreError) in try store.jobs() }.map(\.id))
        for (job, line) in rows {
            if known.contains(job.id) {
                problems.append((line, "\(words[0]):\(line): job '\(job.id)' is already in the store; give it another id, or drop the row"))
            } else if let missing = Placeholders.missing(for: job, config: config) {
                problems.append((line, "\(words[0]):\(line): job \(job.id): \(missing)"))
            }
        }
        if !problems.isEmpty {
            for problem in problems.sorted(by: { $0.line < $1.line }) { reporter.error(problem.text) }
            fail("\(words[0]): \(problems.count) bad row\(problems.count == 1 ? "" : "s"); nothing imported", 1)
        }
        let ids = storeCall { () throws(StoreError) in try store.addJobs(rows.map(\.job)) }
        printOut("imported \(ids.count) job\(ids.count == 1 ? "" : "s")\n")
    }

    func exportCsvCommand() {
        if words.count > 1 { usage("expected at most one file") }
        let store = openStore()
        let text = ProgressCSV.export(storeCall { () throws(StoreError) in try store.jobs() })
        guard let file = words.first else { printOut(text); ProcessExit.now(0) }
        do { try FileSystem.writeFile(file, text) } catch { fail("cannot write \(file): \(error)", 1) }
    }

    /// `seqpipe seed` and `run --seed-only`: the store filled from folders and CSVs, the
    /// progress CSV written with --export; no worker starts.
    func seedCommand() {
        expect(0, "options only: seqpipe seed [--folder DIR --accounts A B] [--csv FILE] [--export FILE]")
        let folders = options.values("--folder")
        let accounts = options.values("--accounts")
        if !folders.isEmpty && accounts.isEmpty { usage("--folder needs --accounts A [B...] to post the files to") }
        let store: SQLJobStore
        do { store = try paths.initialize().store } catch { fail(error.message) }
        let config = runConfig(store)
        do {
            printOut(try JobSources.seed(
                store: store, folders: folders, accounts: accounts, csvFiles: options.values("--csv"),
                priority: priority(), maxAttempts: number("--max-attempts", default: config.maxAttempts, minimum: 1),
                export: options.value("--export"), config: config))
        } catch { fail(error.message, 1) }
    }

    /// What a change by hand found: on stdout, or on stderr with exit 1 when nothing could change.
    func say(_ said: HandActions.Said) {
        if said.failure != 0 { fail(said.text, 1) }
        printOut(said.text + "\n")
    }

    /// `retry JOB...` or `retry --status S ...` (and cancel): each job by id, or every job a
    /// filter matches, with one line that counts what changed.
    func retryOrCancel() {
        guard let action = HandActions.JobAction(rawValue: command.name) else { usage("unknown action") }
        let query = jobQuery()
        let filtered = !query.isEmpty
        if words.isEmpty == !filtered {
            usage("give job ids or filters (--status, --account, --device, --error, --search), one or the other")
        }
        let store = openStore()
        var worst = 0
        if filtered {
            let (lines, summary) = storeCall { () throws(StoreError) in try HandActions.jobs(action, matching: query, by: HandActions.terminalUser, store: store) }
            for line in lines where line.failure != 0 { reporter.error(line.text) }
            printOut(summary.text + "\n")
            worst = summary.failure
        } else {
            for id in words {
                let said = storeCall { () throws(StoreError) in try HandActions.job(action, id, by: HandActions.terminalUser, store: store) }
                if said.failure == 0 { printOut(said.text + "\n") } else { reporter.error(said.text) }
                worst = max(worst, said.failure)
            }
        }
        if worst != 0 { ProcessExit.now(1) }
    }
}
