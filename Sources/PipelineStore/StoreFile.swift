import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

/// A SQLite store as the kernel knows it: the inode a run opened, held with a flock(2) so
/// that one orchestrator runs per store file by whatever name it is reached (a hard link in
/// another directory, a bind mount, a renamed directory), and checked against its path so a
/// run never goes on writing to a file nobody can open again.
///
/// SQLite locks its files with fcntl(2) record locks, which the kernel keeps apart from
/// flock(2) locks on Linux, so this lock never meets SQLite's own. The descriptor is never
/// closed while the process runs: closing any descriptor of a file drops the process's
/// record locks on it, SQLite's included.
public struct StoreFile: Sendable {
    /// The path the run was given.
    public let path: String
    /// The file the run opened.
    public let descriptor: FileDescriptor
    public let device: UInt64
    public let inode: UInt64
    /// The write-ahead log once seen (SQLite keeps it while any connection is open).
    var log: (device: UInt64, inode: UInt64)?

    /// What holding the store's file can end in.
    public enum Holding: Sendable {
        case held(StoreFile)
        /// Another process holds it: these (from the kernel's lock table).
        case taken(by: [ProcessIdentity])
    }

    /// Opens `path` and takes its lock without waiting.
    /// - Throws: `GuardFailure` naming the file when it cannot be opened.
    public static func hold(_ given: String) throws(GuardFailure) -> Holding {
        // A symlink to the store is the store: its target is what is watched.
        let path = (try? FileSystem.realPath(given)) ?? given
        let descriptor: FileDescriptor
        let status: FileStatus
        do {
            descriptor = try FileSystem.open(path, [.readOnly])
            status = try descriptor.status()
        } catch {
            throw GuardFailure("cannot open the store \(path): \(error)", errno: error)
        }
        do {
            guard try descriptor.lock(exclusive: true, nonBlocking: true) else {
                descriptor.close()
                return .taken(by: Processes.holding(device: status.device, inode: status.inode, lockedOnly: true))
            }
        } catch {
            descriptor.close()
            throw GuardFailure("cannot lock the store \(path): \(error)", errno: error)
        }
        var file = StoreFile(path: path, descriptor: descriptor, device: status.device, inode: status.inode)
        _ = file.change()
        return .held(file)
    }

    init(path: String, descriptor: FileDescriptor, device: UInt64, inode: UInt64) {
        self.path = path
        self.descriptor = descriptor
        self.device = device
        self.inode = inode
    }

    /// What happened to the store since it was opened, in one line naming the file and the
    /// change; nil while its path still names the file the run opened and its log is the one
    /// first seen. Records the log the first time it exists.
    public mutating func change() -> String? {
        guard let named = try? FileSystem.status(path) else {
            if let mine = try? descriptor.status(), mine.links == 0 {
                return "the store \(path) was deleted while the run used it (what it wrote since is in a file nobody can open)"
            }
            return "the store \(path) no longer names a file: it was renamed or moved away while the run used it"
        }
        guard named.device == device, named.inode == inode else {
            return "the store \(path) was replaced by another file while the run used it (inode \(named.inode), was \(inode))"
        }
        let walPath = path + "-wal"
        switch (log, try? FileSystem.status(walPath)) {
        case (nil, let wal?):
            log = (wal.device, wal.inode)
        case (_?, nil):
            return "the store's write-ahead log \(walPath) was removed while the run used it (the writes it held are lost to other readers)"
        case (let seen?, let wal?) where seen.device != wal.device || seen.inode != wal.inode:
            return "the store's write-ahead log \(walPath) was replaced while the run used it"
        default:
            break
        }
        return nil
    }

    /// The identity of the file `path` names (through symlinks), for `sameFile`.
    public static func identity(_ path: String) -> FileStatus? { try? FileSystem.status(FileSystem.realPath(path)) }

    /// Whether `path` still names the file whose identity `expected` recorded: for a run's
    /// members, which hold no descriptor of the file and check before each claim.
    public static func sameFile(_ path: String, as expected: FileStatus) -> Bool {
        guard let now = try? FileSystem.status(FileSystem.realPath(path)) else { return false }
        return now.device == expected.device && now.inode == expected.inode
    }
}
