import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem

/// The config a page or a watched status shows: the version the running orchestrators use,
/// else the store's newest, else the one it started with. Looked up again at most once a
/// second, and read again only when that version changes, so a new run's version (or a
/// `config set` before it) shows without restarting `serve` or `status --watch`.
final class ConfigFollower: @unchecked Sendable {
    // @unchecked: used from one thread (the server's, or the watch loop).
    private var config: PipelineConfig
    private var lookedAt: Int64 = 0

    init(_ config: PipelineConfig) { self.config = config }

    func current(_ store: any JobStore) -> PipelineConfig {
        let now = Clock.monotonicNanoseconds()
        guard lookedAt == 0 || now - lookedAt >= 1_000_000_000 else { return config }
        lookedAt = now
        guard let wanted = (try? store.runningConfigVersion()) ?? (try? store.currentConfig())?.version, wanted != config.version,
              let stored = try? store.config(version: wanted), let parsed = try? stored.parsed() else { return config }
        config = parsed
        return config
    }
}
