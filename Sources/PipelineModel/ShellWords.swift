import SeqDatabase

/// A command line as an argv, split the way a shell splits words but with nothing else of a
/// shell: `'…'` is literal, `"…"` keeps spaces (a backslash escapes `"`, `\`, `$` and a
/// backquote in it), a backslash outside quotes escapes the next character. Unquoted `|`, `;`,
/// `&`, `<`, `>`, `$`, and backquotes are refused, since no shell would act on them here.
public enum ShellWords {
    /// - Throws: `ConfigError` naming the unclosed quote or the shell character found.
    public static func split(_ line: String) throws(ConfigError) -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var index = line.startIndex
        func next() -> Character? {
            guard index < line.endIndex else { return nil }
            defer { index = line.index(after: index) }
            return line[index]
        }
        while let character = next() {
            switch character {
            case " ", "\t", "\n":
                if inWord { words.append(word) }
                word = ""
                inWord = false
            case "'":
                inWord = true
                while true {
                    guard let inner = next() else { throw ConfigError(message: "unclosed ' in '\(line)'") }
                    if inner == "'" { break }
                    word.append(inner)
                }
            case "\"":
                inWord = true
                while true {
                    guard let inner = next() else { throw ConfigError(message: "unclosed \" in '\(line)'") }
                    if inner == "\"" { break }
                    if inner == "\\", index < line.endIndex, "\"\\$`".contains(line[index]) {
                        word.append(next()!)
                    } else {
                        word.append(inner)
                    }
                }
            case "\\":
                inWord = true
                if let escaped = next() { word.append(escaped) }
            case "|", ";", "&", "<", ">", "$", "`":
                throw ConfigError(message: "'\(line)' is an argv, not a shell line: '\(character)' would reach the program as it is; quote it, or run a shell: sh -c '...'")
            default:
                inWord = true
                word.append(character)
            }
        }
        if inWord { words.append(word) }
        return words
    }
}
