import Foundation

/// `POST /writes` body: "I want to write this path".
public struct WriteRequest: Codable, Sendable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case path, lock
        case clientId = "client_id"
        case sizeHint = "size_hint"
        case lockToken = "lock_token"
    }

    public var path: String
    public var clientId: Int64?
    /// Expected size, counted as in-flight load on the chosen file server until commit.
    public var sizeHint: Int64?
    /// The fencing token of the write lock the client holds on the path, if any.
    public var lockToken: Int64?
    /// Take the path's write lock for this write if it is free (one round trip instead of two); when it is held,
    /// the answer is 409 `lock_busy` and nothing is begun. Ignored when `lock_token` is given.
    public var lock: Bool?
    public init(
        path: String, clientId: Int64? = nil, sizeHint: Int64? = nil, lockToken: Int64? = nil, lock: Bool? = nil
    ) {
        self.lock = lock
        self.lockToken = lockToken
        self.path = path
        self.clientId = clientId
        self.sizeHint = sizeHint
    }
}

/// Where to upload one copy, with the signed ticket the file server checks.
public struct UploadTarget: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case url, ticket
        case fileServerId = "file_server_id"
    }

    public var fileServerId: Int64
    public var url: String
    public var ticket: String
    public init(fileServerId: Int64, url: String, ticket: String) {
        self.fileServerId = fileServerId
        self.url = url
        self.ticket = ticket
    }
}

/// `POST /writes` answer: the file id and new version to upload under, and where.
public struct WriteTicket: Codable, Sendable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case path, version, targets, lock
        case fileId = "file_id"
        case baseVersion = "base_version"
        case lockToken = "lock_token"
        case inlineMaxBytes = "inline_max_bytes"
    }

    public var path: String
    public var fileId: Int64
    public var version: Int64
    /// The version the file had when the write began (nil for a new file).
    public var baseVersion: Int64?
    public var targets: [UploadTarget]
    /// The fencing token the upload must carry (`fence=` on the file server URL), when written under a lock.
    public var lockToken: Int64?
    /// The lock taken for this write (`lock: true`); release it with the commit (`release_lock`) or DELETE.
    public var lock: LockInfo?
    /// The directory's `inline_max_bytes`: a file up to this size may bring its bytes with its commit
    /// (`data_base64`), for the directory to keep and serve (`GET /content`).
    public var inlineMaxBytes: Int64?
    public init(
        path: String, fileId: Int64, version: Int64, baseVersion: Int64?, targets: [UploadTarget],
        lockToken: Int64? = nil, lock: LockInfo? = nil, inlineMaxBytes: Int64? = nil
    ) {
        self.inlineMaxBytes = inlineMaxBytes
        self.lock = lock
        self.lockToken = lockToken
        self.path = path
        self.fileId = fileId
        self.version = version
        self.baseVersion = baseVersion
        self.targets = targets
    }
}

/// `POST /commits` body: make an uploaded version the file's current one.
public struct CommitRequest: Codable, Sendable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case path, version, size, sha256, receipts
        case fileId = "file_id"
        case baseVersion = "base_version"
        case releaseLock = "release_lock"
        case data = "data_base64"
    }

    public var path: String
    public var fileId: Int64
    public var version: Int64
    public var size: Int64
    public var sha256: String
    /// When set, the commit is refused (409 conflict) unless the file is still at this version.
    public var baseVersion: Int64?
    /// The file servers' signed receipts for the uploaded copies.
    public var receipts: [StoredReceipt]
    /// After a successful commit, release the write lock the write was begun under (saves a round trip).
    public var releaseLock: Bool?
    /// The file's bytes, when it is no bigger than the ticket's `inline_max_bytes`: the directory keeps them too.
    public var data: Data?
    public init(
        path: String, fileId: Int64, version: Int64, size: Int64, sha256: String, baseVersion: Int64? = nil,
        receipts: [StoredReceipt], releaseLock: Bool? = nil, data: Data? = nil
    ) {
        self.data = data
        self.releaseLock = releaseLock
        self.receipts = receipts
        self.path = path
        self.fileId = fileId
        self.version = version
        self.size = size
        self.sha256 = sha256
        self.baseVersion = baseVersion
    }
}

/// A file server's proof that it stored a blob with this size and checksum.
public struct StoredReceipt: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case receipt
        case fileServerId = "file_server_id"
    }

    public var fileServerId: Int64
    public var receipt: String
    public init(fileServerId: Int64, receipt: String) {
        self.fileServerId = fileServerId
        self.receipt = receipt
    }
}

/// A file server's answer to an upload: what it stored, as it measured it, and its signed receipt; for a pipelined
/// upload, also the results of the servers further down (`replicas`, flattened, in pipeline order).
public struct UploadResult: Codable, Sendable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case version, size, sha256, receipt, replicas
        case fileServerId = "file_server_id"
        case fileId = "file_id"
    }

    public var fileServerId: Int64
    public var fileId: Int64
    public var version: Int64
    public var size: Int64
    public var sha256: String
    public var receipt: String
    /// The downstream servers' results; nil when the upload was not forwarded.
    public var replicas: [UploadResult]?

    /// This server's own part, without the replicas.
    public var own: UploadResult {
        var own = self
        own.replicas = nil
        return own
    }

    /// Every copy stored: this server's first, then the replicas.
    public var all: [UploadResult] { [own] + (replicas ?? []) }

    public init(
        fileServerId: Int64, fileId: Int64, version: Int64, size: Int64, sha256: String, receipt: String,
        replicas: [UploadResult]? = nil
    ) {
        self.replicas = replicas
        self.fileServerId = fileServerId
        self.receipt = receipt
        self.fileId = fileId
        self.version = version
        self.size = size
        self.sha256 = sha256
    }
}
