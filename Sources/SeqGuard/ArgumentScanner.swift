import SeqSystem

/// One option a tool accepts, under each of its names (`-t`, `--timeout`).
public struct OptionSpec: Sendable {
    public enum Kind: Sendable {
        /// Takes no value: `-v`, `--json`.
        case flag
        /// Takes one: `-t 5`, `-t5`, `--timeout 5`, `--timeout=5`.
        case value
        /// Takes every following word up to the next option: `--accounts a b c`.
        case values
    }

    public var names: [String]
    public var kind: Kind

    public init(_ names: String..., kind: Kind = .flag) {
        precondition(!names.isEmpty && names.allSatisfy { $0.hasPrefix("-") && $0.count >= 2 })
        self.names = names
        self.kind = kind
    }

    /// The name the option is reported under: its last (long) name.
    public var name: String { names[names.count - 1] }
}

/// What the scanner found, in the order given.
public struct ScannedArguments: Sendable {
    public struct Option: Sendable, Equatable {
        /// The option's `OptionSpec.name`, whichever name was typed.
        public var name: String
        /// The name as it was typed (`-t`), for messages about its value.
        public var typed: String
        public var value: String?
    }

    public var options: [Option] = []
    public var positional: [String] = []
    /// With `stopAtFirstPositional`, the index of the first word that is not an option (or
    /// of the one after `--`): where the command to run starts. Otherwise the word count.
    public var restIndex = 0

    public func has(_ name: String) -> Bool { options.contains { $0.name == name } }

    /// The last value given for `name`.
    public func value(_ name: String) -> String? { options.last { $0.name == name }?.value }

    /// Every value given for `name`, in order.
    public func values(_ name: String) -> [String] { options.compactMap { $0.name == name ? $0.value : nil } }
}

/// A command line that breaks the rules: the message names the word and what was wrong.
public struct UsageError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// The one argument scanner of the three tools, with the conventions getopt_long users
/// know: bundled short flags (`-vq`), a short option's value attached or next (`-t5`,
/// `-t 5`), `--opt=value` or `--opt value`, `--` ending the options, and options anywhere
/// among the positional words unless the tool runs a command (`stopAtFirstPositional`).
/// A lone `-` is a positional word. Values may start with `-` (`--priority -5`).
public enum ArgumentScanner {
    public static func scan(
        _ words: [String], options specs: [OptionSpec], stopAtFirstPositional: Bool = false
    ) throws(UsageError) -> ScannedArguments {
        func spec(_ name: Substring) -> OptionSpec? { specs.first { $0.names.contains { $0 == name } } }
        var result = ScannedArguments()
        var index = 0
        /// The value of `spec` typed as `typed`: `attached`, else the next word(s).
        func take(_ spec: OptionSpec, typed: String, attached: String?) throws(UsageError) {
            switch spec.kind {
            case .flag:
                if attached != nil { throw UsageError("option \(typed) takes no value") }
                result.options.append(.init(name: spec.name, typed: typed, value: nil))
            case .value:
                if let attached {
                    result.options.append(.init(name: spec.name, typed: typed, value: attached))
                    return
                }
                guard index < words.count else { throw UsageError("option \(typed) needs a value") }
                result.options.append(.init(name: spec.name, typed: typed, value: words[index]))
                index += 1
            case .values:
                var taken = attached.map { [$0] } ?? []
                while index < words.count, !words[index].hasPrefix("-") || words[index] == "-" {
                    taken.append(words[index])
                    index += 1
                }
                guard !taken.isEmpty else { throw UsageError("option \(typed) needs at least one value") }
                for value in taken { result.options.append(.init(name: spec.name, typed: typed, value: value)) }
            }
        }
        while index < words.count {
            let word = words[index]
            index += 1
            if word == "--" {
                result.restIndex = index
                result.positional += words[index...]
                return result
            }
            if !word.hasPrefix("-") || word == "-" {
                if stopAtFirstPositional {
                    result.restIndex = index - 1
                    result.positional += words[(index - 1)...]
                    return result
                }
                result.positional.append(word)
                continue
            }
            if word.hasPrefix("--") {
                let equals = word.firstIndex(of: "=")
                let name = equals.map { word[..<$0] } ?? word[...]
                guard let found = spec(name) else { throw UsageError("unknown option '\(word)'") }
                try take(found, typed: String(name), attached: equals.map { String(word[word.index(after: $0)...]) })
                continue
            }
            // A bundle of short options: flags, then at most one that takes the rest as its value.
            var rest = word.dropFirst()
            while let letter = rest.first {
                rest = rest.dropFirst()
                let typed = "-" + String(letter)
                guard let found = spec(typed[...]) else {
                    throw UsageError(word.count > 2 ? "unknown option '\(typed)' in '\(word)'" : "unknown option '\(word)'")
                }
                if found.kind == .flag {
                    try take(found, typed: typed, attached: nil)
                    continue
                }
                try take(found, typed: typed, attached: rest.isEmpty ? nil : String(rest))
                break
            }
        }
        result.restIndex = words.count
        return result
    }
}

extension ScannedArguments {
    /// `--help` prints `help` and `--version` prints "TOOL VERSION", each ending the process
    /// with status 0, the way every tool answers them; otherwise nothing happens.
    public func answerHelpAndVersion(tool: String, version: String, help: @autoclosure () -> String) {
        if has("--help") {
            try? FileDescriptor.standardOutput.writeAll(help())
            ProcessExit.now(0)
        }
        if has("--version") {
            try? FileDescriptor.standardOutput.writeAll("\(tool) \(version)\n")
            ProcessExit.now(0)
        }
    }
}

/// A tool's help text, read back: what `TOOL COMMAND --help` prints.
public enum HelpText {
    /// The lines of `help`'s COMMANDS section that describe `command`, under the USAGE line:
    /// a line at the section's first indent starts a command (its first word, and each word
    /// after a `|`, name it), deeper lines continue it. Nil when no line names `command`.
    /// `details`, the command's own (its options, formats and exits), follow the lines.
    public static func command(_ command: String, of help: String, tool: String, details: String = "") -> String? {
        func indent(_ line: Substring) -> Int { line.prefix { $0 == " " }.count }
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.dropFirst(indent($0)) == "COMMANDS:" }) else { return nil }
        var found: [Substring] = []
        var commandIndent: Int?
        var inCommand = false
        for line in lines[(start + 1)...] {
            if line.allSatisfy({ $0 == " " }) { break }
            let depth = indent(line)
            if commandIndent == nil { commandIndent = depth }
            if depth == commandIndent {
                let words = line.split(separator: " ")
                let names = [words[0]] + words.indices.dropLast().filter { words[$0] == "|" }.map { words[$0 + 1] }
                inCommand = names.contains(Substring(command))
            }
            if inCommand { found.append(line.dropFirst(commandIndent ?? 0)) }
        }
        guard !found.isEmpty else { return nil }
        let usage = lines.lazy.map { $0.dropFirst(indent($0)) }.first { $0.hasPrefix("USAGE:") }.map(String.init) ?? "USAGE: \(tool) COMMAND"
        let own = details.isEmpty ? "" : "\n\n" + details.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
        return usage + "\n\nCOMMANDS:\n" + found.map { "  " + $0 }.joined(separator: "\n") + own
            + "\n\nOptions go before or after the command; see '\(tool) --help' for the rest.\n"
    }
}
