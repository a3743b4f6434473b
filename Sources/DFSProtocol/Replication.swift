/// Wire types of replication between file servers: pipelined uploads, copies on the directory's order, inventory
/// and the scrubber.

/// The header of a pipelined `PUT /files/{id}`: where to pass the bytes on, as comma-separated
/// `<base URL> <ticket>` pairs, first hop first. Every hop stores the same file id, version and fence.
public enum PipelineHeader {
    public static let name = "X-DFS-Forward"

    /// `url ticket, url ticket, ...` for these hops.
    public static func value(_ hops: [(url: String, ticket: String)]) -> String {
        hops.map { "\($0.url) \($0.ticket)" }.joined(separator: ", ")
    }
}

/// A file server's answer to a (possibly pipelined) upload: an `UploadResult` whose `replicas` lists the results of
/// every server further down the pipeline, in pipeline order.
public typealias PipelineResult = UploadResult

/// `POST /replicate` body (cluster token): fetch a blob from another file server and store it here.
public struct ReplicateRequest: Codable, Sendable {
    public var fileId: Int64
    public var version: Int64
    /// The checksum the copy must have; a copy that does not match is refused (422) and not stored.
    public var sha256: String
    public var size: Int64
    /// Base URL of a file server holding a good copy, e.g. `http://127.0.0.1:5001`.
    public var sourceUrl: String

    public init(fileId: Int64, version: Int64, sha256: String, size: Int64, sourceUrl: String) {
        self.fileId = fileId
        self.version = version
        self.sha256 = sha256
        self.size = size
        self.sourceUrl = sourceUrl
    }
}

/// One stored blob, as `GET /inventory` lists it.
public struct InventoryBlob: Codable, Sendable, Equatable {
    public var fileId: Int64
    public var version: Int64
    public var sha256: String
    public var size: Int64

    public init(fileId: Int64, version: Int64, sha256: String, size: Int64) {
        self.fileId = fileId
        self.version = version
        self.sha256 = sha256
        self.size = size
    }
}

/// `GET /inventory` answer (cluster token): every blob a file server stores, ordered by file id and version.
public struct InventoryResponse: Codable, Sendable {
    /// Nil while the server is not registered yet.
    public var fileServerId: Int64?
    public var blobs: [InventoryBlob]

    public init(fileServerId: Int64?, blobs: [InventoryBlob]) {
        self.fileServerId = fileServerId
        self.blobs = blobs
    }
}

/// `POST /reports` body (cluster token), sent to the directory: a copy of a blob is bad and needs repair.
public struct ProblemReport: Codable, Sendable, Equatable {
    /// The blob's bytes no longer match its checksum (found by the scrubber; the copy was quarantined).
    public static let corrupt = "corrupt"

    public var fileId: Int64
    public var version: Int64
    public var fileServerId: Int64
    /// What is wrong: `corrupt`.
    public var problem: String

    public init(fileId: Int64, version: Int64, fileServerId: Int64, problem: String) {
        self.fileId = fileId
        self.version = version
        self.fileServerId = fileServerId
        self.problem = problem
    }
}

/// `GET /scrub` answer: what a file server's scrubber has done since the server started.
public struct ScrubStatus: Codable, Sendable {
    /// Completed passes (a pass checks at most a bounded amount; the next one resumes where it stopped).
    public var passes: Int64
    public var blobsChecked: Int64
    public var corruptFound: Int64
    /// Milliseconds since the last pass ended; nil before the first.
    public var lastPassMsAgo: Int64?

    public init(passes: Int64, blobsChecked: Int64, corruptFound: Int64, lastPassMsAgo: Int64?) {
        self.passes = passes
        self.blobsChecked = blobsChecked
        self.corruptFound = corruptFound
        self.lastPassMsAgo = lastPassMsAgo
    }
}

/// `POST /verify` body (directory → file server): re-read one blob now and say whether it is intact.
public struct VerifyRequest: Codable, Sendable, Equatable {
    public var fileId: Int64
    public var version: Int64
    public init(fileId: Int64, version: Int64) {
        self.fileId = fileId
        self.version = version
    }
}

/// `POST /verify` answer: `ok`, `missing`, or `corrupt` (then the blob was quarantined).
public struct VerifyResult: Codable, Sendable, Equatable {
    public var state: String
    public init(state: String) { self.state = state }
}
