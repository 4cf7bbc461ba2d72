import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// `seqpipe serve`: the dashboard of a store, answered from its own read-only connection.
///   GET  /                     the page (HTML, its script and its chart inline; nothing fetched from elsewhere)
///   GET  /api/status           `status --json`, plus the queue, its time to empty and whether actions are on
///   GET  /api/jobs             jobs, filtered: ?status= &account= &device= &error= &q= &limit= (default 200)
///   GET  /api/jobs/ID          one job: its fields, its events, its step runs' output, why it waits
///   GET  /jobs/ID              the page, opened at that job (a job's address, to link or bookmark)
///   GET  /api/events           the latest events, oldest first: ?limit= (default 50, at most 500)
///   GET  /api/throughput       runs ended by outcome per bucket: ?minutes= (default 180, at most 10080);
///                              buckets of step_minutes (1 up to 3 h, 5, 10, then 60 for a week)
///   GET  /metrics              the same figures in the Prometheus text format
///   POST /api/jobs/ID/retry | /api/jobs/ID/cancel | /api/jobs/retry?FILTERS | /api/jobs/cancel?FILTERS
///        /api/accounts/NAME/resume | /api/devices/NAME/pause|resume|release | /api/stop
///                              with --allow-actions only, and the token; each recorded as an
///                              event naming the token
public struct Dashboard {
    public var store: any JobStore
    /// The config the run uses, followed while the page is served.
    let follower: ConfigFollower
    public var config: PipelineConfig { follower.current(store) }
    public var paths: PipelinePaths
    /// Whether the POST actions are served at all.
    public var allowActions = false
    /// What every action, and on a non-loopback address every request, must carry:
    /// `Authorization: Bearer TOKEN`, `X-Seqpipe-Token: TOKEN`, or (reads) `?token=TOKEN`.
    public var token: String?
    /// The token's name, which each action's event records: its file's name without the
    /// extension (`--token-file ops.token`: ops), or "printed at start" for a fresh one.
    public var tokenName = "printed at start"
    /// Whether reads need the token too (listening beyond loopback).
    public var tokenForReads = false
    /// Where it listens (`configure`).
    public var host = "127.0.0.1"
    public var port = 8080
    /// Answers to reads, kept for `cacheSeconds`: browsers polling together cost one reading
    /// of the store, not one each.
    let cache = ResponseCache()
    public var cacheSeconds = 1.0
    /// Whether the store was unreachable at the last request: said once when it goes, once
    /// when it comes back.
    let storeState = StoreState()

    /// The store's reachability as the requests found it.
    final class StoreState: @unchecked Sendable {
        // @unchecked: used from the server's one thread.
        var lost = false
        var say: (String) -> Void = { _ in }

        func note(_ error: StoreError?) {
            if let error, error.isUnreachable, !lost {
                lost = true
                say(error.message)
            } else if error == nil || error?.isUnreachable == false, lost {
                lost = false
                say("the store answers again")
            }
        }
    }

    public init(store: any JobStore, config: PipelineConfig, paths: PipelinePaths) {
        self.store = store
        follower = ConfigFollower(config)
        self.paths = paths
    }

    /// Answers kept a short while, by path and query.
    final class ResponseCache: @unchecked Sendable {
        // @unchecked: used from the server's one thread.
        var answers: [String: (at: Int64, response: HTTPResponse)] = [:]

        func answer(_ key: String, maximumAge: Double) -> HTTPResponse? {
            guard let kept = answers[key], Clock.monotonicNanoseconds() - kept.at < Int64(maximumAge * 1e9) else { return nil }
            return kept.response
        }

        func keep(_ key: String, _ response: HTTPResponse) {
            let now = Clock.monotonicNanoseconds()
            answers = answers.filter { now - $0.value.at < 60_000_000_000 }
            answers[key] = (now, response)
        }
    }

    /// The token in `file` (its first line, spaces around it dropped).
    /// - Throws: `GuardFailure` when it cannot be read or is empty.
    public static func token(file: String) throws(GuardFailure) -> String {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(file) } catch { throw GuardFailure("cannot read --token-file \(file): \(error)", errno: error) }
        let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map { $0.trimmingSpaces() } ?? ""
        guard !line.isEmpty else { throw GuardFailure("--token-file \(file) is empty; put the token on its first line") }
        return line
    }

    /// Where `serve` listens: `HOST:PORT` (IPv6 in brackets).
    public static func listenAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Where to listen, and the token rules: a token from `tokenFile`, else (with actions)
    /// a fresh one; beyond loopback a token file is required, and reads need the token too.
    /// - Throws: `GuardFailure` (exit 2) naming the option and the fix.
    public mutating func configure(listen: String, allowActions: Bool, tokenFile: String?) throws(GuardFailure) {
        guard let address = Self.listenAddress(listen) else {
            throw GuardFailure(exitCode: 2, "--listen '\(listen)' must be HOST:PORT, such as 127.0.0.1:8080")
        }
        var fileToken: String?
        if let tokenFile {
            do { fileToken = try Self.token(file: tokenFile) } catch { throw GuardFailure(exitCode: 2, error.message, cause: error) }
        }
        if !ListeningSocket.isLoopback(address.host) && fileToken == nil {
            throw GuardFailure(exitCode: 2, "--listen \(listen) is beyond loopback: give it a token with --token-file FILE (every request must then carry it)")
        }
        host = address.host
        port = address.port
        self.allowActions = allowActions
        let fresh: String? = allowActions ? Processes.randomHex(bytes: 16) : nil
        token = fileToken ?? fresh
        if let tokenFile {
            let base = tokenFile.split(separator: "/").last.map(String.init) ?? tokenFile
            tokenName = base.split(separator: ".").first.map(String.init) ?? base
        }
        tokenForReads = !ListeningSocket.isLoopback(address.host)
    }

    /// `seqpipe serve`: listens, says where (and the token, with actions), serves until
    /// SIGINT, SIGTERM or SIGHUP.
    /// - Throws: `GuardFailure` naming the address that cannot be listened on.
    @available(*, noasync)
    public func serve(say: @escaping (String) -> Void) throws(GuardFailure) {
        let signals: SignalReceiver
        do { signals = try SignalReceiver(signals: [.interrupt, .terminate, .hangup]) } catch {
            throw GuardFailure("cannot set up signal handling: \(error)", errno: error)
        }
        let socket: ListeningSocket
        do { socket = try ListeningSocket.open(host: host, port: port) } catch {
            throw GuardFailure("cannot listen on \(host):\(port): \(error); pick another --listen address", errno: error)
        }
        let shown = host.contains(":") ? "[\(host)]" : host
        say("serving the dashboard of \(paths.storeName) on http://\(shown):\(socket.port)/")
        if allowActions, let token { say("actions are on; their token: \(token)") }
        storeState.say = say
        HTTPServer(socket: socket, signals: signals).run(handle)
        socket.descriptor.close()
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        if tokenForReads && !carriesToken(request, allowQuery: true) {
            return .error(401, "this dashboard listens beyond loopback: send the token (Authorization: Bearer TOKEN, or ?token=TOKEN)")
        }
        let parts = request.path.split(separator: "/").map(String.init)
        // The page answers at / and at /jobs/ID, a job's own address (it opens that job).
        let page = parts.isEmpty || (parts.count == 2 && parts[0] == "jobs")
        let known = page || parts == ["metrics"] || (parts.first == "api" && (2...4).contains(parts.count))
        do {
            if request.method == "POST" { return try act(request, parts) }
            guard request.method == "GET" || request.method == "HEAD" else {
                return known ? .error(405, "\(request.method) is not served here; pages are GET, actions POST") : .error(404, "no such page: \(request.path)")
            }
            if page { return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: DashboardPage.html) }
            let key = request.path + "?" + request.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
            if let kept = cache.answer(key, maximumAge: cacheSeconds) { return kept }
            let answer = try read(request, parts)
            storeState.note(nil)
            if answer.status == 200 { cache.keep(key, answer) }
            return answer
        } catch {
            storeState.note(error)
            // An exporter whose source is away still answers, saying so (as mysqld_exporter's mysql_up).
            if error.isUnreachable && parts == ["metrics"] { return HTTPResponse(status: 200, contentType: Self.metricsType, body: Self.storeUp(false)) }
            return .error(error.isUnreachable ? 503 : 500, "store \(paths.storeName): \(error.message)")
        }
    }

    /// A GET of the API or /metrics, answered from the store.
    func read(_ request: HTTPRequest, _ parts: [String]) throws(StoreError) -> HTTPResponse {
        if parts == ["metrics"] {
            return HTTPResponse(status: 200, contentType: Self.metricsType, body: try metrics())
        }
        if parts == ["api", "status"] { return .json(try status()) }
        if parts == ["api", "jobs"] { return try jobs(request.query) }
        if parts.count == 3 && parts[0] == "api" && parts[1] == "jobs" { return try job(parts[2]) }
        if parts == ["api", "events"] {
            guard let limit = Self.number(request.query["limit"], default: 50, range: 1...500) else {
                return .error(400, "limit must be a whole number from 1 to 500")
            }
            return HTTPResponse(status: 200, contentType: "application/json", body: Listing.events(try store.events(since: nil, limit: limit), json: true))
        }
        if parts == ["api", "throughput"] {
            guard let minutes = Self.number(request.query["minutes"], default: 180, range: 1...10080) else {
                return .error(400, "minutes must be a whole number from 1 to 10080 (7 days)")
            }
            return .json(try throughputJSON(minutes: minutes))
        }
        return .error(404, "no such page: \(request.path)")
    }

    func carriesToken(_ request: HTTPRequest, allowQuery: Bool) -> Bool {
        guard let token else { return false }
        let offered = request.headers["authorization"].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
            ?? request.headers["x-seqpipe-token"] ?? (allowQuery ? request.query["token"] : nil)
        guard let offered, offered.utf8.count == token.utf8.count else { return false }
        // Compared in full whatever differs first.
        return zip(offered.utf8, token.utf8).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func number(_ text: String?, default fallback: Int, range: ClosedRange<Int>) -> Int? {
        guard let text else { return fallback }
        guard let value = Int(text), range.contains(value) else { return nil }
        return value
    }

    // MARK: reads

    func throughputJSON(minutes: Int) throws(StoreError) -> JSON.Value {
        let step = Throughput.step(forMinutes: minutes)
        let series = try Throughput.series(store: store, minutes: minutes, step: step, now: try store.currentTime())
        return .object([("step_minutes", .integer(Int64(step))), ("minutes", .array(series.map { minute, counts in
            .object([("at", .string(isoTime(Moment(seconds: Double(minute) * 60))))] + Throughput.outcomeNames.map { ($0, .integer(Int64(counts[$0] ?? 0))) })
        }))])
    }

    func status() throws(StoreError) -> JSON.Value {
        let status = try PipelineStatus.read(store: store, config: config, paths: paths)
        guard case .object(var fields) = status.jsonValue else { return .object([]) }
        fields.append(("actions", .bool(allowActions)))
        fields.append(("host", .string(store.host)))
        return .object(fields)
    }

    public static func jobJSON(_ job: Job) -> JSON.Value { JobDetail.json(of: job) }

    /// The filters of /api/jobs and the bulk actions: ?status= &account= &device= &error= &q=;
    /// nil for a status that is none (`badStatus`).
    static func jobFilter(_ query: [String: String]) -> JobQuery? {
        if let status = query["status"], !status.isEmpty, JobStatus(rawValue: status) == nil { return nil }
        return JobQuery(status: query["status"], account: query["account"], device: query["device"], errorType: query["error"], search: query["q"])
    }

    static var badStatus: HTTPResponse { .error(400, "status must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))") }

    func jobs(_ query: [String: String]) throws(StoreError) -> HTTPResponse {
        guard let filter = Self.jobFilter(query) else { return Self.badStatus }
        guard let limit = Self.number(query["limit"], default: 200, range: 1...10_000) else {
            return .error(400, "limit must be a whole number from 1 to 10000")
        }
        let found = try store.jobs(matching: filter, limit: limit)
        return .json(.object([("total", .integer(Int64(found.total))), ("jobs", .array(found.jobs.map(Self.jobJSON)))]))
    }


    func job(_ id: String) throws(StoreError) -> HTTPResponse {
        guard let job = try store.job(id) else { return .error(404, "no job '\(id)'") }
        return .json(try JobDetail.read(job, store: store, config: config, paths: paths).json)
    }

    // MARK: actions

    func act(_ request: HTTPRequest, _ parts: [String]) throws(StoreError) -> HTTPResponse {
        guard allowActions else { return .error(403, "actions are off; start the dashboard with 'seqpipe serve --allow-actions'") }
        guard carriesToken(request, allowQuery: false) else {
            return .error(401, "an action needs the token printed when the dashboard started (Authorization: Bearer TOKEN)")
        }
        if parts.count == 4 && parts[0] == "api" && parts[1] == "jobs", let action = HandActions.JobAction(rawValue: parts[3]) {
            return Self.answer(try HandActions.job(action, parts[2], by: actor, store: store))
        }
        if parts.count == 3 && parts[0] == "api" && parts[1] == "jobs", let action = HandActions.JobAction(rawValue: parts[2]) {
            // Bulk, over the filters of /api/jobs (at least one, so an empty form retries nothing by accident).
            guard let filter = Self.jobFilter(request.query) else { return Self.badStatus }
            guard !filter.isEmpty else {
                return .error(400, "a bulk \(action.rawValue) needs at least one filter (?status= &account= &device= &error= &q=)")
            }
            let (lines, summary) = try HandActions.jobs(action, matching: filter, by: actor, store: store)
            return .json(.object([("done", .string(summary.text)), ("jobs", .array(lines.map { .string($0.text) }))]))
        }
        if parts.count == 4 && parts[0] == "api" && parts[1] == "devices", let action = HandActions.DeviceAction(rawValue: parts[3]) {
            return Self.answer(try HandActions.device(action, parts[2], by: actor, store: store))
        }
        if parts.count == 4 && parts[0] == "api" && parts[1] == "accounts" && parts[3] == "resume" {
            return Self.answer(try HandActions.resumeAccount(parts[2], by: actor, store: store))
        }
        if parts == ["api", "stop"] {
            let (text, failure) = paths.stopAll(config: config) { _ in }.report(store: paths.storeName)
            return failure.map { .error(409, $0) } ?? .json(.object([("done", .string(text.split(separator: "\n").last.map(String.init) ?? "stopped"))]))
        }
        return .error(404, "no such action: \(request.path)")
    }

    /// Who the page's actions are recorded as: the token's name.
    var actor: String { "the page (token \(tokenName))" }

    static func answer(_ said: HandActions.Said) -> HTTPResponse {
        said.failure == 0 ? .json(.object([("done", .string(said.text))])) : .error(said.httpStatus, said.text)
    }
}
