import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// Devices, accounts and device health.
extension SQLJobStore {
    // MARK: devices and accounts

    public func addDevice(_ device: Device) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                INSERT INTO devices(name, status_url, health_command, restart_command, stop_command, added_at, server_restart_command, server_argv, host)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                ON CONFLICT(name) DO UPDATE SET status_url = ?2, health_command = ?3, restart_command = ?4, stop_command = ?5,
                    server_restart_command = ?7, server_argv = ?8, host = ?9
                """,
                [.text(device.name), optional(device.statusURL), optional(device.healthCommand),
                 optional(device.restartCommand), optional(device.stopCommand), .time(try databaseTime(Moment.now())), optional(device.serverRestartCommand),
                 optional(device.server.map { JSON.encode(.array($0.map { .string($0) })) }), .text(device.host)])
        }
    }

    public func removeDevice(_ name: String) throws(StoreError) -> Bool {
        try connection.write { () throws(StoreError) -> Bool in
            try connection.run("DELETE FROM devices WHERE name = ?1", [.text(name)]) == 1
        }
    }

    public func devices() throws(StoreError) -> [Device] {
        try connection.query("SELECT * FROM devices ORDER BY name").map(device(from:))
    }

    public func device(_ name: String) throws(StoreError) -> Device? {
        try connection.query("SELECT * FROM devices WHERE name = ?1", [.text(name)]).first.map(device(from:))
    }

    func device(from row: SQLRow) -> Device {
        var device = Device(name: row["name"].string ?? "")
        device.host = row["host"].string ?? ""
        device.statusURL = row["status_url"].string
        device.healthCommand = row["health_command"].string
        device.restartCommand = row["restart_command"].string
        device.stopCommand = row["stop_command"].string
        device.serverRestartCommand = row["server_restart_command"].string
        if let text = row["server_argv"].string, case .array(let items)? = JSON.decode(text) {
            device.server = items.compactMap { if case .string(let word) = $0 { return word } else { return nil } }
        }
        device.serverState = row["server_state"].string.flatMap(ServerState.init(rawValue:))
        device.serverProcess = row.process(pid: "server_pid", startTime: "server_start_time")
        device.serverPort = row["server_port"].int.map { Int($0) }
        device.serverSince = row["server_since"].moment
        device.serverNote = row["server_note"].string
        device.phoneState = row["phone_state"].string.flatMap(PhoneState.init(rawValue:))
        device.phoneSince = row["phone_since"].moment
        device.healthy = row["healthy"].int == 1
        device.healthFailures = Int(row["health_failures"].int ?? 0)
        device.infraFailures = Int(row["infra_failures"].int ?? 0)
        device.cooldownUntil = row["cooldown_until"].moment
        device.paused = (row["paused"].int ?? 0) != 0
        device.pausedReason = row["paused_reason"].string
        device.cooldownLevel = Int(row["cooldown_level"].int ?? 0)
        device.responseMilliseconds = row["response_ms"].int.map { Int($0) }
        device.lastCheck = row["last_check"].moment
        device.lastError = row["last_error"].string
        return device
    }

    public func addAccount(_ name: String, dailyLimit: Int) throws(StoreError) {
        try connection.write { () throws(StoreError) in
            try connection.run(
                "INSERT INTO accounts(name, daily_limit) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET daily_limit = ?2",
                [.text(name), .integer(Int64(dailyLimit))])
        }
    }

    public func accounts() throws(StoreError) -> [Account] {
        try connection.query("SELECT * FROM accounts ORDER BY name").map { row in
            var account = Account(name: row["name"].string ?? "")
            account.dailyLimit = Int(row["daily_limit"].int ?? 0)
            account.paused = row["paused"].int == 1
            account.pausedReason = row["paused_reason"].string
            account.infraFailures = Int(row["infra_failures"].int ?? 0)
            account.cooldownUntil = row["cooldown_until"].moment
            account.cooldownLevel = Int(row["cooldown_level"].int ?? 0)
            account.restUntil = row["rest_until"].moment
            return account
        }
    }

    public func resumeAccount(_ name: String, by: String) throws(StoreError) -> HandResult<String> {
        let now = try databaseTime(Moment.now())
        return try connection.write { () throws(StoreError) -> HandResult<String> in
            guard let row = try connection.query("SELECT paused, paused_reason, cooldown_until FROM accounts WHERE name = ?1", [.text(name)]).first
            else { return .missing }
            let state = (row["paused"].int ?? 0) != 0 ? "paused (\(row["paused_reason"].string ?? "by hand"))"
                : (row["cooldown_until"].moment.map { $0 > now } ?? false) ? "cooling down" : "running"
            guard state != "running" else { return .unchanged(state) }
            try connection.run(
                "UPDATE accounts SET paused = 0, paused_reason = NULL, cooldown_until = NULL, cooldown_level = 0, infra_failures = 0 WHERE name = ?1",
                [.text(name)])
            try insertEvent(Event(at: now, kind: .accountResumed, account: name, message: "resumed by \(by) (it was \(state))"))
            return .changed(from: state)
        }
    }

    // MARK: device health

    public func recordHealth(device: String, ok: Bool, responseMilliseconds: Int?, error: String?, now: Moment) throws(StoreError) -> Int {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> Int in
            if ok {
                try connection.run(
                    """
                    UPDATE devices SET healthy = 1, health_failures = 0, response_ms = ?2, last_check = ?3, last_error = NULL,
                        cooldown_until = CASE WHEN healthy = 0 THEN NULL ELSE cooldown_until END,
                        phone_since = CASE WHEN phone_state = 'up' THEN phone_since ELSE ?3 END, phone_state = 'up'
                    WHERE name = ?1
                    """, [.text(device), responseMilliseconds.map { .integer(Int64($0)) } ?? .null, .time(now)])
                if let responseMilliseconds {
                    try countMetric(subjects: ["device:\(device)"], outcome: "response", responseMilliseconds: responseMilliseconds, now: now)
                }
                return 0
            }
            let row = try connection.query(
                """
                UPDATE devices SET healthy = 0, health_failures = health_failures + 1, last_check = ?2, last_error = ?3,
                    phone_since = CASE WHEN phone_state = 'not answering' THEN phone_since ELSE ?2 END, phone_state = 'not answering'
                WHERE name = ?1 RETURNING health_failures
                """,
                [.text(device), .time(now), optional(error)]).first
            try countMetric(subjects: ["device:\(device)"], outcome: "unanswered", now: now)
            return Int(row?["health_failures"].int ?? 0)
        }
    }

    public func recordServer(device: String, state: ServerState, process: ProcessIdentity?, port: Int?, note: String?, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run(
                """
                UPDATE devices SET server_state = ?2, server_pid = ?3, server_start_time = ?4, server_port = ?5, server_since = ?6,
                    server_note = ?7
                WHERE name = ?1
                """,
                [.text(device), .text(state.rawValue), process.map { .integer(Int64($0.pid)) } ?? .null,
                 process.map { .integer(Int64(bitPattern: $0.startTime)) } ?? .null, port.map { .integer(Int64($0)) } ?? .null,
                 .time(now), optional(note)])
        }
    }

    public func recordPhone(device: String, state: PhoneState, now: Moment) throws(StoreError) {
        let now = try databaseTime(now)
        try connection.write { () throws(StoreError) in
            try connection.run("UPDATE devices SET phone_state = ?2, phone_since = ?3 WHERE name = ?1", [.text(device), .text(state.rawValue), .time(now)])
        }
    }

    public func holdDevice(_ name: String, until: Moment, reason: String) throws(StoreError) {
        let until = try databaseTime(until)
        try connection.write { () throws(StoreError) in
            // The same reason again (a clash found after each hold) is one event, not one a hold.
            let said = try connection.query("SELECT last_error, healthy FROM devices WHERE name = ?1", [.text(name)]).first
            let again = said?["last_error"].string == reason && said?["healthy"].int == 0
            try connection.run(
                "UPDATE devices SET healthy = 0, cooldown_until = ?2, last_error = ?3 WHERE name = ?1",
                [.text(name), .time(until), .text(reason)])
            if !again { try insertEvent(Event(at: try databaseTime(Moment.now()), kind: .deviceUnhealthy, device: name, message: reason)) }
        }
    }

    public func pauseDevice(_ name: String, by: String) throws(StoreError) -> HandResult<String> {
        try deviceByHand(name, by: by, kind: .devicePaused, verb: "paused") { device, _ in
            device.paused ? .unchanged("paused") : .changed(from: "running")
        } change: { () throws(StoreError) in
            try connection.run("UPDATE devices SET paused = 1, paused_reason = ?2 WHERE name = ?1", [.text(name), .text("by \(by)")])
        }
    }

    public func resumeDevice(_ name: String, by: String) throws(StoreError) -> HandResult<String> {
        try deviceByHand(name, by: by, kind: .deviceResumed, verb: "resumed") { device, _ in
            device.paused ? .changed(from: "paused (\(device.pausedReason ?? "by hand"))") : .unchanged("not paused")
        } change: { () throws(StoreError) in
            try connection.run("UPDATE devices SET paused = 0, paused_reason = NULL WHERE name = ?1", [.text(name)])
        }
    }

    public func releaseDevice(_ name: String, by: String) throws(StoreError) -> HandResult<String> {
        try deviceByHand(name, by: by, kind: .deviceReleased, verb: "released") { device, now in
            guard let until = device.cooldownUntil, until > now else { return .unchanged("not held") }
            return .changed(from: "held until \(isoTime(until))\(device.lastError.map { " (\($0))" } ?? "")")
        } change: { () throws(StoreError) in
            try connection.run(
                "UPDATE devices SET cooldown_until = NULL, cooldown_level = 0, infra_failures = 0, health_failures = 0, healthy = 1 WHERE name = ?1",
                [.text(name)])
        }
    }

    /// Reads the device, asks `decide` what the change would do, and makes it only when it
    /// changes something, with an event naming who asked: one transaction.
    private func deviceByHand(_ name: String, by: String, kind: EventKind, verb: String, decide: (Device, Moment) -> HandResult<String>,
                              change: () throws(StoreError) -> Void) throws(StoreError) -> HandResult<String> {
        let now = try databaseTime(Moment.now())
        return try connection.write { () throws(StoreError) -> HandResult<String> in
            guard let row = try connection.query("SELECT * FROM devices WHERE name = ?1", [.text(name)]).first else { return .missing }
            let result = decide(device(from: row), now)
            if case .changed(let from) = result {
                try change()
                try insertEvent(Event(at: now, kind: kind, device: name, message: "\(verb) by \(by) (it was \(from))"))
            }
            return result
        }
    }
}
