import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// `seqpipe config`: the config the runs use, kept in the store in numbered versions.

extension Invocation {
    func configCommand() {
        guard let sub = words.first else { usage("expected load, set, show or versions") }
        let store = openStore()
        switch sub {
        case "load":
            if words.count > 2 { usage("expected at most one file: seqpipe config load [FILE]") }
            let file = words.count == 2 ? Self.absolute(words[1]) : paths.config
            if !FileSystem.exists(file) { fail("no config at \(file); 'seqpipe init' writes one with every default", 1) }
            let (version, new) = loadConfigFile(file, into: store)
            printOut(new ? "config version \(version) loaded from \(file)\n" : "config version \(version) already says what \(file) says\n")
        case "set":
            guard words.count == 3 else { usage("expected a key and a value: seqpipe config set workers.idle_poll_seconds 2") }
            pickUpEditedFile(into: store)
            let base = storedConfig(store)?.text ?? (FileSystem.exists(paths.config) ? fileText(paths.config) : PipelineConfig.defaultText)
            let text: String
            do { text = try ConfigEdit.set(words[1], to: words[2], in: base) } catch { fail(error.message, 1) }
            do { _ = try PipelineConfig.parse(text, path: "the new version") } catch { fail(error.message, 1) }
            let (version, new) = storeCall { () throws(StoreError) in try store.loadConfig(text, source: "config set \(words[1])", now: Moment.now()) }
            printOut(new ? "config version \(version): \(words[1]) = \(words[2])\n" : "config version \(version) already has \(words[1]) = \(words[2])\n")
        case "show":
            if words.count > 2 { usage("expected at most a version number: seqpipe config show [VERSION]") }
            let stored: StoredConfig?
            if words.count == 2 {
                guard let version = Int(words[1]), version > 0 else { usage("'\(words[1])' is not a version number; see 'seqpipe config versions'") }
                stored = storeCall { () throws(StoreError) in try store.config(version: version) }
                if stored == nil { fail("store \(paths.storeName) has no config version \(version); see 'seqpipe config versions'", 1) }
            } else {
                stored = storedConfig(store)
                if stored == nil { fail("store \(paths.storeName) holds no config yet; 'seqpipe config load' loads pipeline.json (so does 'seqpipe run')", 1) }
            }
            printOut(stored!.text.hasSuffix("\n") ? stored!.text : stored!.text + "\n")
        case "versions":
            if words.count != 1 { usage("expected no arguments") }
            let versions = storeCall { () throws(StoreError) in try store.configVersions() }
            if versions.isEmpty { printOut("no config in store \(paths.storeName) yet; 'seqpipe config load' loads pipeline.json\n"); return }
            var rows = [["VERSION", "LOADED", "FROM"]]
            for version in versions { rows.append([String(version.version), isoTime(version.loadedAt), version.source]) }
            printOut(TextTable.render(rows))
        default:
            usage("expected load, set, show or versions, not '\(sub)'")
        }
    }
}

/// `config set`: one key of a config's JSON changed, the rest kept as it is.
public enum ConfigEdit {
    /// `text` with `key` (dotted: `workers.idle_poll_seconds`, `steps.0.timeout_seconds`) set
    /// to `value`, read as JSON when it is JSON (`2`, `true`, `["a"]`), else as a string.
    /// Objects on the way are made when missing; a list is indexed by number.
    public static func set(_ key: String, to value: String, in text: String) throws(ConfigError) -> String {
        guard let root = JSON.decode(text) else { throw ConfigError(message: "the config is not valid JSON; 'seqpipe config load FILE' replaces it") }
        let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.contains(where: \.isEmpty) else { throw ConfigError(message: "'\(key)' is not a key; keys look like workers.idle_poll_seconds") }
        let new = JSON.decode(value) ?? .string(value)
        return JSON.encode(try setting(path[...], to: new, in: root, key: key)) + "\n"
    }

    static func setting(_ path: ArraySlice<String>, to value: JSON.Value, in node: JSON.Value, key: String) throws(ConfigError) -> JSON.Value {
        guard let first = path.first else { return value }
        switch node {
        case .object(var fields):
            if let index = fields.firstIndex(where: { $0.0 == first }) {
                fields[index].1 = try setting(path.dropFirst(), to: value, in: fields[index].1, key: key)
            } else {
                fields.append((first, try setting(path.dropFirst(), to: value, in: .object([]), key: key)))
            }
            return .object(fields)
        case .array(var items):
            guard let index = Int(first), items.indices.contains(index) else {
                throw ConfigError(message: "'\(key)': '\(first)' is not an index of that list (0 to \(items.count - 1))")
            }
            items[index] = try setting(path.dropFirst(), to: value, in: items[index], key: key)
            return .array(items)
        default:
            throw ConfigError(message: "'\(key)': '\(first)' is inside a value that is not an object or a list")
        }
    }
}
