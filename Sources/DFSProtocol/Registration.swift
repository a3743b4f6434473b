/// `POST /register_client` answer: the id, and the bearer token that proves it on state-changing requests.
public struct RegisterClientResponse: Codable, Sendable {
    public var clientId: Int64
    public var token: String
    public init(clientId: Int64, token: String) {
        self.clientId = clientId
        self.token = token
    }
}

/// `POST /register_fileserver` body. A restarted file server sends the id it was given before.
public struct RegisterFileServerRequest: Codable, Sendable {
    public var url: String
    public var capacityBytes: Int64
    public var fileServerId: Int64?
    public init(url: String, capacityBytes: Int64, fileServerId: Int64? = nil) {
        self.url = url
        self.capacityBytes = capacityBytes
        self.fileServerId = fileServerId
    }
}

/// `POST /register_fileserver` answer.
public struct RegisterFileServerResponse: Codable, Sendable {
    public var fileServerId: Int64
    public var heartbeatIntervalMs: Int
    public init(fileServerId: Int64, heartbeatIntervalMs: Int) {
        self.fileServerId = fileServerId
        self.heartbeatIntervalMs = heartbeatIntervalMs
    }
}

/// `POST /heartbeat` body: a file server's load as it sees it.
public struct HeartbeatRequest: Codable, Sendable {
    public var fileServerId: Int64
    public var usedBytes: Int64
    public var fileCount: Int64
    public init(fileServerId: Int64, usedBytes: Int64, fileCount: Int64) {
        self.fileServerId = fileServerId
        self.usedBytes = usedBytes
        self.fileCount = fileCount
    }
}

/// A plain acknowledgement.
public struct OKResponse: Codable, Sendable {
    public var ok: Bool
    public init() { ok = true }
}

/// One file server as the directory sees it (`GET /fileservers`).
public struct FileServerInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var url: String
    /// `live`, `stale` (no heartbeat for a while: gets no new files) or `dead`.
    public var state: String
    public var files: Int64
    public var bytes: Int64
    public var capacityBytes: Int64
    public var lastHeartbeatMsAgo: Int64?
    public init(
        id: Int64, url: String, state: String, files: Int64, bytes: Int64, capacityBytes: Int64,
        lastHeartbeatMsAgo: Int64?
    ) {
        self.id = id
        self.url = url
        self.state = state
        self.files = files
        self.bytes = bytes
        self.capacityBytes = capacityBytes
        self.lastHeartbeatMsAgo = lastHeartbeatMsAgo
    }
}

/// `GET /fileservers` answer.
public struct FileServersResponse: Codable, Sendable {
    public var fileServers: [FileServerInfo]
    public init(fileServers: [FileServerInfo]) { self.fileServers = fileServers }
}

/// `GET /stats` answer of a file server: what it stores and what it moved.
public struct FileServerStats: Codable, Sendable {
    public var fileServerId: Int64?
    public var files: Int64
    public var bytes: Int64
    public var bytesServed: Int64
    public var bytesReceived: Int64
    /// Flushes made for created blobs answered before their flush (`inline_flush_ms`) since start.
    public var lateFlushes: Int64?
    public init(
        fileServerId: Int64?, files: Int64, bytes: Int64, bytesServed: Int64, bytesReceived: Int64,
        lateFlushes: Int64? = nil
    ) {
        self.fileServerId = fileServerId
        self.files = files
        self.bytes = bytes
        self.bytesServed = bytesServed
        self.bytesReceived = bytesReceived
        self.lateFlushes = lateFlushes
    }
}
