import Foundation
import Glibc
import SeqSystem
import Testing

/// The help, the README and the man pages say the same thing, and the man pages render.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct DocumentationTests {
    /// `--help` in the fixed sections, every option in the man page (the reference; the
    /// README points to it).
    func checkHelp(_ tool: String, minimumOptions: Int) throws {
        let sandbox = try Sandbox()
        let binary = toolsDirectory + "/" + tool
        let help = try sandbox.start(binary, ["--help"])
        #expect(help.wait() == 0)
        let stdout = help.stdout
        var previous = stdout.startIndex
        for section in ["OVERVIEW:", "USAGE:", "OPTIONS:", "ENVIRONMENT:", "EXIT STATUS:"] {
            let found = stdout.range(of: stdout.hasPrefix(section) ? section : "\n\n" + section)
            #expect(found != nil && found!.lowerBound >= previous, "\(tool) --help has \(section) in order")
            if let found { previous = found.lowerBound }
        }
        let manual = try String(contentsOfFile: packageRoot + "/man/\(tool).1", encoding: .utf8).replacingOccurrences(of: "\\-", with: "-")
        let options = Set(stdout.split(whereSeparator: { " ,|[]();:.\n'".contains($0) }).filter { token in
            token.hasPrefix("-") && token.dropFirst().first?.isLetter == true || token.hasPrefix("--") && token.count > 3
        })
        #expect(options.count >= minimumOptions, "\(options)")
        for option in options { #expect(manual.contains(option), "man/\(tool).1 documents \(option)") }
        let version = try sandbox.start(binary, ["--version"])
        #expect(version.wait() == 0 && version.stdout == "\(tool) 0.1.0\n")
    }

    @Test func seqexecHelpIsTheDocumentedText() throws { try checkHelp("seqexec", minimumOptions: 30) }

    @Test func makeSeqHelpIsTheDocumentedText() throws { try checkHelp("make-seq", minimumOptions: 6) }

    @Test func seqpipeHelpIsTheDocumentedText() throws { try checkHelp("seqpipe", minimumOptions: 20) }

    /// Every command seqpipe declares (its `--help` is made from the declarations) has its own
    /// entry in the man page's COMMANDS, and the page names no command seqpipe does not have.
    /// A man page line as text: fonts dropped, `\-` a hyphen, a leading `.B ` gone.
    func roffText(_ line: Substring) -> String {
        var text = String(line)
        if text.hasPrefix(".B ") || text.hasPrefix(".I ") { text.removeFirst(3) }
        for font in ["\\fB", "\\fR", "\\fI", "\\fP"] { text = text.replacingOccurrences(of: font, with: "") }
        return text.replacingOccurrences(of: "\\-", with: "-").replacingOccurrences(of: "\\~", with: " ")
    }

    func words(_ text: String) -> String { text.split(whereSeparator: \.isWhitespace).joined(separator: " ") }

    /// `text`'s section that starts with `heading` (`--help`'s "OPTIONS:", or a man page's
    /// ".SH OPTIONS\n"), up to the next blank line or section.
    func section(_ text: String, _ heading: String, endsAt end: String) -> [Substring] {
        let body = text.components(separatedBy: heading).dropFirst().first?.components(separatedBy: end).first ?? ""
        return body.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The options a page's items name (`-p`, `--project`), and `--help`'s option lines.
    func optionNames(_ line: String) -> [String] {
        Array(line.split(whereSeparator: { $0 == " " || $0 == "," }).prefix { $0.hasPrefix("-") }.map(String.init).filter { $0 != "--" })
    }

    /// The man page and `--help` are one reference: SYNOPSIS is USAGE line for line, OPTIONS
    /// has an entry for every option `--help` lists and none it does not, and ENVIRONMENT names
    /// the same variables. `--help` is made from the options' declarations, so this is the check
    /// that the page has not drifted from them.
    @Test(arguments: ["seqexec", "make-seq", "seqpipe"])
    func theManPageSaysWhatTheDeclarationsSay(_ tool: String) throws {
        let sandbox = try Sandbox()
        let run = try sandbox.start(toolsDirectory + "/" + tool, ["--help"])
        #expect(run.wait() == 0)
        let help = run.stdout
        let manual = try String(contentsOfFile: packageRoot + "/man/\(tool).1", encoding: .utf8)

        let usage = section(help, "USAGE: ", endsAt: "\n\n").map { words(String($0)) }.filter { !$0.isEmpty }
        var synopsis: [String] = []
        var entry = ""
        for line in section(manual, ".SH SYNOPSIS\n", endsAt: "\n.SH ") {
            if line == ".br" { synopsis.append(words(entry)); entry = "" } else { entry += " " + roffText(line) }
        }
        synopsis.append(words(entry))
        #expect(usage.count >= 2 && synopsis == usage, "man/\(tool).1's SYNOPSIS is --help's USAGE")

        guard tool != "seqpipe" else { return }  // seqpipe's options are its commands': the COMMANDS test checks those
        let helpOptions = Set(section(help, "OPTIONS:\n", endsAt: "\n\n").flatMap { line -> [String] in
            let indent = line.prefix { $0 == " " }.count
            return indent == 2 || indent == 6 ? optionNames(String(line.dropFirst(indent))) : []
        })
        let manLines = section(manual, ".SH OPTIONS\n", endsAt: "\n.SH ")
        let manOptions = Set(manLines.indices.dropLast().filter { manLines[$0] == ".TP" }.flatMap { optionNames(roffText(manLines[$0 + 1])) })
        #expect(helpOptions.count >= 8 && helpOptions == manOptions,
                "man/\(tool).1's OPTIONS lacks \(helpOptions.subtracting(manOptions).sorted()), has undeclared \(manOptions.subtracting(helpOptions).sorted())")

        func variables(_ lines: [String]) -> Set<String> {
            Set(lines.flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "," }) }.map { $0.replacingOccurrences(of: "<", with: "").replacingOccurrences(of: ">", with: "") }
                .filter { $0.hasPrefix("SEQEXEC_") && $0 != "SEQEXEC_" || $0.hasPrefix("MAKE_SEQ_") && $0 != "MAKE_SEQ_" })
        }
        let helpVariables = variables(section(help, "ENVIRONMENT:\n", endsAt: "\n\n").filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") }
            .map { String($0.dropFirst(2).components(separatedBy: "   ")[0]) })
        let envLines = section(manual, ".SH ENVIRONMENT\n", endsAt: "\n.SH ")
        let manVariables = variables(envLines.indices.dropLast().filter { envLines[$0] == ".TP" }.map { roffText(envLines[$0 + 1]) })
        #expect(helpVariables.count >= 3 && helpVariables == manVariables,
                "man/\(tool).1's ENVIRONMENT lacks \(helpVariables.subtracting(manVariables).sorted()), has undeclared \(manVariables.subtracting(helpVariables).sorted())")
    }

    /// The README's list of seqpipe's commands is the declared one, in its order: the
    /// commands `seqpipe completion` offers (made from the declarations; hidden ones left out).
    @Test func theReadmeListsSeqpipesDeclaredCommands() throws {
        let sandbox = try Sandbox()
        let completion = try sandbox.start(toolsDirectory + "/seqpipe", ["completion", "bash"])
        #expect(completion.wait() == 0)
        let offered = try #require(completion.stdout.components(separatedBy: "'') COMPREPLY=($(compgen -W \"").dropFirst().first?.components(separatedBy: "\"").first)
        let declared = offered.split(separator: " ").filter { !$0.hasPrefix("-") }.map(String.init)
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        let list = try #require(readme.components(separatedBy: "Its commands: ").dropFirst().first?.components(separatedBy: ". ").first)
        let listed = list.split(whereSeparator: \.isWhitespace).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
        #expect(declared.count >= 18 && listed == declared, "README.md lists \(listed); seqpipe declares \(declared)")
    }

    @Test func seqpipesManPageHasAnEntryForEveryCommand() throws {
        let sandbox = try Sandbox()
        let help = try sandbox.start(toolsDirectory + "/seqpipe", ["--help"])
        #expect(help.wait() == 0)
        let section = help.stdout.components(separatedBy: "COMMANDS:\n").last?.components(separatedBy: "\n\n").first ?? ""
        var declared: Set<String> = []
        for line in section.split(separator: "\n") where line.hasPrefix("  ") && !line.hasPrefix("   ") {
            let words = line.split(separator: " ")
            declared.insert(String(words[0]))
            for index in words.indices.dropLast() where words[index] == "|" && words[index + 1].first?.isLetter == true {
                declared.insert(String(words[index + 1]))
            }
        }
        #expect(declared.count >= 18, "\(declared)")
        let manual = try String(contentsOfFile: packageRoot + "/man/seqpipe.1", encoding: .utf8)
        let commands = manual.components(separatedBy: ".SH COMMANDS\n").last?.components(separatedBy: "\n.SH ").first ?? ""
        let lines = commands.split(separator: "\n", omittingEmptySubsequences: false)
        var entries: Set<String> = []
        for (index, line) in lines.enumerated() where line == ".TP" && index + 1 < lines.count {
            let item = lines[index + 1].replacingOccurrences(of: "\\-", with: "-")
            for name in item.components(separatedBy: " | ") {
                let word = name.replacingOccurrences(of: ".B ", with: "").replacingOccurrences(of: "\\fB", with: "")
                    .trimmingCharacters(in: .whitespaces).split(whereSeparator: { $0 == " " || $0 == "\\" }).first.map(String.init) ?? ""
                if word.first?.isLetter == true { entries.insert(word) }
            }
        }
        #expect(declared.subtracting(entries).isEmpty, "man/seqpipe.1 has no entry for \(declared.subtracting(entries).sorted())")
        #expect(entries.subtracting(declared).isEmpty, "man/seqpipe.1 documents commands seqpipe does not declare: \(entries.subtracting(declared).sorted())")
    }

    /// groff's own lint: every warning on (-ww), output thrown away (-z); it must say nothing.
    @Test(arguments: ["seqexec.1", "make-seq.1", "seqpipe.1", "seqguard.7"])
    func manPageRendersWithoutWarnings(_ page: String) throws {
        let sandbox = try Sandbox()
        if commandOnPath("groff") {
            let groff = try sandbox.start("/usr/bin/env", ["groff", "-man", "-Tutf8", "-ww", "-z", packageRoot + "/man/" + page])
            #expect(groff.wait() == 0, "\(groff.stderr)")
            #expect(groff.stderr.isEmpty, "\(page): \(groff.stderr)")
        } else {
            print("skipped: manPageRendersWithoutWarnings' lint of \(page) needs groff (apt-get install groff-base); .ci/run installs it")
        }
        // The sections of every command's page; seqguard(7) says how they work.
        let text = try String(contentsOfFile: packageRoot + "/man/" + page, encoding: .utf8)
        let sections = page.hasSuffix(".7") ? ["NAME", "DESCRIPTION", "ARCHITECTURE", "HOW THE GUARD WORKS", "HOW THE PIPELINE WORKS", "SEE ALSO"]
            : ["NAME", "SYNOPSIS", "OPTIONS", "ENVIRONMENT", "EXIT STATUS", "FILES", "EXAMPLES"]
        for section in sections {
            #expect(text.contains(".SH \(section)\n"), "\(page) has \(section)")
        }
    }
}

/// The README's first command: three commands at once, shown waiting in line, run in
/// arrival order, and in the history, all in its first screen of output.
@Test func theReadmeFirstCommandShowsTheGuardAtWork() throws {
    let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
    #expect(readme.contains("scripts/demo "), "the README's first command is the demo")
    let sandbox = try Sandbox()
    let demo = try sandbox.start(packageRoot + "/scripts/demo", [], environment: ["SEQEXEC_BIN": seqexecPath])
    #expect(demo.wait(60) == 0, "\(demo.stdout)\(demo.stderr)")
    let screen = (demo.stdout + demo.stderr).split(separator: "\n", omittingEmptySubsequences: false)
    #expect(screen.count <= 40, "one screen: \(screen.count) lines")
    #expect(demo.stderr.contains("seqexec: './lint.sh' waiting for './test.sh'"), "\(demo.stderr)")
    #expect(demo.stdout.contains("queue:    2 waiting"), "\(demo.stdout)")
    let output = demo.stdout
    let order = ["test: start", "test: passed", "lint: start", "lint: clean"].compactMap { output.range(of: $0)?.lowerBound }
    #expect(order.count == 4 && order == order.sorted(), "one at a time, in arrival order: \(output)")
    let history = output.components(separatedBy: "QUEUED").last ?? ""
    let rows = history.split(separator: "\n").dropFirst().map { String($0) }
    #expect(rows.count == 3 && rows[0].hasSuffix("./test.sh") && rows[1].hasSuffix("./lint.sh"), "\(history)")
}

/// The README's seqpipe demo, pasted as one block into a shell, works: its store in the
/// test's sandbox, its tools from this build.
@Test(.enabled(if: TCPListeners.sockets(port: 4723).isEmpty, "port 4723 (the demo's Appium port) is taken here: the README demo test skips"))
func theReadmeDemoWorksPastedAsOneBlock() throws {
    let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
    let section = try #require(readme.range(of: "## seqpipe\n"))
    let start = try #require(readme.range(of: "```sh\n", range: section.upperBound..<readme.endIndex))
    let end = try #require(readme.range(of: "```\n", range: start.upperBound..<readme.endIndex))
    let sandbox = try Sandbox()
    var block = String(readme[start.upperBound..<end.lowerBound])
    block = block.replacingOccurrences(of: "swift build -c release && PATH=$PWD/.build/release:$PATH", with: "PATH=\(toolsDirectory):$PATH")
    block = block.replacingOccurrences(of: "/tmp/seqpipe-demo/", with: sandbox.path("demo") + "/")
    block = block.replacingOccurrences(of: "$PWD/scripts/", with: packageRoot + "/scripts/")
    let script = try sandbox.script("demo.sh", "set -e\n" + block, interpreter: "/bin/bash")
    let demo = try sandbox.start(script, [])
    #expect(demo.wait(120) == 0, "\(demo.stdout)\(demo.stderr)")
    #expect(demo.stdout.contains("success 1,"), "\(demo.stdout)")
}
