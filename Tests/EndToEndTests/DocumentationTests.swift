import Foundation
import Glibc
import Testing

/// The help, the README and the man pages say the same thing, and the man pages render.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct DocumentationTests {
    /// `--help` in the fixed sections, verbatim in the README, every option in the man page.
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
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        #expect(readme.contains(stdout.trimmingCharacters(in: .newlines)), "README.md carries \(tool) --help verbatim")
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

    /// groff's own lint: every warning on (-ww), output thrown away (-z); it must say nothing.
    @Test(arguments: ["seqexec.1", "make-seq.1", "seqpipe.1"])
    func manPageRendersWithoutWarnings(_ page: String) throws {
        let sandbox = try Sandbox()
        if commandOnPath("groff") {
            let groff = try sandbox.start("/usr/bin/env", ["groff", "-man", "-Tutf8", "-ww", "-z", packageRoot + "/man/" + page])
            #expect(groff.wait() == 0, "\(groff.stderr)")
            #expect(groff.stderr.isEmpty, "\(page): \(groff.stderr)")
        } else {
            print("skipped: manPageRendersWithoutWarnings' lint of \(page) needs groff (apt-get install groff-base); .ci/run installs it")
        }
        // The sections the issue asks of every page.
        let text = try String(contentsOfFile: packageRoot + "/man/" + page, encoding: .utf8)
        for section in ["NAME", "SYNOPSIS", "OPTIONS", "ENVIRONMENT", "EXIT STATUS", "FILES", "EXAMPLES"] {
            #expect(text.contains(".SH \(section)\n"), "\(page) has \(section)")
        }
    }
}
