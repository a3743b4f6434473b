@_exported import struct ClientCache.CacheStats
import ClientCache
import Crypto
import Curl
import DFSProtocol
import Foundation

/// The dfs client library (the seed system's "ClientApi").
///
/// Blocking calls, one connection kept alive per client: create one `DFSClient` per thread.
///
/// ```swift
/// let dfs = DFSClient(settings: ClientSettings())         // DFS_DIRECTORY, DFS_HOME or the defaults
/// try dfs.mkdir("/docs", parents: true)
/// try dfs.write("/docs/hello.txt", data: Data("hello\n".utf8))
/// let text = String(decoding: try dfs.read("/docs/hello.txt"), as: UTF8.self)
/// let file = try dfs.open("/docs/log.txt", mode: .write)  // open / write / close
/// try file.write(Data("line\n".utf8))
/// try file.close()
/// ```
public final class DFSClient {
    public let settings: ClientSettings
    let transport: Transport
    private var cachedClientId: Int64?
    /// Leases this client holds (or inherited), by normalized path.
    var heldLocks: [String: LockInfo] = [:]
    /// The servers' loads by which this client places new small files (`GET /placement`, plus what it placed
    /// since), and until when (monotonic nanoseconds) they are used.
    var placement: (servers: [PlacementServer], replicas: Int, until: UInt64)?
    /// Set once the directory answered that it has no `GET /content` (a directory from before it): reads then
    /// look up with `GET /stat`.
    var directoryLacksContent = false
    /// The disk cache in `DFS_HOME/cache`, opened on first use; nil when disabled or unusable.
    lazy var cache: ClientCache? = {
        guard settings.cacheMaxBytes > 0 else { return nil }
        return try? ClientCache(directory: settings.home + "/cache", maxBytes: settings.cacheMaxBytes)
    }()

    public init(settings: ClientSettings = ClientSettings()) {
        self.settings = settings
        self.transport = Transport(directory: settings.directory, caFile: settings.caFile)
        for lock in settings.inheritedLocks { heldLocks[Self.key(lock.path)] = lock }
    }

    // MARK: Identity

    /// This client's id, registering with the directory on first use and remembering it (and its bearer token)
    /// in `DFS_HOME/client.json`, readable by the owner only.
    public func clientId() throws -> Int64 {
        if let cachedClientId { return cachedClientId }
        if let state = ClientState.load(home: settings.home), state.directory == settings.directory {
            cachedClientId = state.clientId
            transport.token = state.token
            return state.clientId
        }
        let answer = try transport.call("POST", "/register_client", as: RegisterClientResponse.self)
        try ClientState(clientId: answer.clientId, directory: settings.directory, token: answer.token)
            .save(home: settings.home)
        cachedClientId = answer.clientId
        transport.token = answer.token
        return answer.clientId
    }

    /// Makes sure the bearer token is loaded before a state-changing call.
    func authenticate() throws {
        _ = try clientId()
    }

    // MARK: Namespace

    /// The entry at `path`: a directory, or a file with its id, version, size, sha256 and replicas.
    public func stat(_ path: String) throws -> EntryInfo {
        try transport.call("GET", "/stat", query: ["path": path], as: EntryInfo.self)
    }

    /// Creates a directory; with `parents`, also its missing parents, and an existing directory is fine.
    @discardableResult
    public func mkdir(_ path: String, parents: Bool = false) throws -> EntryInfo {
        try authenticate()
        return try transport.call("POST", "/mkdir", body: MkdirRequest(path: path, parents: parents), as: EntryInfo.self)
    }

    /// Removes a file, an empty directory, or with `recursive` a whole tree. Returns how many entries went.
    @discardableResult
    public func remove(_ path: String, recursive: Bool = false) throws -> Int64 {
        try authenticate()
        var query = ["path": path]
        if recursive { query["recursive"] = "true" }
        return try transport.call("DELETE", "/entries", query: query, as: RemoveResponse.self).removed
    }

    /// Renames a file or directory (into `to` when it is an existing directory). Atomic.
    @discardableResult
    public func move(_ from: String, to: String) throws -> EntryInfo {
        try authenticate()
        return try transport.call("POST", "/mv", body: MoveRequest(from: from, to: to), as: EntryInfo.self)
    }

    /// How far the cluster is from `replicas` good copies of every file, and the copies being made.
    public func replication() throws -> ReplicationStatus {
        try transport.call("GET", "/replication", as: ReplicationStatus.self)
    }

    /// The file servers the directory knows, with their state and load.
    public func fileServers() throws -> [FileServerInfo] {
        try transport.call("GET", "/fileservers", as: FileServersResponse.self).fileServers
    }
}

/// The client's remembered identity in `DFS_HOME/client.json`.
struct ClientState: Codable {
    var clientId: Int64
    var directory: String
    var token: String

    static func load(home: String) -> ClientState? {
        guard let data = FileManager.default.contents(atPath: home + "/client.json") else { return nil }
        return try? WireJSON.decode(ClientState.self, from: data)
    }

    /// Saves atomically with mode 0600: the token lets anyone act as this client.
    func save(home: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temp = home + "/client.json.\(ProcessInfo.processInfo.processIdentifier).tmp"
        guard fm.createFile(atPath: temp, contents: try WireJSON.encode(self), attributes: [.posixPermissions: 0o600])
        else { throw DFSClientError.io("cannot write \(temp)") }
        guard rename(temp, home + "/client.json") == 0 else {
            unlink(temp)
            throw DFSClientError.io("cannot save \(home)/client.json")
        }
    }
}
