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

    public init(settings: ClientSettings = ClientSettings()) {
        self.settings = settings
        self.transport = Transport(directory: settings.directory)
        for lock in settings.inheritedLocks { heldLocks[Self.key(lock.path)] = lock }
    }

    // MARK: Identity

    /// This client's id, registering with the directory on first use and remembering it in `DFS_HOME`.
    public func clientId() throws -> Int64 {
        if let cachedClientId { return cachedClientId }
        if let inherited = settings.inheritedLocks.first {
            cachedClientId = inherited.clientId
            return inherited.clientId
        }
        let state = ClientState.load(home: settings.home)
        if let state, state.directory == settings.directory {
            cachedClientId = state.clientId
            return state.clientId
        }
        let answer = try transport.call(
            "POST", "/register_client", body: [String: String](), as: RegisterClientResponse.self)
        try ClientState(clientId: answer.clientId, directory: settings.directory).save(home: settings.home)
        cachedClientId = answer.clientId
        return answer.clientId
    }

    // MARK: Namespace

    /// The entry at `path`: a directory, or a file with its id, version, size, sha256 and replicas.
    public func stat(_ path: String) throws -> EntryInfo {
        try transport.call("GET", "/stat", query: ["path": path], as: EntryInfo.self)
    }

    /// The entries of a directory (or the entry itself for a file).
    public func list(_ path: String) throws -> [EntryInfo] {
        try transport.call("GET", "/ls", query: ["path": path], as: ListResponse.self).entries
    }

    /// Creates a directory; with `parents`, also its missing parents, and an existing directory is fine.
    @discardableResult
    public func mkdir(_ path: String, parents: Bool = false) throws -> EntryInfo {
        try transport.call("POST", "/mkdir", body: MkdirRequest(path: path, parents: parents), as: EntryInfo.self)
    }

    /// Removes a file, an empty directory, or with `recursive` a whole tree. Returns how many entries went.
    @discardableResult
    public func remove(_ path: String, recursive: Bool = false) throws -> Int64 {
        var query = ["path": path]
        if recursive { query["recursive"] = "true" }
        return try transport.call("DELETE", "/entries", query: query, as: RemoveResponse.self).removed
    }

    /// Renames a file or directory (into `to` when it is an existing directory). Atomic.
    @discardableResult
    public func move(_ from: String, to: String) throws -> EntryInfo {
        try transport.call("POST", "/mv", body: MoveRequest(from: from, to: to), as: EntryInfo.self)
    }

    /// The file servers the directory knows, with their state and load.
    public func fileServers() throws -> [FileServerInfo] {
        try transport.call("GET", "/fileservers", as: FileServersResponse.self).fileServers
    }

    // MARK: Writing

    /// Writes a whole file from a stream of chunks: upload to the chosen file server, then commit.
    ///
    /// - Parameters:
    ///   - length: the byte count when known (sent as Content-Length and used for placement), nil to stream chunked.
    ///   - baseVersion: when set, the commit is refused with `conflict` if the file changed since that version.
    ///   - read: returns up to n bytes; empty at the end.
    @discardableResult
    public func write(
        _ path: String, length: Int64?, baseVersion: Int64? = nil, read: (Int) throws -> Data
    ) throws -> EntryInfo {
        try withLock(path, .write) { lock in
            try upload(path, length: length, baseVersion: baseVersion, lockToken: lock?.token, read: read)
        }
    }

    /// One upload and commit, under the given lock token (if any).
    private func upload(
        _ path: String, length: Int64?, baseVersion: Int64?, lockToken: Int64?, read: (Int) throws -> Data
    ) throws -> EntryInfo {
        let ticket = try transport.call(
            "POST", "/writes",
            body: WriteRequest(path: path, clientId: try clientId(), sizeHint: length, lockToken: lockToken),
            as: WriteTicket.self)
        guard let target = ticket.targets.first else {
            throw DFSClientError(status: nil, code: "no_file_servers", message: "the directory offered no file server")
        }
        var hasher = SHA256()
        var size: Int64 = 0
        var url = "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)&ticket=\(target.ticket)"
        if let fence = ticket.lockToken { url += "&fence=\(fence)" }
        let response: HTTPResponse
        do {
            response = try withoutActuallyEscaping(read) { read in
                try transport.http.send(
                    method: "PUT", url: url, headers: [HTTPHeader("Content-Type", "application/octet-stream")],
                    body: .stream(length: length) { max in
                        let chunk = try read(max)
                        hasher.update(data: chunk)
                        size += Int64(chunk.count)
                        return chunk
                    })
            }
        } catch let error as CurlError {
            throw DFSClientError.unreachable("file server \(target.fileServerId) at \(target.url)", error.message)
        }
        try Transport.check(response)
        let stored = try WireJSON.decode(UploadResult.self, from: response.body)
        let sha256 = Data(hasher.finalize()).hexString
        guard stored.sha256 == sha256, stored.size == size else {
            throw DFSClientError(
                status: nil, code: "checksum_mismatch",
                message: "file server \(target.fileServerId) stored different bytes than were sent")
        }
        let commit = CommitRequest(
            path: ticket.path, fileId: ticket.fileId, version: ticket.version, size: size, sha256: sha256,
            baseVersion: baseVersion, receipts: [StoredReceipt(fileServerId: stored.fileServerId, receipt: stored.receipt)])
        return try transport.call("POST", "/commits", body: commit, as: EntryInfo.self)
    }

    /// Writes a whole file from memory.
    @discardableResult
    public func write(_ path: String, data: Data, baseVersion: Int64? = nil) throws -> EntryInfo {
        var offset = 0
        return try write(path, length: Int64(data.count), baseVersion: baseVersion) { max in
            let end = min(data.count, offset + max)
            defer { offset = end }
            return data.subdata(in: offset..<end)
        }
    }

    /// Uploads a local file, streaming it.
    @discardableResult
    public func put(localPath: String, to path: String) throws -> EntryInfo {
        guard let handle = FileHandle(forReadingAtPath: localPath) else {
            throw DFSClientError.io("cannot open \(localPath) for reading")
        }
        defer { try? handle.close() }
        let length = (try? FileManager.default.attributesOfItem(atPath: localPath)[.size] as? Int64) ?? nil
        return try write(path, length: length) { max in try handle.read(upToCount: max) ?? Data() }
    }

    // MARK: Reading

    /// Streams a file (or a byte range of it) into `sink`, verifying the whole file's sha256.
    ///
    /// Replicas are tried in turn while none has delivered a byte yet.
    @discardableResult
    public func read(_ path: String, range: ClosedRange<Int64>? = nil, into sink: (Data) throws -> Void) throws
        -> EntryInfo
    {
        try withLock(path, .read) { _ in try download(path, range: range, into: sink) }
    }

    private func download(_ path: String, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void) throws
        -> EntryInfo
    {
        let entry = try stat(path)
        guard !entry.isDirectory else {
            throw DFSClientError(status: nil, code: "is_a_directory", message: "\(entry.path) is a directory")
        }
        guard let fileId = entry.fileId, let version = entry.version, let replicas = entry.replicas,
            !replicas.isEmpty
        else {
            throw DFSClientError(status: nil, code: "unavailable", message: "no copy of \(entry.path) is reachable")
        }
        var lastError: Error?
        for replica in replicas {
            var delivered = false
            var hasher = SHA256()
            var headers: [HTTPHeader] = []
            if let range { headers.append(HTTPHeader("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
            do {
                let response = try withoutActuallyEscaping(sink) { sink in
                    try transport.http.send(
                        method: "GET", url: "\(replica.url)/files/\(fileId)?version=\(version)", headers: headers
                    ) { chunk in
                        delivered = true
                        hasher.update(data: chunk)
                        try sink(chunk)
                    }
                }
                try Transport.check(response)
                if range == nil, let expected = entry.sha256, Data(hasher.finalize()).hexString != expected {
                    throw DFSClientError(
                        status: nil, code: "checksum_mismatch",
                        message: "file server \(replica.fileServerId) sent bytes of \(entry.path) whose sha256 does not match")
                }
                return entry
            } catch let error as CurlError {
                lastError = DFSClientError.unreachable("file server \(replica.fileServerId) at \(replica.url)", error.message)
            } catch {
                lastError = error
            }
            if delivered { break }
        }
        throw lastError ?? DFSClientError(status: nil, code: "unavailable", message: "no copy of \(path) is readable")
    }

    /// Reads a whole (small) file into memory.
    public func read(_ path: String) throws -> Data {
        var data = Data()
        try read(path) { data.append($0) }
        return data
    }

    /// Downloads a file to a local path: into a temp file beside it, renamed into place once verified.
    @discardableResult
    public func get(_ path: String, toLocal localPath: String) throws -> EntryInfo {
        let temp = localPath + ".dfs-partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temp, contents: nil),
            let handle = FileHandle(forWritingAtPath: temp)
        else { throw DFSClientError.io("cannot create \(temp)") }
        do {
            let entry = try read(path) { try handle.write(contentsOf: $0) }
            try handle.synchronize()
            try handle.close()
            guard rename(temp, localPath) == 0 else { throw DFSClientError.io("cannot rename \(temp) to \(localPath)") }
            return entry
        } catch {
            try? handle.close()
            unlink(temp)
            throw error
        }
    }
}

/// The client's remembered identity in `DFS_HOME/client.json`.
struct ClientState: Codable {
    var clientId: Int64
    var directory: String

    static func load(home: String) -> ClientState? {
        guard let data = FileManager.default.contents(atPath: home + "/client.json") else { return nil }
        return try? WireJSON.decode(ClientState.self, from: data)
    }

    func save(home: String) throws {
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try WireJSON.encode(self).write(to: URL(fileURLWithPath: home + "/client.json"), options: .atomic)
    }
}

extension Data {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
