internal import CMicroHTTPD
import Foundation

/// Process-wide settings for a server process, called once at start before any thread exists.
public enum ProcessTuning {
    /// Caps glibc's malloc arenas. By default glibc gives threads up to 8 arenas per core, and memory freed in each
    /// stays resident: with libmicrohttpd's worker threads, the directory's peak RSS in the benchmark crept up to 63
    /// of its 64 MiB budget.
    public static func limitMallocArenas(_ arenas: Int) {
        _ = dfs_limit_malloc_arenas(Int32(arenas))
    }

    /// Starts a thread that hands free heap pages back to the kernel every `intervalSeconds` (glibc's
    /// `malloc_trim`). Memory freed after a burst (a listing page of 1.5 MB, many connections at once) otherwise
    /// stays resident: the directory's RSS, sampled during the benchmark's 1 GiB transfer after the other
    /// workloads, read 53–57 MiB of its 64 MiB budget while it held far less.
    public static func releaseFreeMemory(every intervalSeconds: Double) {
        let thread = Thread {
            while true {
                Thread.sleep(forTimeInterval: intervalSeconds)
                _ = dfs_release_free_memory()
            }
        }
        thread.name = "dfs-malloc-trim"
        thread.start()
    }
}
