import PipelineModel
import SeqDatabase
import SeqGuard

/// One version of the pipeline's config as the store keeps it: its JSON text, when it was
/// loaded and from where (a file's path, or `config set KEY`).
public struct StoredConfig: Sendable, Equatable {
    public var version: Int
    public var text: String
    public var loadedAt: Moment
    public var source: String

    /// The config it says, parsed as a file would be.
    public func parsed() throws(ConfigError) -> PipelineConfig {
        var config = try PipelineConfig.parse(text, path: "config version \(version) (from \(source))")
        (config.path, config.version, config.source) = (nil, version, source)
        return config
    }
}

extension SQLJobStore {
    /// The newest version, nil when none was ever loaded.
    public func currentConfig() throws(StoreError) -> StoredConfig? {
        try connection.query("SELECT * FROM configs ORDER BY version DESC LIMIT 1").first.map(Self.storedConfig)
    }

    public func config(version: Int) throws(StoreError) -> StoredConfig? {
        try connection.query("SELECT * FROM configs WHERE version = ?1", [.integer(Int64(version))]).first.map(Self.storedConfig)
    }

    /// The newest version loaded from `source` (a file), nil when none was.
    public func lastConfig(from source: String) throws(StoreError) -> StoredConfig? {
        try connection.query("SELECT * FROM configs WHERE source = ?1 ORDER BY version DESC LIMIT 1", [.text(source)]).first.map(Self.storedConfig)
    }

    /// Every version, newest first, without their text.
    public func configVersions() throws(StoreError) -> [StoredConfig] {
        try connection.query("SELECT version, loaded_at, source, '' AS text FROM configs ORDER BY version DESC").map(Self.storedConfig)
    }

    /// Keeps `text` as the next version, unless the newest already says exactly that; the
    /// version that holds it, and whether it is new (an event records a new one). The caller
    /// has checked that it parses.
    public func loadConfig(_ text: String, source: String, now: Moment) throws(StoreError) -> (version: Int, new: Bool) {
        let now = try databaseTime(now)
        return try connection.write { () throws(StoreError) -> (version: Int, new: Bool) in
            let newest = try connection.query("SELECT version, text FROM configs ORDER BY version DESC LIMIT 1").first
            if let newest, newest["text"].string == text, let version = newest["version"].int { return (Int(version), false) }
            let version = Int(newest?["version"].int ?? 0) + 1
            _ = try connection.run("INSERT INTO configs(version, text, loaded_at, source) VALUES (?1, ?2, ?3, ?4)",
                                   [.integer(Int64(version)), .text(text), .time(now), .text(source)])
            try insertEvent(Event(at: now, kind: .configLoaded, message: "config version \(version) loaded from \(source)"))
            return (version, true)
        }
    }

    static func storedConfig(_ row: SQLRow) -> StoredConfig {
        StoredConfig(version: Int(row["version"].int ?? 0), text: row["text"].string ?? "", loadedAt: row["loaded_at"].moment ?? 0,
                     source: row["source"].string ?? "")
    }
}
