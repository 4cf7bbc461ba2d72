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
