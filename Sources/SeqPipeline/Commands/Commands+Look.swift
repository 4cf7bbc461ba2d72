import PipelineStore
import PipelineModel
import SeqDatabase
import PipelineRuntime
import SeqGuard
import SeqSystem

// The commands that look: status, jobs, show, events, show-config and schedule.

extension Invocation {
    func statusCommand() {
        expect(0, "no arguments but --json or --watch")
        let store = openStore()
        let follower = ConfigFollower(loadConfig(store: store))
        func read() -> PipelineStatus {
            storeCall { () throws(StoreError) in try PipelineStatus.read(store: store, config: follower.current(store), paths: paths) }
        }
        guard options.has("--watch") else {
            let status = read()
            printOut(options.has("--json") ? status.json : status.text)
            ProcessExit.now(0)
        }
        if options.has("--json") { usage("--watch redraws the text; --json is for one reading") }
        do { try PipelineStatus.watch(FileDescriptor.standardOutput, every: 2, read: read) } catch { fail(error.message) }
    }

    func jobsCommand() {
        expect(0, "options only: seqpipe jobs [--status S] [--account A] [--device D] [--error TYPE] [--search TEXT] [--json]")
        let query = jobQuery()
        let jobs = storeCall { () throws(StoreError) in try openStore().jobs() }.filter(query.matches)
        printOut(options.has("--json") ? JSON.encode(.object([("total", .integer(Int64(jobs.count))), ("jobs", .array(jobs.map(Dashboard.jobJSON)))])) + "\n"
                 : Listing.jobs(jobs))
    }

    func showCommand() {
        expect(1, "a job id: seqpipe show JOB [--json]")
        let store = openStore()
        guard let job = storeCall({ () throws(StoreError) in try store.job(words[0]) }) else { fail("no job '\(words[0])'; see 'seqpipe jobs'", 1) }
        let detail = storeCall { () throws(StoreError) in try JobDetail.read(job, store: store, config: loadConfig(store: store), paths: paths) }
        printOut(options.has("--json") ? JSON.encode(detail.json) + "\n" : detail.text)
    }

    func eventsCommand() {
        expect(0, "no arguments but --limit N, --since T and --json")
        var since: Moment?
        if let text = options.value("--since") {
            guard let moment = Listing.parseSince(text, now: Moment.now()) else {
                usage("--since '\(text)' must be a time such as 2026-11-23T10:00:00Z, seconds since the epoch, or an age such as 90s, 15m, 2h, 1d")
            }
            since = moment
        }
        let store = openStore()
        let limit = number("--limit", default: since == nil ? 50 : 10_000, minimum: 1)
        printOut(Listing.events(storeCall { () throws(StoreError) in try store.events(since: since, limit: limit) }, json: options.has("--json")))
    }

    func showConfigCommand() {
        expect(0, "no arguments")
        let store = paths.isURL || FileSystem.exists(paths.database) ? openStore() : nil
        let devices = store.map { store in storeCall { () throws(StoreError) in try store.devices() } } ?? []
        // The config in force: the running orchestrator's version, else what the next run uses.
        let running = store.flatMap { store in (try? store.runningConfigVersion()) ?? nil }
        printOut(Listing.configuration(running != nil ? loadConfig(store: store) : nextRunConfig(), devices: devices, paths: paths))
    }

    func scheduleCommand() {
        expect(0, "no arguments but --minutes N")
        printOut(Listing.schedule(nextRunConfig(), paths: paths, minutes: number("--minutes", default: 60, minimum: 1)))
    }
}
