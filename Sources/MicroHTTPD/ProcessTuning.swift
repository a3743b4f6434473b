internal import CMicroHTTPD

/// Process-wide settings for a server process, called once at start before any thread exists.
public enum ProcessTuning {
    /// Caps glibc's malloc arenas. By default glibc gives threads up to 8 arenas per core, and memory freed in each
    /// stays resident: with libmicrohttpd's worker threads, the directory's peak RSS in the benchmark crept up to 63
    /// of its 64 MiB budget.
    public static func limitMallocArenas(_ arenas: Int) {
        _ = dfs_limit_malloc_arenas(Int32(arenas))
    }
}
