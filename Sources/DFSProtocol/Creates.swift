import Foundation

// Creating a file in one client round trip: the client sends the bytes, with the path, to a file server
// (`PUT /creates`); that server stores them under an id from a block it leased from the directory, and commits
// them to the directory together with the other creates finishing at the same time (`POST /commits/batch`). The
// directory applies the batch in one transaction and one flush.

/// A live file server and its load, as the directory's placement sees it.
public struct PlacementServer: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case url, files
        case fileServerId = "file_server_id"
        case storedBytes = "stored_bytes"
        case inflightBytes = "inflight_bytes"
    }

    public var fileServerId: Int64
    public var url: String
    public var storedBytes: Int64
    public var inflightBytes: Int64
    public var files: Int64
    public init(fileServerId: Int64, url: String, storedBytes: Int64, inflightBytes: Int64, files: Int64) {
        self.fileServerId = fileServerId
        self.url = url
        self.storedBytes = storedBytes
        self.inflightBytes = inflightBytes
        self.files = files
    }
}

/// `GET /placement` answer: the live file servers with their loads and the number of copies a file gets, so that
/// a client places its new small files itself, by the directory's rule (least loaded first, counting what it
/// placed since), for `ttl_ms`; then it asks again.
public struct PlacementResponse: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case servers, replicas
        case ttlMs = "ttl_ms"
    }

    public var servers: [PlacementServer]
    public var replicas: Int64
    public var ttlMs: Int64
    public init(servers: [PlacementServer], replicas: Int64, ttlMs: Int64) {
        self.servers = servers
        self.replicas = replicas
        self.ttlMs = ttlMs
    }
}

/// `POST /ids` body (file servers, cluster token): reserve a block of ids for blobs created through this server.
public struct IdBlockRequest: Codable, Sendable, WireKeys {
    public var count: Int64
    public init(count: Int64) { self.count = count }
}

/// `POST /ids` answer: ids `first ..< first + count` are this caller's alone, for good. `inline_max_bytes` is the
/// directory's `inline_max_bytes`: a create up to that size carries its bytes in its batch commit (0: none does).
public struct IdBlockResponse: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case first, count
        case inlineMaxBytes = "inline_max_bytes"
    }

    public var first: Int64
    public var count: Int64
    public var inlineMaxBytes: Int64?
    public init(first: Int64, count: Int64, inlineMaxBytes: Int64? = nil) {
        self.first = first
        self.count = count
        self.inlineMaxBytes = inlineMaxBytes
    }
}

/// One create a file server commits for a client: the client (proved by its token at the file server) and the
/// commit of the blob stored (`file_id` = `version` = an id of the server's block). A file of at most the
/// directory's `inline_max_bytes` also brings its bytes (`data_base64`), which the directory keeps beside the entry
/// and serves itself (`GET /content`), as Lustre's data-on-MDT does: a small read is then one round trip.
public struct BatchCommitItem: Codable, Sendable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case commit
        case clientId = "client_id"
        case data = "data_base64"
        case blobDurable = "blob_durable"
    }

    public var clientId: Int64
    public var commit: CommitRequest
    public var data: Data?
    /// False when the file server answers the client before its own flush of the blob (absent: true). Such a create
    /// must bring its bytes (`data`), which the directory keeps: they are what makes it durable. Bytes beyond the
    /// directory's `inline_max_bytes` are refused with 412, and the file server commits once its blob is durable.
    public var blobDurable: Bool?
    /// The most bytes a create answered before its blob's flush may bring (`blob_durable: false`); a file server
    /// checks every blob up to this size against its sha256 before serving it.
    public static let unflushedMaxBytes = 1 << 16
    public init(clientId: Int64, commit: CommitRequest, data: Data? = nil, blobDurable: Bool? = nil) {
        self.clientId = clientId
        self.commit = commit
        self.data = data
        self.blobDurable = blobDurable
    }
}

/// `POST /commits/batch` body (file servers, cluster token).
public struct BatchCommitRequest: Codable, Sendable, WireKeys {
    public var commits: [BatchCommitItem]
    public init(commits: [BatchCommitItem]) { self.commits = commits }

    /// The most bytes (`data_base64`, before encoding) one batch carries: with its metadata it stays well under
    /// the directory's 1 MiB limit on a request body.
    public static let maxDataBytes = 512 << 10

    /// `items` in order, cut into batches that carry at most `maxDataBytes` of bytes each (an item that alone
    /// carries more goes alone).
    public static func batches(_ items: [BatchCommitItem], maxDataBytes: Int = maxDataBytes) -> [[BatchCommitItem]] {
        var batches: [[BatchCommitItem]] = []
        var current: [BatchCommitItem] = []
        var bytes = 0
        for item in items {
            let size = item.data?.count ?? 0
            if !current.isEmpty, bytes + size > maxDataBytes {
                batches.append(current)
                current = []
                bytes = 0
            }
            current.append(item)
            bytes += size
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }
}

/// The outcome of one create of a batch: the new entry, or the status and error body a client would have got.
public struct BatchCommitOutcome: Codable, Sendable, WireKeys {
    public var status: Int
    public var entry: EntryInfo?
    public var error: ErrorBody.Detail?
    public init(status: Int, entry: EntryInfo? = nil, error: ErrorBody.Detail? = nil) {
        self.status = status
        self.entry = entry
        self.error = error
    }
}

/// `POST /commits/batch` answer: one outcome per item, in order.
public struct BatchCommitResponse: Codable, Sendable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case outcomes
        case inlineMaxBytes = "inline_max_bytes"
    }

    public var outcomes: [BatchCommitOutcome]
    /// The directory's `inline_max_bytes` now: the file server sends the bytes of creates up to it from then on.
    public var inlineMaxBytes: Int64?
    public init(outcomes: [BatchCommitOutcome], inlineMaxBytes: Int64? = nil) {
        self.outcomes = outcomes
        self.inlineMaxBytes = inlineMaxBytes
    }
}
