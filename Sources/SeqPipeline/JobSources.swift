import PipelineStore
import PipelineModel
import SeqDatabase
import SeqSystem

/// Jobs made from files: `seqpipe add-folder`.
public enum JobSources {
    /// File extensions taken as media.
    public static let mediaExtensions: Set<String> = ["mp4", "mov", "m4v", "avi", "mkv", "webm", "jpg", "jpeg", "png", "gif"]

    /// One job per media file in `directory` (sorted by name), accounts assigned round-robin,
    /// the caption read from a sidecar `<name>.txt`. Files that already have a job are skipped.
    /// - Throws: `ConfigError` when the directory cannot be read or holds no media.
    public static func folder(_ directory: String, accounts: [String], priority: Int, maxAttempts: Int,
                              existingVideos: Set<String>) throws(ConfigError) -> (jobs: [Job], skipped: Int) {
        let root: String
        do { root = try FileSystem.realPath(directory) } catch {
            throw ConfigError(message: "cannot read folder \(directory): \(error); check the path")
        }
        let entries: [(name: String, isDirectory: Bool)]
        do { entries = try FileSystem.entries(ofDirectory: root) } catch {
            throw ConfigError(message: "cannot read folder \(root): \(error); check the path and its permissions")
        }
        let media = entries.filter { !$0.isDirectory && mediaExtensions.contains(fileExtension($0.name).lowercased()) }
            .map(\.name).sorted()
        guard !media.isEmpty else {
            throw ConfigError(message: "no media files in \(root); expected names ending in \(mediaExtensions.sorted().joined(separator: ", "))")
        }
        var jobs: [Job] = []
        var skipped = 0
        var next = 0
        for name in media {
            let path = root + "/" + name
            if existingVideos.contains(path) { skipped += 1; continue }
            var job = Job(id: "", account: accounts[next % accounts.count])
            next += 1
            job.priority = priority
            job.maxAttempts = maxAttempts
            job.payload.append(("video", path))
            let stem = String(name.dropLast(fileExtension(name).count + 1))
            if let bytes = try? FileSystem.readFile(root + "/" + stem + ".txt") {
                var caption = String(decoding: bytes, as: UTF8.self)
                while caption.last == "\n" || caption.last == "\r" { caption.removeLast() }
                job.payload.append(("caption", caption))
            }
            jobs.append(job)
        }
        return (jobs, skipped)
    }

    static func fileExtension(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[name.index(after: dot)...])
    }
}

extension JobSources {
    /// What `seqpipe seed` did.
    public struct SeedReport: Sendable {
        public var added = 0
        /// Jobs already in the store (by id, or by video for a folder's files), left as they are.
        public var skipped = 0
    }

    /// `seqpipe seed` (the seeds' `--seed-only`): fills the store from folders and progress
    /// CSVs without starting anything. What is already there stays as it is, so seeding again
    /// only adds what is new.
    /// - Throws: `ConfigError` naming a folder or CSV that cannot be read; `StoreError`s pass
    ///   as `ConfigError` with the store's message.
    public static func seed(
        store: SQLJobStore, folders: [String], accounts: [String], csvFiles: [String], priority: Int, maxAttempts: Int,
        config: PipelineConfig? = nil
    ) throws(ConfigError) -> SeedReport {
        var report = SeedReport()
        func existing() throws(ConfigError) -> [Job] {
            do { return try store.jobs() } catch { throw ConfigError(message: error.message) }
        }
        func add(_ jobs: [Job]) throws(ConfigError) {
            if let config {
                for job in jobs { if let missing = Placeholders.missing(for: job, config: config) { throw ConfigError(message: "job \(job.id): \(missing)") } }
            }
            let known = Set(try existing().map(\.id))
            let fresh = jobs.filter { $0.id.isEmpty || !known.contains($0.id) }
            report.skipped += jobs.count - fresh.count
            do { report.added += try store.addJobs(fresh).count } catch { throw ConfigError(message: error.message) }
        }
        for folder in folders {
            let videos = Set(try existing().compactMap { $0.field("video") })
            let made = try Self.folder(folder, accounts: accounts, priority: priority, maxAttempts: maxAttempts, existingVideos: videos)
            report.skipped += made.skipped
            try add(made.jobs)
        }
        for file in csvFiles {
            let bytes: [UInt8]
            do { bytes = try FileSystem.readFile(file) } catch { throw ConfigError(message: "cannot read \(file): \(error)") }
            try add(try ProgressCSV.importJobs(ProgressCSV.text(bytes, file: file), file: file, defaultMaxAttempts: maxAttempts))
        }
        return report
    }

    /// `seed` with its progress CSV written to `export` (if given), and the line it prints.
    public static func seed(
        store: SQLJobStore, folders: [String], accounts: [String], csvFiles: [String], priority: Int, maxAttempts: Int, export: String?,
        config: PipelineConfig
    ) throws(ConfigError) -> String {
        let report = try seed(store: store, folders: folders, accounts: accounts, csvFiles: csvFiles, priority: priority, maxAttempts: maxAttempts,
                              config: config)
        if let export {
            let jobs: [Job]
            do { jobs = try store.jobs() } catch { throw ConfigError(message: error.message) }
            do { try FileSystem.writeFile(export, ProgressCSV.export(jobs)) } catch { throw ConfigError(message: "cannot write \(export): \(error)") }
        }
        return "seeded \(store.connection.name): \(report.added) job\(report.added == 1 ? "" : "s") added, \(report.skipped) already there"
            + (export.map { "; progress in \($0)" } ?? "") + "; nothing was run\n"
    }
}
