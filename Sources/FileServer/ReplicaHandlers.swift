import Curl
import DFSProtocol
import Foundation
import MicroHTTPD
import ServerKit

/// Handlers the directory uses to keep replicas: copy a blob from another file server, list what is stored.
extension FileService {
    /// Refuses callers that are not servers of this cluster (401).
    func requireClusterToken(_ request: Request, _ what: String) throws {
        guard secret.matches(request.header(ClusterSecret.header)) else {
            throw DFSError.unauthorized("\(what) is for the cluster's servers: '\(ClusterSecret.header)' is missing or wrong")
        }
    }

    /// `GET /inventory` (cluster token): every blob stored here, or with `buckets=N&bucket=K` those of one bucket
    /// (see `InventoryDigest`).
    func inventory(_ request: Request) throws -> Response {
        try requireClusterToken(request, "the inventory")
        var wanted: (bucket: Int, of: Int)?
        switch (request.query["buckets"], request.query["bucket"]) {
        case (nil, nil):
            wanted = nil
        case (let buckets?, let bucket?):
            let count = try Self.bucketCount(buckets)
            guard let index = Int(bucket), (0..<count).contains(index) else {
                throw DFSError.badRequest("bucket must be an integer from 0 to buckets - 1")
            }
            wanted = (index, count)
        default:
            throw DFSError.badRequest("buckets and bucket go together")
        }
        let blobs = store.inventory(bucket: wanted.map { (index: $0.bucket, of: $0.of) }).map { name, info in
            InventoryBlob(fileId: name.fileId, version: name.version, sha256: info.sha256, size: info.size)
        }
        return .json(InventoryResponse(fileServerId: currentIdentity?.fileServerId, blobs: blobs))
    }

    /// `GET /inventory/digests?buckets=N` (cluster token): the digest of every bucket of what is stored here, in one
    /// pass over the index.
    func inventoryDigests(_ request: Request) throws -> Response {
        try requireClusterToken(request, "the inventory")
        let count = try Self.bucketCount(request.query["buckets"] ?? "")
        var digests = [UInt64](repeating: 0, count: count)
        store.forEachBlob { name, info in
            InventoryDigest.add(fileId: name.fileId, version: name.version, sha256: info.sha256, to: &digests)
        }
        return .json(
            InventoryDigestsResponse(
                fileServerId: currentIdentity?.fileServerId, buckets: count, digests: digests.map(InventoryDigest.hex)))
    }

    private static func bucketCount(_ text: String) throws -> Int {
        guard let count = Int(text), (1...InventoryDigest.maxBuckets).contains(count) else {
            throw DFSError.badRequest("buckets must be an integer from 1 to \(InventoryDigest.maxBuckets)")
        }
        return count
    }

    /// `POST /replicate` (cluster token): fetch a blob from `source_url`, streaming it crash-safely into the store,
    /// and keep it only when its size and sha256 are the expected ones. 201 with a receipt; 200 when this exact blob
    /// was already here.
    func replicate(_ request: Request, _ order: ReplicateRequest) throws -> Response {
        guard order.fileId > 0, order.version > 0 else {
            throw DFSError.badRequest("file_id and version must be positive integers")
        }
        let sha256 = order.sha256.lowercased()
        guard sha256.count == 64, Data(hex: sha256) != nil else {
            throw DFSError.badRequest("sha256 must be 64 hex digits")
        }
        guard order.size >= 0 else { throw DFSError.badRequest("size must not be negative") }
        var source = order.sourceUrl
        while source.hasSuffix("/") { source.removeLast() }
        guard ForwardTarget.validURL(source) != nil else {
            throw DFSError.badRequest("source_url must be a URL like http://127.0.0.1:5001, got '\(order.sourceUrl)'")
        }
        let (serverId, signer) = try signer()
        let name = BlobName(fileId: order.fileId, version: order.version)
        if let stored = store.info(name) {
            guard stored.sha256 == sha256 else {
                throw DFSError.exists("blob \(name) is already stored here with another sha256 (\(stored.sha256))")
            }
            return .json(uploadResult(name, size: stored.size, sha256: sha256, serverId: serverId, signer: signer))
        }
        guard order.size <= maxFileBytes else {
            throw DFSError.tooLarge("files may be at most \(maxFileBytes) bytes (max_file_bytes)")
        }
        guard order.size <= capacityBytes - store.usage.bytes else {
            throw DFSError.tooLarge("the blob (\(order.size) bytes) exceeds this server's free capacity")
        }
        let upload = try store.beginUpload(name)
        let measured: String
        do {
            try fetch(name, from: source, into: upload, expectedSize: order.size)
            measured = try upload.finish()
        } catch {
            upload.abort()
            throw error
        }
        guard upload.size == order.size, measured == sha256 else {
            upload.abort()
            throw DFSError.checksumMismatch(
                "\(source) sent \(upload.size) bytes with sha256 \(measured); expected \(order.size) bytes with sha256 \(sha256)"
            )
        }
        do {
            try store.install(upload, sha256: sha256)
        } catch let error as DFSError where error.code == .exists {
            // Copied here by a concurrent order meanwhile: fine when it is the same blob.
            guard store.info(name)?.sha256 == sha256 else { throw error }
            return .json(uploadResult(name, size: order.size, sha256: sha256, serverId: serverId, signer: signer))
        }
        return .json(
            uploadResult(name, size: order.size, sha256: sha256, serverId: serverId, signer: signer), status: 201)
    }

    /// Streams a blob from another file server into `upload` (constant memory); 502 when the source cannot give it.
    private func fetch(_ name: BlobName, from source: String, into upload: Upload, expectedSize: Int64) throws {
        // Whole-request bound: generous for a slow link (at least ~1 MB/s), but a stalled source cannot hold a
        // request thread forever.
        let client = HTTPClient(connectTimeout: 5, timeout: 60 + Double(expectedSize) / 1_000_000, caFile: caFile)
        let url = "\(source)/files/\(name.fileId)?version=\(name.version)"
        let response: HTTPResponse
        do {
            response = try client.send(method: "GET", url: url, bodyLimit: 64 << 10) { chunk in
                guard upload.size + Int64(chunk.count) <= expectedSize else {
                    throw DFSError.checksumMismatch("\(source) sent more than the expected \(expectedSize) bytes")
                }
                do {
                    try upload.append(chunk)
                } catch {
                    throw DFSError(507, .internal, "cannot write the copy to disk")
                }
                self.traffic.received(Int64(chunk.count))
            }
        } catch let error as DFSError {
            throw error
        } catch {
            throw DFSError(502, .unavailable, "cannot copy blob \(name) from \(source): \(error)")
        }
        guard response.status == 200 else {
            throw DFSError(502, .unavailable, "cannot copy blob \(name) from \(source): it answered \(response.status)")
        }
    }
}

extension FileService {
    /// `POST /verify`: re-reads one blob at the directory's request (a client reported it); a corrupt blob is
    /// quarantined, as the scrubber would.
    func verify(_ request: VerifyRequest) -> VerifyResult {
        let name = BlobName(fileId: request.fileId, version: request.version)
        switch store.verify(name) {
        case nil:
            return VerifyResult(state: "missing")
        case true?:
            return VerifyResult(state: "ok")
        case false?:
            store.quarantine(name)
            return VerifyResult(state: "corrupt")
        }
    }
}
