import SeqSystem

/// make as the guarded command: which make, where it runs, and the environment a make started
/// from seq.mk needs. make-seq's main only parses its own few options and hands the rest here.
public enum MakeInvocation {
    /// Sets `configuration` up to run make with `makeArguments` (and their raw bytes): the
    /// make program (MAKE_SEQ_MAKE, else make), the directory the project is found from
    /// (make's -C), and MAKELEVEL/MAKEFLAGS/MAKE_SEQ_LEVEL for the make it starts.
    /// - Throws: `GuardFailure` when MAKE_SEQ_MAKE names make-seq itself.
    public static func configure(
        _ configuration: inout GuardConfiguration, makeArguments: [String], rawMakeArguments: [[UInt8]]
    ) throws(GuardFailure) {
        let make = Spawn.environmentValue("MAKE_SEQ_MAKE").flatMap { $0.isEmpty ? nil : $0 } ?? "make"
        if make.split(separator: "/").last == "make-seq" {
            throw GuardFailure("MAKE_SEQ_MAKE='\(make)' names make-seq itself; set it to a make program such as make or gmake")
        }
        configuration.arguments = [make] + makeArguments
        // make's arguments as their own bytes (a VAR=value need not be UTF-8).
        configuration.rawArguments = [Array(make.utf8)] + rawMakeArguments
        if let directory = directory(makeArguments), FileSystem.exists(directory) {
            configuration.searchDirectory = directory
        }

        // seq.mk hands a plain `make` to make-seq from inside that make (MAKELEVEL one up):
        // the make run here stands in for it, at its level, so its output reads as plain make's.
        var level = Spawn.environmentValue("MAKELEVEL").flatMap { Int($0) } ?? 0
        if Spawn.environmentValue("MAKE_SEQ_FROM_SEQ_MK") != nil {
            level = max(0, level - 1)
            configuration.environmentChanges.append(("MAKELEVEL", String(level)))
            configuration.environmentChanges.append(("MAKE_SEQ_FROM_SEQ_MK", nil))
            // The make that handed over printed "Entering directory" for -C already; its `w`
            // flag would have this one print it again.
            if let flags = Spawn.environmentValue("MAKEFLAGS") {
                var words = flags.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                if let first = words.first, !first.hasPrefix("-"), !first.contains("=") {
                    words[0] = first.filter { $0 != "w" }
                    if words[0].isEmpty { words.removeFirst() }
                    configuration.environmentChanges.append(("MAKEFLAGS", words.joined(separator: " ")))
                }
            }
        }
        configuration.environmentChanges.append(("MAKE_SEQ_LEVEL", String(level)))
    }

    /// The directory make will run in: `-C DIR` options applied in order to the current
    /// directory, as GNU make applies them. Reads make's options without changing them.
    static func directory(_ arguments: [String]) -> String? {
        // Short options whose value may be the next argument, and long ones that take one.
        let shortWithValue: Set<Character> = ["C", "f", "I", "o", "W"]
        let shortOptionalValue: Set<Character> = ["j", "l", "O"]
        let longWithValue = ["--file", "--makefile", "--include-dir", "--old-file", "--assume-old", "--what-if", "--new-file", "--assume-new", "--eval"]
        var directories: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            if argument.hasPrefix("--") {
                let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
                let value: String?
                if argument.contains("=") {
                    value = String(argument[argument.index(after: argument.firstIndex(of: "=")!)...])
                } else if name.count >= 4 && "--directory".hasPrefix(name) || longWithValue.contains(name) {
                    value = index < arguments.count ? arguments[index] : nil
                    index += 1
                } else {
                    value = nil
                }
                if name.count >= 4 && "--directory".hasPrefix(name), let value { directories.append(value) }
                continue
            }
            guard argument.hasPrefix("-"), argument.count > 1 else { continue }
            var characters = argument.dropFirst()
            while let option = characters.first {
                characters = characters.dropFirst()
                if shortOptionalValue.contains(option) { break }
                guard shortWithValue.contains(option) else { continue }
                var value: String? = characters.isEmpty ? nil : String(characters)
                if value == nil {
                    value = index < arguments.count ? arguments[index] : nil
                    index += 1
                }
                if option == "C", let value { directories.append(value) }
                break
            }
        }
        guard !directories.isEmpty else { return nil }
        var path = (try? FileSystem.currentDirectory()) ?? "."
        for directory in directories {
            path = directory.hasPrefix("/") ? directory : path + "/" + directory
        }
        return path
    }
}
