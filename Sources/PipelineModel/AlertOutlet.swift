/// One raise or clear of an alert, on its way out to people.
public struct Notification: Sendable, Equatable {
    public var id: Int64
    public var at: Double
    public var key: String
    public var kind: String
    /// `raised` or `cleared`.
    public var state: String
    public var message: String
    public var attempts: Int

    public init(id: Int64, at: Double, key: String, kind: String, state: String, message: String, attempts: Int) {
        self.id = id
        self.at = at
        self.key = key
        self.kind = kind
        self.state = state
        self.message = message
        self.attempts = attempts
    }
}

/// Where alerts go besides the store: `alerts.notify`, an argv run for each raise and clear
/// ({kind}, {message}, {key}, {state} filled in), and `alerts.file`, a JSON-lines file other
/// tools tail. Neither is required.
public struct AlertOutlet: Sendable {
    public var notify: [String]?
    public var file: String?
    /// Attempts of one notification before it is given up (with an event saying so).
    public var attempts = 5
    /// Backoff between attempts: base·2^n, capped.
    public var backoffBaseSeconds: Double = 5
    public var backoffCapSeconds: Double = 300

    public init() {}

    public var isConfigured: Bool { notify != nil || file != nil }
}
