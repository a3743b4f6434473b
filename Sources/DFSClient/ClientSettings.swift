import DFSProtocol
import Foundation

/// Where the client finds the directory and keeps its state.
public struct ClientSettings: Sendable {
    public static let defaultDirectory = "http://127.0.0.1:5000"

    /// The directory server's URL, without a trailing slash.
    public var directory: String
    /// The client's state directory (`DFS_HOME`, default `~/.dfs`).
    public var home: String
    /// How long reads and writes wait for the path's lock (`DFS_LOCK_WAIT_MS`, default 60000); -1 = do not lock.
    public var lockWaitMs: Int64
    /// Bound of the disk cache (`DFS_CACHE_MAX_BYTES`, default 1 GiB); 0 disables it.
    public var cacheMaxBytes: Int64
    /// How long file attributes from the directory are trusted without asking again (`DFS_ATTR_CACHE_MS`,
    /// default 0 = revalidate on every open, the NFS close-to-open rule; larger values trade freshness for round trips).
    public var attrCacheMs: Int64
    /// PEM CA file to verify servers that speak HTTPS (`DFS_CA_FILE`); nil = the system's CAs.
    public var caFile: String?
    /// Locks a parent process holds and lends to this one (`DFS_LOCKS`, JSON, set by `dfs lock PATH -- command`).
    public var inheritedLocks: [LockInfo]

    /// Resolves settings: explicit values first, then `DFS_DIRECTORY` / `DFS_HOME`, then the defaults.
    public init(directory: String? = nil, home: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        var url = directory ?? environment["DFS_DIRECTORY"] ?? Self.defaultDirectory
        if !url.contains("://") { url = "http://" + url }
        while url.hasSuffix("/") { url.removeLast() }
        self.directory = url
        self.home = home ?? environment["DFS_HOME"] ?? (NSHomeDirectory() + "/.dfs")
        self.lockWaitMs = environment["DFS_LOCK_WAIT_MS"].flatMap { Int64($0) } ?? 60000
        self.caFile = environment["DFS_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        self.cacheMaxBytes = environment["DFS_CACHE_MAX_BYTES"].flatMap { Int64($0) } ?? (1 << 30)
        self.attrCacheMs = environment["DFS_ATTR_CACHE_MS"].flatMap { Int64($0) } ?? 0
        self.inheritedLocks =
            environment["DFS_LOCKS"].flatMap { try? WireJSON.decode([LockInfo].self, from: Data($0.utf8)) } ?? []
    }
}
