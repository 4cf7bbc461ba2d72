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
