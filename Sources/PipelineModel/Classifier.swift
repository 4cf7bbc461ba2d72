import SeqDatabase

/// Which budget a failed step is charged to.
public enum FailureClass: Equatable, Sendable {
    case permanent(type: String)
    case infrastructure
    case retryable
}

/// Sorts a failure by the step's output and how it ended, with the configured patterns.
public struct Classifier: Sendable {
    public var permanent: [(type: String, pattern: String)]
    public var infrastructure: [String]

    public init(config: PipelineConfig) {
        permanent = config.permanentPatterns
        infrastructure = config.infrastructurePatterns
    }

    public func classify(output: String, timedOut: Bool) -> (FailureClass, String?) {
        let text = output.lowercased()
        for (type, pattern) in permanent where text.contains(pattern) { return (.permanent(type: type), pattern) }
        if timedOut { return (.infrastructure, "timeout") }
        for pattern in infrastructure where text.contains(pattern) { return (.infrastructure, pattern) }
        return (.retryable, nil)
    }
}
