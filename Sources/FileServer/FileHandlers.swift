import DFSProtocol
import Foundation
import Glibc
import Logging
import MicroHTTPD
import ServerKit
import Synchronization

/// Counters the file server exposes at `GET /stats`.
final class Traffic: Sendable {
    private let counters = Locked<(served: Int64, received: Int64)>((0, 0))
    func served(_ bytes: Int64) { counters.withLock { $0.served += bytes } }
    func received(_ bytes: Int64) { counters.withLock { $0.received += bytes } }
    var totals: (served: Int64, received: Int64) { counters.withLock { $0 } }
}

/// The highest lock token accepted per file: writes with an older token are refused (fencing).
final class Fences: Sendable {
    private let newestByFile = Locked<[Int64: Int64]>([:])

    func newest(_ fileId: Int64) -> Int64? { newestByFile.withLock { $0[fileId] } }

    /// Records `token` for the file unless a newer one was accepted; false when `token` is stale.
    func accept(_ token: Int64, for fileId: Int64) -> Bool {
        newestByFile.withLock { map in
            if let newest = map[fileId], token < newest { return false }
            map[fileId] = token
            return true
        }
    }
}

/// The state the file server's handlers share.
final class FileService: Sendable {
    let store: FileStore
    let traffic = Traffic()
    let fences = Fences()
    let capacityBytes: Int64
    private let identity: Locked<Identity?>

    let secret: ClusterSecret

    /// The largest blob accepted.
    let maxFileBytes: Int64

    /// CA file for `https://` peers (pipelined uploads, replication sources); nil = the system's.
    let caFile: String?
    /// Bytes of a pipelined upload buffered for the next server at most (back-pressure beyond).
    let forwardBufferBytes = 4 << 20
    /// Seconds the next server of a pipeline may take no data before the upload fails.
    let forwardStallSeconds: Double
    /// Seconds the next server of a pipeline may take to answer once the whole body was sent.
    let forwardResponseSeconds: Double

    let scrubber: ScrubCounters = ScrubCounters()
    let logger: Logger
    /// Ids and batched commits for `PUT /creates`.
    let creates: Creates

    init(
        store: FileStore, capacityBytes: Int64, identity: Identity?, maxFileBytes: Int64, secret: ClusterSecret,
        directory: String, caFile: String? = nil, inlineFlushMs: Int = 20, connectionTimeoutSeconds: Int = 60,
        logger: Logger = Logger(label: "dfs.fileserver")
    ) {
        creates = Creates(
            directory: directory, secret: secret, caFile: caFile, store: store, inlineFlushMs: inlineFlushMs,
            logger: logger)
        self.logger = logger
        self.store = store
        self.capacityBytes = capacityBytes
        self.maxFileBytes = maxFileBytes
        self.identity = Locked(identity)
        self.secret = secret
        self.caFile = caFile
        forwardStallSeconds = Double(max(connectionTimeoutSeconds, 5))
        forwardResponseSeconds = max(300, forwardStallSeconds)
    }

    var currentIdentity: Identity? { identity.withLock { $0 } }
    func setIdentity(_ value: Identity) { identity.withLock { $0 = value } }

    /// The signer for tickets, once the server is registered.
    func signer() throws -> (Int64, TicketSigner) {
        guard let id = currentIdentity else {
            throw DFSError.unavailable("this file server is not registered with the directory yet")
        }
        return (id.fileServerId, secret.tickets)
    }

    // MARK: Handlers

    /// `PUT /files/{id}?version=V&ticket=T[&fence=F]`: stream the body into a new blob. With `X-DFS-Forward`, the
    /// body also streams on to the first server named there (a pipeline), and this copy is kept only if it stored
    /// the same bytes.
    func put(_ request: Request, _ params: PathParameters) throws -> Disposition {
        let name = try blobName(request, params)
        let (serverId, signer) = try signer()
        var fence: Int64?
        if let text = request.query["fence"] {
            guard let value = Int64(text) else { throw DFSError.badRequest("fence must be an integer token") }
            fence = value
        }
        guard let ticket = request.query["ticket"],
            signer.verify(
                ticket, .put, fileId: name.fileId, version: name.version, detail: TicketSigner.fenceDetail(fence),
                nowMs: wallClockMs())
        else {
            throw DFSError.forbidden(
                "no valid ticket: file \(name.fileId) version \(name.version) was not assigned here, or the grant expired")
        }
        if let fence, let newest = fences.newest(name.fileId), fence < newest {
            throw DFSError(
                409, .staleLock,
                "lock token \(fence) is older than token \(newest) already used to write file \(name.fileId)")
        }
        if let length = request.header("content-length").flatMap(Int64.init) {
            guard length <= maxFileBytes else {
                throw DFSError.tooLarge("files may be at most \(maxFileBytes) bytes (max_file_bytes)")
            }
            guard length <= capacityBytes - store.usage.bytes else {
                throw DFSError.tooLarge("the upload (\(length) bytes) exceeds this server's free capacity")
            }
        }
        let expected = request.header("x-dfs-sha256")?.lowercased()
        let hops = try ForwardTarget.parse(request.header(PipelineHeader.name))
        var forwarder: Forwarder?
        if let next = hops.first {
            // Refused before anything is sent on: the pipeline must not store copies of a write that fails here.
            guard store.info(name) == nil else { throw DFSError.exists("blob \(name) is already stored") }
            forwarder = Forwarder(
                name: name, fence: fence, target: next, rest: Array(hops.dropFirst()),
                length: request.header("content-length").flatMap(Int64.init), expectedSHA256: expected,
                caFile: caFile, bufferBytes: forwardBufferBytes)
        }
        let upload = try store.beginUpload(name)
        forwarder?.start()
        return .streamBody(
            UploadConsumer(
                upload: upload, expectedSHA256: expected, fence: fence, service: self, serverId: serverId,
                signer: signer, forwarder: forwarder))
    }

    /// What this server stored, with its signed receipt: bound to this server, size and checksum, and long-lived
    /// enough for any commit that follows the upload.
    func uploadResult(_ name: BlobName, size: Int64, sha256: String, serverId: Int64, signer: TicketSigner)
        -> UploadResult
    {
        let receipt = signer.sign(
            .stored, fileId: name.fileId, version: name.version, detail: "\(serverId):\(size):\(sha256)",
            expiresAtMs: wallClockMs() + 86_400_000)
        return UploadResult(
            fileServerId: serverId, fileId: name.fileId, version: name.version, size: size, sha256: sha256,
            receipt: receipt)
    }

    /// `GET /files/{id}?version=V`: stream a blob, honouring `Range` and `If-None-Match`. A small blob (at most
    /// `FileStore.checkedMaxBytes`) is read whole and checked against its sha256 first: a create's blob may be
    /// answered before its flush (`inline_flush_ms`), so a power cut could have torn it; a damaged copy is
    /// quarantined and answered as absent, never served.
    func get(_ request: Request, _ params: PathParameters) throws -> Response {
        let name = try blobName(request, params)
        let etag = "\"\(name)\""
        guard let (fd, size, sha256) = store.open(name) else {
            throw DFSError.notFound("file \(name.fileId) version \(name.version) is not stored here")
        }
        var checked: Data?
        if size <= FileStore.checkedMaxBytes, request.method != "HEAD" {
            checked = store.checkedBytes(name, descriptor: fd, size: size, sha256: sha256)
            close(fd)
            guard checked != nil else {
                logger.error("blob \(name) does not match its sha256: quarantined, not served")
                throw DFSError.notFound(
                    "file \(name.fileId) version \(name.version) is not stored here (its copy was damaged)")
            }
        }
        var headers = [
            HTTPHeader("ETag", etag), HTTPHeader("Accept-Ranges", "bytes"),
            HTTPHeader("Content-Type", "application/octet-stream"),
        ]
        if let match = request.header("if-none-match"), match == etag || match == "*" {
            if checked == nil { close(fd) }
            return Response(status: 304, headers: headers)
        }
        var offset: Int64 = 0
        var length = size
        var status = 200
        if let range = request.header("range") {
            switch ByteRange.parse(range, size: size) {
            case .whole:
                break
            case .unsatisfiable:
                if checked == nil { close(fd) }
                return .error(
                    DFSError(416, .badRequest, "range \(range) is outside the file (\(size) bytes)"),
                    headers: [HTTPHeader("Content-Range", "bytes */\(size)")])
            case .part(let start, let end):
                offset = start
                length = end - start + 1
                status = 206
                headers.append(HTTPHeader("Content-Range", "bytes \(start)-\(end)/\(size)"))
            }
        }
        if request.method != "HEAD" { traffic.served(length) }
        if let checked {
            return Response(
                status: status, headers: headers,
                body: .data(checked.subdata(in: Int(offset)..<Int(offset + length))))
        }
        return Response(
            status: status, headers: headers,
            body: .file(descriptor: fd, offset: UInt64(offset), length: UInt64(length)))
    }

    /// `DELETE /files/{id}?version=V&ticket=T`.
    func delete(_ request: Request, _ params: PathParameters) throws -> Response {
        guard secret.matches(request.header(ClusterSecret.header)) else {
            throw DFSError.unauthorized("deleting blobs is for the directory: '\(ClusterSecret.header)' is missing or wrong")
        }
        let name = try blobName(request, params)
        let (_, signer) = try signer()
        guard let ticket = request.query["ticket"],
            signer.verify(ticket, .delete, fileId: name.fileId, version: name.version, nowMs: wallClockMs())
        else {
            throw DFSError.forbidden("deleting file \(name.fileId) version \(name.version) needs the directory's ticket")
        }
        guard store.delete(name) else {
            throw DFSError.notFound("file \(name.fileId) version \(name.version) is not stored here")
        }
        return .json(OKResponse())
    }

    func stats() -> FileServerStats {
        let usage = store.usage
        let traffic = traffic.totals
        return FileServerStats(
            fileServerId: currentIdentity?.fileServerId, files: usage.files, bytes: usage.bytes,
            bytesServed: traffic.served, bytesReceived: traffic.received, lateFlushes: creates.lateFlushes)
    }

    func blobName(_ request: Request, _ params: PathParameters) throws -> BlobName {
        guard let idText = params["id"], let id = Int64(idText), id > 0 else {
            throw DFSError.badRequest("file id must be a positive integer")
        }
        guard let versionText = request.query["version"], let version = Int64(versionText), version > 0 else {
            throw DFSError.badRequest("query parameter 'version' (a positive integer) is required")
        }
        return BlobName(fileId: id, version: version)
    }
}
