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

/// Anti-entropy for inventories (as Dynamo and Cassandra compare replicas): blobs fall into buckets by version, and a
/// bucket's digest is the wrapping sum of one 64-bit hash per blob. A file server and the directory each compute the
/// digests of what they hold in one pass, and only buckets whose digests differ are listed and compared, so the
/// comparison needs memory for one bucket, not for every copy a server holds.
public enum InventoryDigest {
    /// The number of buckets the directory asks for.
    public static let buckets = 256
    /// The largest number of buckets a file server computes.
    public static let maxBuckets = 65536

    /// The bucket of a blob, by its version (versions are unique and dense, so buckets fill evenly).
    public static func bucket(version: Int64, of buckets: Int) -> Int {
        Int(UInt64(bitPattern: version) % UInt64(buckets))
    }

    /// FNV-1a (64-bit) of the text `<file id>.<version>.<sha256>`, fed byte by byte without building it (a file
    /// server hashes its whole index under its lock).
    public static func hash(fileId: Int64, version: Int64, sha256: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        func decimal(_ number: Int64) {
            if number < 0 { mix(UInt8(ascii: "-")) }
            let magnitude = number.magnitude
            var scale: UInt64 = 1
            while scale <= magnitude / 10 { scale *= 10 }
            while scale > 0 {
                mix(UInt8(ascii: "0") + UInt8(magnitude / scale % 10))
                scale /= 10
            }
        }
        decimal(fileId)
        mix(UInt8(ascii: "."))
        decimal(version)
        mix(UInt8(ascii: "."))
        for byte in sha256.utf8 { mix(byte) }
        return value
    }

    /// Adds a blob to the digests of `buckets.count` buckets.
    public static func add(fileId: Int64, version: Int64, sha256: String, to digests: inout [UInt64]) {
        digests[bucket(version: version, of: digests.count)] &+= hash(fileId: fileId, version: version, sha256: sha256)
    }

    /// A digest as it travels: 16 lowercase hex digits.
    public static func hex(_ digest: UInt64) -> String {
        let digits = String(digest, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// `GET /inventory/digests?buckets=N` answer (cluster token): one digest per bucket (see `InventoryDigest`).
public struct InventoryDigestsResponse: Codable, Sendable {
    /// Nil while the server is not registered yet.
    public var fileServerId: Int64?
    public var buckets: Int
    /// `buckets` digests of 16 hex digits, bucket 0 first.
    public var digests: [String]

    public init(fileServerId: Int64?, buckets: Int, digests: [String]) {
        self.fileServerId = fileServerId
        self.buckets = buckets
        self.digests = digests
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
