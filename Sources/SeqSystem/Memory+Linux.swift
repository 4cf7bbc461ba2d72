import CSeqSystem
import Glibc

/// Machine-wide memory figures from /proc.
public enum SystemMemory {
    public static let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))

    /// MemAvailable from /proc/meminfo, in bytes: what can be allocated without swapping.
    public static func available() -> Int64? {
        guard let bytes = try? FileSystem.readFile("/proc/meminfo"),
              let kilobytes = keyedValue(bytes, key: "MemAvailable:") else { return nil }
        return kilobytes * 1024
    }

    /// How many processes the kernel's OOM killer has killed since boot (/proc/vmstat).
    public static func oomKillCount() -> Int64? {
        guard let bytes = try? FileSystem.readFile("/proc/vmstat") else { return nil }
        return keyedValue(bytes, key: "oom_kill ")
    }

    /// The number after `key` on the line that starts with it (`Pss:   774 kB` → 774).
    public static func keyedValue(_ bytes: [UInt8], key: String) -> Int64? {
        let key = Array(key.utf8)
        var lineStart = 0
        while lineStart < bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            if lineEnd - lineStart > key.count, bytes[lineStart..<(lineStart + key.count)].elementsEqual(key) {
                var value: Int64 = 0
                var digits = 0
                for byte in bytes[(lineStart + key.count)..<lineEnd] {
                    if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                        value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                        digits += 1
                    } else if digits > 0 {
                        break
                    }
                }
                return digits > 0 ? value : nil
            }
            lineStart = lineEnd + 1
        }
        return nil
    }
}

extension Processes {
    /// Whether this kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN); without it
    /// a tree is found from the parent links of every process in /proc.
    public static let hasChildrenFiles: Bool = {
        let pid = getpid()
        return FileSystem.exists("/proc/\(pid)/task/\(pid)/children")
    }()

    /// The live descendants of `roots` through /proc/PID/task/TID/children, deepest first:
    /// one small file per process of the tree.
    static func walkChildrenFiles(from roots: Set<Int32>, sparing: Set<Int32> = []) -> [ProcStat] {
        var found: [ProcStat] = []
        var frontier = Array(roots)
        var seen = roots.union(sparing)
        while let pid = frontier.popLast() {
            guard let threads = try? FileSystem.contents(ofDirectory: "/proc/\(pid)/task") else { continue }
            for thread in threads {
                guard let bytes = try? FileSystem.readFile("/proc/\(pid)/task/\(thread)/children") else { continue }
                for field in bytes.split(separator: UInt8(ascii: " ")) {
                    guard let child = Int32(String(decoding: field, as: UTF8.self)), !seen.contains(child),
                          let stat = try? ProcStat.read(child), stat.state != "Z" else { continue }
                    seen.insert(child)
                    found.append(stat)
                    frontier.append(child)
                }
            }
        }
        return found.reversed()
    }

    /// The tmpfs files and memfds `pid` has open (memory that no RSS shows: a file written
    /// and never mapped), each as its device, inode and allocated bytes.
    public static func sharedMemoryFiles(_ pid: Int32) -> [(device: UInt64, inode: UInt64, bytes: Int64)] {
        guard let fds = try? FileSystem.contents(ofDirectory: "/proc/\(pid)/fd") else { return [] }
        var result: [(device: UInt64, inode: UInt64, bytes: Int64)] = []
        for fd in fds {
            let path = "/proc/\(pid)/fd/\(fd)"
            // Sockets, pipes and anonymous inodes read as "socket:[…]" and the like.
            guard let target = try? FileSystem.readLink(path), target.hasPrefix("/") else { continue }
            guard cseq_filesystem_type(path) == 0x0102_1994 else { continue }  // TMPFS_MAGIC: tmpfs, shm, memfd
            var st = stat()
            guard fstatat(AT_FDCWD, path, &st, 0) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            result.append((UInt64(st.st_dev), UInt64(st.st_ino), Int64(st.st_blocks) * 512))
        }
        return result
    }

    /// Proportional set size in bytes (/proc/PID/smaps_rollup): shared pages divided among
    /// the processes sharing them. Nil if the process is gone or unreadable.
    public static func proportionalSetSize(_ pid: Int32) -> Int64? {
        guard let bytes = try? FileSystem.readFile("/proc/\(pid)/smaps_rollup"),
              let kilobytes = SystemMemory.keyedValue(bytes, key: "Pss:") else { return nil }
        return kilobytes * 1024
    }

    /// The working directory of `pid`, or nil if it is gone or not ours to read.
    public static func workingDirectory(_ pid: Int32) -> String? {
        try? FileSystem.readLink("/proc/\(pid)/cwd")
    }

    /// The parent chain of this process, nearest first, up to (not including) pid 1.
    public static func ancestors() -> [ProcStat] {
        var result: [ProcStat] = []
        var pid = getppid()
        while pid > 1, result.count < 64, let stat = try? ProcStat.read(pid) {
            result.append(stat)
            pid = stat.parent
        }
        return result
    }

    /// Peak resident size of the largest descendant reaped so far (getrusage RUSAGE_CHILDREN), bytes.
    public static func reapedChildrenPeakResident() -> Int64 {
        var usage = rusage()
        guard getrusage(RUSAGE_CHILDREN.rawValue, &usage) == 0 else { return 0 }
        return Int64(usage.ru_maxrss) * 1024
    }
}
