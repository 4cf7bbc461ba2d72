/// One option of seqexec or make-seq, declared once: what the scanner accepts, the lines
/// `--help` shows, the environment variable that sets it too, what a shell completes after
/// it, and what it sets. `--help`'s OPTIONS and ENVIRONMENT, `GuardConfiguration`'s reading
/// of the environment and the completion scripts are all made from these declarations.
public struct ToolOption: Sendable {
    /// What a shell offers for the option's value.
    public enum Completes: Sendable, Equatable {
        case nothing
        case directory
        case words([String])
        /// The ids of the submitted runs (`seqexec --runs`).
        case runs
    }

    /// What sets a configuration from one value: `value` is nil for a flag typed on the
    /// command line, else the text given; `name` is the option as typed or the variable.
    public typealias Apply = @Sendable (_ configuration: inout GuardConfiguration, _ value: String?, _ name: String) throws(GuardFailure) -> Void

    /// The names the scanner accepts; nil for a setting the environment alone gives.
    public let spec: OptionSpec?
    /// The value's name in `--help` (`DIR`, `S`), nil for a flag.
    public let placeholder: String?
    /// Its lines in `--help`, as shown after the names' column.
    public let help: String
    /// A few words for the completion menus (zsh, fish).
    public let summary: String
    public let completes: Completes
    /// The variable's name after its prefix (`TIMEOUT` for `SEQEXEC_TIMEOUT`), when the
    /// environment sets it too.
    public let environment: String?
    /// The original tooling's bare name, read only under the migration shims.
    public let legacyEnvironment: String?
    /// An empty variable counts as unset (paths), rather than as a value to check.
    public let emptyIsUnset: Bool
    let apply: Apply?

    public init(
        _ spec: OptionSpec?, _ placeholder: String? = nil, help: String, summary: String = "", completes: Completes = .nothing,
        environment: String? = nil, legacy: String? = nil, emptyIsUnset: Bool = false, apply: Apply? = nil
    ) {
        precondition((spec?.kind == .flag) == (placeholder == nil) || spec == nil)
        self.spec = spec
        self.placeholder = placeholder
        self.help = help
        self.summary = summary
        self.completes = completes
        self.environment = environment
        self.legacyEnvironment = legacy
        self.emptyIsUnset = emptyIsUnset
        self.apply = apply
    }

    /// The option's reported name (`--timeout`), nil for an environment-only setting.
    public var name: String? { spec?.name }
    public var isFlag: Bool { spec?.kind == .flag }
    public var takesValue: Bool { spec.map { $0.kind != .flag } ?? false }
}

extension Array where Element == ToolOption {
    /// What the argument scanner accepts.
    public var specs: [OptionSpec] { compactMap(\.spec) }

    /// The declaration reported under `name` (`--timeout`).
    public func declaration(_ name: String) -> ToolOption? { first { $0.name == name } }

    /// `--help`'s option lines: the names and value in a 24-column field, the help beside it
    /// (or under it, when the names are longer).
    public var helpLines: String {
        var text = ""
        for option in self {
            guard let spec = option.spec else { continue }
            let short = spec.names.first { !$0.hasPrefix("--") }
            var label = "  " + (short.map { $0 + ", " } ?? "    ") + spec.name + (option.placeholder.map { " " + $0 } ?? "")
            let lines = option.help.split(separator: "\n", omittingEmptySubsequences: false)
            if label.count <= 24 {
                label += String(repeating: " ", count: 26 - label.count)
                text += label + lines[0] + "\n"
            } else {
                text += label + "\n" + String(repeating: " ", count: 26) + lines[0] + "\n"
            }
            for line in lines.dropFirst() { text += String(repeating: " ", count: 26) + line + "\n" }
        }
        return text
    }

    /// `--help`'s ENVIRONMENT lines for the variables `prefix` names: `As --timeout.` for an
    /// option's, the declared help for one the environment alone sets.
    public func environmentLines(prefix: String) -> String {
        var text = ""
        for option in self {
            guard let variable = option.environment else { continue }
            let help = option.spec.map { (option.isFlag ? "1 as " : "As ") + $0.name + "." } ?? option.help
            let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
            let label = "  " + prefix + variable
            text += label + String(repeating: " ", count: Swift.max(2, 36 - label.count)) + lines[0] + "\n"
            for line in lines.dropFirst() { text += String(repeating: " ", count: 36) + line + "\n" }
        }
        return text
    }

    /// The variables' names after the prefix, in order.
    public var environmentNames: [String] { compactMap(\.environment) }
}

/// `text`'s words in lines of at most `width` characters.
public func wrapped(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var line = ""
    for word in text.split(separator: " ") {
        if !line.isEmpty && line.count + 1 + word.count > width {
            lines.append(line)
            line = String(word)
        } else {
            line += (line.isEmpty ? "" : " ") + word
        }
    }
    if !line.isEmpty { lines.append(line) }
    return lines
}
