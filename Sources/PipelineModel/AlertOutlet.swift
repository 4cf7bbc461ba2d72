import SeqDatabase

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
