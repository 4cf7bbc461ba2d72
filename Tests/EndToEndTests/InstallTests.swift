import Foundation
import Glibc
import Testing

/// `make install` / `make uninstall`, the shell completions and the migration shims.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct InstallTests {
    /// Every regular file under `root`, relative to it.
    func files(under root: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }.filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
    }

    @Test func installWritesTheListedFilesAndUninstallRemovesExactlyThose() throws {
        let sandbox = try Sandbox()
        let prefix = sandbox.root + "/prefix"
        try sandbox.write("../prefix/bin/someone-else", "not ours\n")
        // BIN on the command line: install the binaries this test run built, build nothing.
        let arguments = ["make", "--no-print-directory", "-C", packageRoot, "PREFIX=\(prefix)", "BIN=\(toolsDirectory)", "SEQ_MK=off"]
        let install = try sandbox.start("/usr/bin/env", arguments + ["install"])
        #expect(install.wait(60) == 0, "\(install.stderr)")
        #expect(files(under: prefix) == [
            "bin/make-seq", "bin/seqexec", "bin/seqpipe", "bin/someone-else",
            "share/bash-completion/completions/make-seq", "share/bash-completion/completions/seqexec", "share/bash-completion/completions/seqpipe",
            "share/fish/vendor_completions.d/make-seq.fish", "share/fish/vendor_completions.d/seqexec.fish", "share/fish/vendor_completions.d/seqpipe.fish",
            "share/man/man1/make-seq.1", "share/man/man1/seqexec.1", "share/man/man1/seqpipe.1", "share/man/man7/seqguard.7",
            "share/seqguard/seq.mk",
            "share/zsh/site-functions/_make-seq", "share/zsh/site-functions/_seqexec", "share/zsh/site-functions/_seqpipe",
        ])
        let version = try sandbox.start(prefix + "/bin/make-seq", ["--version"])
        #expect(version.wait() == 0 && version.stdout == "make-seq 0.1.0\n")
        // The installed seq.mk wires a Makefile.
        try sandbox.write("Makefile", "include \(prefix)/share/seqguard/seq.mk\na:\n\t@echo a $${SEQEXEC_TOKENS:+guarded}\n")
        let make = try sandbox.start("/usr/bin/env", ["make", "a"], environment: ["PATH": prefix + "/bin:" + (sandbox.environment["PATH"] ?? "/usr/bin:/bin")])
        #expect(make.wait() == 0 && make.stdout == "a guarded\n", "\(make.stderr)")

        let uninstall = try sandbox.start("/usr/bin/env", arguments + ["uninstall"])
        #expect(uninstall.wait(60) == 0, "\(uninstall.stderr)")
        #expect(files(under: prefix) == ["bin/someone-else"])
    }

    /// Runs bash with a completion file sourced and COMP_WORDS set; returns COMPREPLY, one a line.
    func bashCompletion(_ sandbox: Sandbox, _ file: String, _ function: String, _ words: [String]) throws -> [String] {
        let quoted = words.map { "'\($0)'" }.joined(separator: " ")
        let script = "source \(packageRoot)/scripts/completions/\(file); COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); \(function); printf '%s\\n' \"${COMPREPLY[@]}\""
        let bash = try sandbox.start("/usr/bin/env", ["bash", "--norc", "-c", script])
        #expect(bash.wait() == 0, "\(bash.stderr)")
        return bash.stdout.split(separator: "\n").map(String.init)
    }

    @Test func completionsOfferEveryOptionAndTheMakefilesTargets() throws {
        let sandbox = try Sandbox()
        let help = try sandbox.start(seqexecPath, ["--help"])
        #expect(help.wait() == 0)
        let longOptions = Set(help.stdout.split(whereSeparator: { " ,|[]().:;'\n".contains($0) }).filter { $0.hasPrefix("--") && $0.count > 2 }.map(String.init))
        #expect(longOptions.count > 25)
        for file in ["seqexec.bash", "_seqexec", "seqexec.fish"] {
            let text = try String(contentsOfFile: packageRoot + "/scripts/completions/" + file, encoding: .utf8)
            for option in longOptions {
                let name = String(option.dropFirst(2))
                #expect(text.contains(option) || file.hasSuffix(".fish") && text.contains("-l \(name) "), "\(file) offers \(option)")
            }
        }

        #expect(try bashCompletion(sandbox, "seqexec.bash", "_seqexec", ["seqexec", "--memory-m"]) == ["--memory-metric"])
        #expect(try bashCompletion(sandbox, "seqexec.bash", "_seqexec", ["seqexec", "--priority", ""]) == ["high", "normal", "low"])
        #expect(try bashCompletion(sandbox, "seqexec.bash", "_seqexec", ["seqexec", "-t", "5", "printen"]) == ["printenv"])
        try sandbox.write("Makefile", "build: lib\n\t@true\nlib:\n\t@true\ntest check: build\n\t@true\n")
        #expect(try bashCompletion(sandbox, "make-seq.bash", "_make_seq", ["make-seq", ""]) == ["build", "check", "lib", "test"])
        #expect(try bashCompletion(sandbox, "make-seq.bash", "_make_seq", ["make-seq", "--st"]) == ["--status"])

        // zsh and fish: the files parse, and fish answers as a shell would. A machine without
        // the shell skips its part with a note; .ci/run installs both, so CI runs every check.
        let shells = ["zsh", "fish"].filter { shell in
            if commandOnPath(shell) { return true }
            print("skipped: completionsOfferEveryOptionAndTheMakefilesTargets' \(shell) checks need \(shell) (apt-get install \(shell)); .ci/run installs it")
            return false
        }
        for (shell, file) in [("zsh", "_seqexec"), ("zsh", "_make-seq"), ("fish", "seqexec.fish"), ("fish", "make-seq.fish")] where shells.contains(shell) {
            let check = try sandbox.start("/usr/bin/env", [shell, "-n", packageRoot + "/scripts/completions/" + file])
            #expect(check.wait() == 0, "\(shell) -n \(file): \(check.stderr)")
        }
        guard shells.contains("fish") else { return }
        // Not --no-config: that also leaves out fish's own make completion, which make-seq wraps.
        let fish = try sandbox.start("/usr/bin/env", ["HOME=\(sandbox.root)", "fish", "-c", """
            source \(packageRoot)/scripts/completions/seqexec.fish
            source \(packageRoot)/scripts/completions/make-seq.fish
            complete -C 'seqexec --memory-ac'; complete -C 'seqexec --memory-action '; complete -C 'make-seq --sta'; complete -C 'make-seq li'
            """])
        #expect(fish.wait() == 0, "\(fish.stderr)")
        let answers = fish.stdout.split(separator: "\n").map { String($0.split(separator: "\t").first ?? "") }
        #expect(answers == ["--memory-action", "largest", "tree", "--status", "lib"], "\(fish.stdout)")
    }

    /// seqexec's and make-seq's completions are made from their options' declarations: the
    /// checked-in copies are exactly what `TOOL --completion SHELL` prints, and an unknown
    /// shell is refused with a line naming the known ones.
    @Test func seqexecAndMakeSeqCompletionsAreMadeFromTheirOptions() throws {
        let sandbox = try Sandbox()
        for tool in ["seqexec", "make-seq"] {
            for (shell, file) in [("bash", "\(tool).bash"), ("zsh", "_\(tool)"), ("fish", "\(tool).fish")] {
                let made = try sandbox.start(toolsDirectory + "/" + tool, ["--completion", shell])
                #expect(made.wait() == 0, "\(made.stderr)")
                let checkedIn = try String(contentsOfFile: packageRoot + "/scripts/completions/" + file, encoding: .utf8)
                #expect(made.stdout == checkedIn, "scripts/completions/\(file) is not what '\(tool) --completion \(shell)' prints; write it again from that (make completions)")
            }
            let unknown = try sandbox.start(toolsDirectory + "/" + tool, ["--completion", "tcsh"])
            #expect(unknown.wait() == 125 && unknown.stdout.isEmpty)
            #expect(unknown.stderr.contains("no completion for 'tcsh'; the shells are bash, zsh, fish"), "\(unknown.stderr)")
        }
        #expect(try bashCompletion(sandbox, "seqexec.bash", "_seqexec", ["seqexec", "--completion", ""]) == ["bash", "zsh", "fish"])
        #expect(try bashCompletion(sandbox, "make-seq.bash", "_make_seq", ["make-seq", "--completion", "z"]) == ["zsh"])
    }

    /// seqpipe's completions are made from its commands' declarations: the checked-in copies
    /// are exactly what `seqpipe completion SHELL` prints, and they complete commands,
    /// subcommands and each command's options.
    @Test func seqpipeCompletionsAreMadeFromItsCommands() throws {
        let sandbox = try Sandbox()
        for (shell, file) in [("bash", "seqpipe.bash"), ("zsh", "_seqpipe"), ("fish", "seqpipe.fish")] {
            let made = try sandbox.start(toolsDirectory + "/seqpipe", ["completion", shell])
            #expect(made.wait() == 0, "\(made.stderr)")
            let checkedIn = try String(contentsOfFile: packageRoot + "/scripts/completions/" + file, encoding: .utf8)
            #expect(made.stdout == checkedIn, "scripts/completions/\(file) is not what 'seqpipe completion \(shell)' prints; write it again from that")
        }
        #expect(try bashCompletion(sandbox, "seqpipe.bash", "_seqpipe", ["seqpipe", "dev"]) == ["device"], "hidden commands are not offered")
        #expect(try bashCompletion(sandbox, "seqpipe.bash", "_seqpipe", ["seqpipe", "device", ""]) == ["add", "list", "remove"])
        #expect(try bashCompletion(sandbox, "seqpipe.bash", "_seqpipe", ["seqpipe", "--db", "x.db", "jobs", "--st"]) == ["--status"])
        #expect(try bashCompletion(sandbox, "seqpipe.bash", "_seqpipe", ["seqpipe", "serve", "--allow"]) == ["--allow-actions"])
        let shells = ["zsh", "fish"].filter { shell in
            if commandOnPath(shell) { return true }
            print("skipped: seqpipeCompletionsAreMadeFromItsCommands' \(shell) check needs \(shell) (apt-get install \(shell)); .ci/run installs it")
            return false
        }
        for (shell, file) in [("zsh", "_seqpipe"), ("fish", "seqpipe.fish")] where shells.contains(shell) {
            let check = try sandbox.start("/usr/bin/env", [shell, "-n", packageRoot + "/scripts/completions/" + file])
            #expect(check.wait() == 0, "\(shell) -n \(file): \(check.stderr)")
        }
        guard shells.contains("fish") else { return }
        let fish = try sandbox.start("/usr/bin/env", ["HOME=\(sandbox.root)", "fish", "--no-config", "-c", """
            source \(packageRoot)/scripts/completions/seqpipe.fish
            complete -C 'seqpipe stat'; complete -C 'seqpipe account '; complete -C 'seqpipe events --li'
            """])
        #expect(fish.wait() == 0, "\(fish.stderr)")
        let answers = fish.stdout.split(separator: "\n").map { String($0.split(separator: "\t").first ?? "") }
        #expect(answers == ["status", "add", "list", "resume", "--limit"], "\(fish.stdout)")
    }

    @Test func migrationShimsRunTheSwiftToolsWithTheOriginalNames() throws {
        let sandbox = try Sandbox()
        let scripts = packageRoot + "/scripts/"
        let environment = ["SEQGUARD_BIN": toolsDirectory]
        try sandbox.write("Makefile", "a:\n\t@echo a $(X)\n")
        var child = try sandbox.start(scripts + "make-sequential.sh", ["a", "X=1"], environment: environment)
        #expect(child.wait() == 0 && child.stdout == "a 1\n")
        child = try sandbox.start(scripts + "sequential-executor.sh", ["sleep", "30"], environment: environment.merging(["TIMEOUT": "0.3"]) { $1 })
        #expect(child.wait() == 124)
        child = try sandbox.start(scripts + "sequential-executor.sh", ["-v"], environment: environment.merging(["VERBOSE": "1"]) { $1 })
        #expect(child.wait() == 127, "the argument is the command, never an option of seqexec")
        #expect(child.stderr.contains("[SEQUENTIAL]"), "VERBOSE=1 is verbose: \(child.stderr)")
        child = try sandbox.start(scripts + "memory_monitor.sh", ["true"], environment: environment.merging(["MEMORY_LIMIT_MB": "300", "CHECK_INTERVAL": "1"]) { $1 })
        #expect(child.wait() == 0)
        #expect(sandbox.history.last?["memory_limit_mb"] as? Int == 300)
        child = try sandbox.start(scripts + "memory_monitor.sh", ["true"], environment: environment.merging(["CHECK_INTERVAL": "often"]) { $1 })
        #expect(child.wait() == 125 && child.stderr == "seqexec: invalid CHECK_INTERVAL 'often': expected seconds from 0 to 31536000 (365 days), e.g. 30, 2.5, 500ms, 90s, 10m or 1h30m\n")
        child = try sandbox.start(scripts + "memory_monitor.sh", ["4121"], environment: environment)
        #expect(child.wait() == 125 && child.stderr.contains("built into seqexec"))
    }
}
