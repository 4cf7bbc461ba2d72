import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// Which config a command works under. The store keeps it in numbered versions; pipeline.json
// is how a version gets there (seqpipe(1), CONFIGURATION).

extension Invocation {
    /// The config a command works under: the store's newest version (a run's member: the
    /// version its orders name; a command that only reads: the version the running
    /// orchestrator uses), else, for a store that never had one loaded (or none yet),
    /// pipeline.json, or the defaults without one. A command that writes to the store first
    /// loads pipeline.json into it when the file was edited since it was last loaded from
    /// there (`pickUpEditedFile`). `store` is the one the command opened.
    func loadConfig(store: SQLJobStore? = nil, version: Int? = nil) -> PipelineConfig {
        if let namedConfig, !FileSystem.exists(paths.config) {
            fail("no config at \(namedConfig); create it (seqpipe init writes one with every default) or drop --config")
        }
        if let version {
            let store = store ?? openStore()
            guard let stored = storeCall({ () throws(StoreError) in try store.config(version: version) }) else {
                fail("store \(paths.storeName) has no config version \(version); see 'seqpipe config versions'")
            }
            do { return try stored.parsed() } catch { fail(error.message) }
        }
        if let store, !readsOnly { pickUpEditedFile(into: store) }
        // What shows the store shows the version the running orchestrator uses.
        if readsOnly, let store, let running = (try? store.runningConfigVersion()) ?? nil,
           let stored = (try? store.config(version: running)) ?? nil {
            do { return try stored.parsed() } catch { fail(error.message) }
        }
        if let stored = storedConfig(store) {
            do { return try stored.parsed() } catch { fail(error.message) }
        }
        return fileConfig()
    }

    /// The config the next `seqpipe run` would use, loading nothing: pipeline.json when it was
    /// edited since it was last loaded from there (or the store has none), else the store's
    /// newest version. What `schedule` previews, and `show-config` while no run is going.
    func nextRunConfig() -> PipelineConfig {
        let store = paths.isURL || FileSystem.exists(paths.database) ? try? SQLJobStore.open(paths.database, readingOnly: true) : nil
        guard let store, let newest = (try? store.currentConfig()) ?? nil else { return fileConfig() }
        if FileSystem.exists(paths.config), ((try? store.lastConfig(from: configSource(paths.config))) ?? nil)?.text != fileText(paths.config) {
            return fileConfig()
        }
        do { return try newest.parsed() } catch { fail(error.message) }
    }

    /// Commands that only read the store (status, jobs, show, events, export-csv, serve,
    /// show-config, schedule): they open it read-only and load nothing into it.
    var readsOnly: Bool { ["status", "jobs", "show", "events", "export-csv", "serve", "show-config", "schedule"].contains(command.name) }

    /// The store's newest config version, if the store exists and holds one. A store that
    /// cannot be read here says nothing: the command reports it when it opens the store.
    func storedConfig(_ store: SQLJobStore? = nil) -> StoredConfig? {
        if let store { return try? store.currentConfig() }
        guard paths.isURL || FileSystem.exists(paths.database), let opened = try? SQLJobStore.open(paths.database, readingOnly: true) else { return nil }
        return try? opened.currentConfig()
    }

    /// pipeline.json as a file: the default one may be missing (the defaults apply); one named
    /// by hand may not.
    func fileConfig() -> PipelineConfig {
        if let namedConfig, !FileSystem.exists(paths.config) {
            fail("no config at \(namedConfig); create it (seqpipe init writes one with every default) or drop --config")
        }
        do { return try PipelineConfig.load(path: paths.config) } catch { fail(error.message) }
    }

    /// Where a version loaded from `file` says it came from: the path, and on a store shared
    /// by hosts the host too (the same path on two machines is two files).
    func configSource(_ file: String) -> String { paths.isURL ? "\(hostName):\(file)" : file }

    /// Loads `file` (parsed first: a config with a mistake is refused, naming it) into the
    /// store as its next version, unless the newest already says the same; the version.
    @discardableResult
    func loadConfigFile(_ file: String, into store: SQLJobStore) -> (version: Int, new: Bool) {
        let text = fileText(file)
        do { _ = try PipelineConfig.parse(text, path: file) } catch { fail(error.message) }
        return storeCall { () throws(StoreError) in try store.loadConfig(text, source: configSource(file), now: Moment.now()) }
    }

    /// pipeline.json, when it says something other than what was last loaded from it, becomes
    /// the store's next version: an edit is picked up by the next command that writes, while
    /// a file left as it was never undoes a `config set` or another host's load. A missing
    /// file named by --config is an error; a missing default one is nothing.
    @discardableResult
    func pickUpEditedFile(into store: SQLJobStore) -> (version: Int, new: Bool)? {
        guard FileSystem.exists(paths.config) else {
            if let namedConfig { fail("no config at \(namedConfig); create it (seqpipe init writes one with every default) or drop --config") }
            return nil
        }
        let text = fileText(paths.config)
        let last = storeCall { () throws(StoreError) in try store.lastConfig(from: configSource(paths.config)) }
        guard last?.text != text else { return nil }
        do { _ = try PipelineConfig.parse(text, path: paths.config) } catch { fail(error.message) }
        return storeCall { () throws(StoreError) in try store.loadConfig(text, source: configSource(paths.config), now: Moment.now()) }
    }

    /// The config a run uses: pipeline.json picked up first when edited (a config-loaded
    /// event says so), then the store's newest version, which the run's members are told by
    /// number.
    func runConfig(_ store: SQLJobStore) -> PipelineConfig {
        pickUpEditedFile(into: store)
        return loadConfig(store: store)
    }

    func fileText(_ file: String) -> String {
        do { return String(decoding: try FileSystem.readFile(file), as: UTF8.self) } catch { fail("cannot read config \(file): \(error)") }
    }
}
