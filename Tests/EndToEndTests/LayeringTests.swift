import Foundation
import Testing

/// The layering rules seqguard(7) states (ARCHITECTURE), checked against the sources themselves: a rule a
/// reviewer has to remember is a rule that erodes.
@Suite struct LayeringTests {
    /// Every Swift file under Sources/, as (path relative to Sources, text).
    func sources() throws -> [(path: String, text: String)] {
        let root = packageRoot + "/Sources"
        guard let walker = FileManager.default.enumerator(atPath: root) else {
            Issue.record("cannot list \(root)")
            return []
        }
        var result: [(String, String)] = []
        for case let path as String in walker where path.hasSuffix(".swift") {
            result.append((path, try String(contentsOfFile: root + "/" + path, encoding: .utf8)))
        }
        #expect(result.count > 40, "found only \(result.count) Swift files under \(root)")
        return result
    }

    /// The lines of `text` that are code, not comments.
    func codeLines(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { !$0.drop(while: { $0 == " " }).hasPrefix("//") }
    }

    /// Only SeqSystem speaks to libc: the layers above it use its typed API (Signal,
    /// OpenOptions, ProcessIdentity, ProcessExit), never a raw SIGTERM or O_CREAT.
    @Test func onlySeqSystemImportsGlibc() throws {
        var offenders: [String] = []
        for (path, text) in try sources() where !path.hasPrefix("SeqSystem/") {
            for line in codeLines(text) where line.contains("import Glibc") || line.contains("import Musl") {
                offenders.append("\(path): \(line)")
            }
        }
        #expect(offenders.isEmpty, "Glibc imported above SeqSystem:\n\(offenders.joined(separator: "\n"))")
    }

    /// No code changes its own process's environment: every command a worker or the guard
    /// starts would inherit the change (a TZ set for a date computation once leaked this way).
    @Test func noCodeChangesTheProcessEnvironment() throws {
        var offenders: [String] = []
        for (path, text) in try sources() {
            for line in codeLines(text) where ["setenv(", "putenv(", "unsetenv(", "clearenv("].contains(where: { line.contains($0) }) {
                offenders.append("\(path): \(line)")
            }
        }
        #expect(offenders.isEmpty, "the process environment is changed in:\n\(offenders.joined(separator: "\n"))")
    }

    /// Full Foundation stays off the start-up path of the guard's tools: it costs every
    /// launch several milliseconds, more than flock(1) takes in all.
    @Test func theGuardsStartUpPathDoesNotImportFoundation() throws {
        var offenders: [String] = []
        let pipeline = ["SeqPipeline/", "PipelineModel/", "PipelineStore/", "PipelineRuntime/", "seqpipe/"]
        for (path, text) in try sources() where !pipeline.contains(where: { path.hasPrefix($0) }) {
            for line in codeLines(text) where line.hasPrefix("import Foundation") {
                offenders.append("\(path): \(line)")
            }
        }
        #expect(offenders.isEmpty, "Foundation on the guard's start-up path:\n\(offenders.joined(separator: "\n"))")
    }

    /// The pipeline's layers point one way, along its data flow: the model (values and pure
    /// decisions) under the store (where they are kept) under the runtime (what runs) under
    /// the surfaces (what people and programs see, in SeqPipeline). Package.swift makes a
    /// wrong import fail to build; this says which way is right.
    @Test func thePipelinesLayersPointOneWay() throws {
        let layers = ["PipelineModel", "PipelineStore", "PipelineRuntime", "SeqPipeline"]
        let foreign = ["SeqSystem", "SeqGuard", "SeqDatabase", "Synchronization", "CSQLite", "CPostgreSQL"]
        var offenders: [String] = []
        for (path, text) in try sources() {
            guard let layer = layers.firstIndex(where: { path.hasPrefix($0 + "/") }) else { continue }
            for line in codeLines(text) where line.hasPrefix("import ") || line.hasPrefix("@_exported import ") {
                let module = line.split(separator: " ").last.map(String.init) ?? ""
                if let other = layers.firstIndex(of: module) {
                    if other >= layer { offenders.append("\(path): \(line) (\(module) is not below \(layers[layer]))") }
                } else if !foreign.contains(module) || (layer == 0 && module.hasPrefix("C")) {
                    offenders.append("\(path): \(line)")
                }
            }
        }
        #expect(offenders.isEmpty, "the pipeline's layers point the wrong way:\n\(offenders.joined(separator: "\n"))")
    }
}
