import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// Where a pipeline's files are: the store, its config, the worker logs.
public struct PipelinePaths: Sendable {
    /// The store, as an absolute path.
    public var database: String
    public var config: String
    public var directory: String
    public var logs: String { directory + "/logs" }
    public var run: String { directory + "/run" }

    /// - Parameter database: a file, or a `postgresql://` URL; the logs and the default
    ///   config of a store on PostgreSQL are in `.seqpipe` under the working directory.
    public init(database: String, config: String?) {
        self.database = database
        if SQLJobStore.isURL(database) {
            let here = (try? FileSystem.currentDirectory()) ?? "."
            directory = (here == "/" ? "" : here) + "/.seqpipe"
        } else {
            let slash = database.lastIndex(of: "/")
            directory = slash.map { $0 == database.startIndex ? "/" : String(database[..<$0]) } ?? "."
        }
        self.config = config ?? directory + "/pipeline.json"
    }

    /// How a run member is told of this store: a file by `--db`, a URL by SEQPIPE_DB in its
    /// environment (never on a command line, where ps would show its password).
    public func memberStore(_ environment: [String], host: String? = nil) -> (arguments: [String], environment: [String]) {
        var environment = environment
        if let host { environment = environment.filter { !$0.hasPrefix("SEQPIPE_HOST=") } + ["SEQPIPE_HOST=\(host)"] }
        guard isURL else { return (["--db", database], environment) }
        return ([], environment.filter { !$0.hasPrefix("SEQPIPE_DB=") } + ["SEQPIPE_DB=\(database)"])
    }

    /// What is wrong with the store's location before anything opens it: a URL of a
    /// database seqpipe does not speak (`mysql://…` is no file name either), or a path that
    /// names something other than a regular file (`/dev/null`, a directory). Nil when fine.
    public static func problem(with location: String) -> (message: String, usage: Bool)? {
        let name = location.prefix { $0 != ":" }
        if !SQLJobStore.isURL(location), !name.isEmpty, location.dropFirst(name.count).hasPrefix("://") {
            let schemeLike = name.allSatisfy { (character: Character) -> Bool in character.isLetter || character.isNumber || "+-.".contains(character) }
            if schemeLike {
                return ("--db \(location): seqpipe speaks no '\(name)' store; give a file path (SQLite) or a postgresql:// URL", true)
            }
        }
        guard !SQLJobStore.isURL(location), let status = try? FileSystem.status(FileSystem.realPath(location)) else { return nil }
        guard status.isRegularFile else {
            let kind = status.isDirectory ? "a directory" : "not a regular file"
            return ("the store \(location) is \(kind); an SQLite store is one regular file: pass --db PATH to one (seqpipe init makes it)", false)
        }
        return nil
    }

    /// Whether the store is a PostgreSQL server rather than a file.
    public var isURL: Bool { SQLJobStore.isURL(database) }

    /// The store as messages name it: its path, or its URL with the password hidden.
    public var storeName: String { isURL ? PostgreSQLConnection.redacted(database) : database }

    public func log(worker: Int) -> String { "\(logs)/worker_\(worker).log" }
    /// What worker N's device server prints (the original's logs/appium_N.log).
    public func serverLog(worker: Int) -> String { "\(logs)/server_\(worker).log" }
    public var schedulerLog: String { "\(logs)/scheduler.log" }
}
