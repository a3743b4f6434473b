import Curl
import DFSProtocol
import Foundation
import Logging
import MicroHTTPD
import ServerKit
import Synchronization

/// A running directory server: the HTTP front, the directory service and its maintenance thread.
public final class DirectoryServer: Sendable {
    public let directory: Directory
    private let http: HTTPServer
    private let maintenance: Maintenance
    private let checkpointer: Checkpointer

    /// Opens the metadata and starts serving at once.
    public init(config: DirectoryConfig, logger: Logger) throws {
        let directory = try Directory(config: config, logger: logger)
        let router = Router(
            routes: DirectoryRoutes.routes(directory), logger: logger, maxHeaderBytes: config.server.maxHeaderBytes)
        self.directory = directory
        self.http = try HTTPServer(options: try config.server.httpOptions(listen: config.listen, bodyChunkBytes: 8 << 10)) { request in
            router.handle(request)
        }
        self.maintenance = Maintenance(directory: directory, logger: logger)
        checkpointer = Checkpointer(
            databasePath: directory.metadataPath, walPath: directory.metadataPath + "-wal", logger: logger)
        directory.locks.start()
        maintenance.start()
        checkpointer.start()
    }

    /// The bound port (the real one when the config asked for port 0).
    public var port: UInt16 { http.port }

    public func stop() {
        checkpointer.stop()
        maintenance.stop()
        directory.locks.stop()
        http.stop()
    }
}

/// Background work: deletes blobs that no metadata points to any more, and expires abandoned writes.
final class Maintenance: Sendable {
    private let directory: Directory
    private let logger: Logger
    private let thread = BackgroundThread(name: "dfs-maintenance")
    private let nextFullInventory = Mutex<UInt64>(0)

    init(directory: Directory, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    func start() { thread.start { [self] in run() } }

    func stop() { thread.stop() }

    /// Asks due file servers what they hold and reconciles it with the metadata.
    private func reconcileInventories(_ client: HTTPClient) throws {
        let now = DispatchTime.now().uptimeNanoseconds / 1_000_000
        let everyone = now >= nextFullInventory.withLock { $0 }
        if everyone {
            nextFullInventory.withLock { $0 = now + UInt64(directory.config.inventoryIntervalMs) }
        }
        let headers = [Curl.HTTPHeader(ClusterSecret.header, directory.secret.token)]
        let buckets = InventoryDigest.buckets
        for (id, url) in directory.inventoryDue(everyone: everyone) {
            // Digests first, then only the buckets where the server and the metadata disagree: memory for one
            // bucket, where the whole inventory (30,000 copies) had the directory's RSS jump by ~30 MiB each time.
            guard
                let response = try? client.send(
                    method: "GET", url: url + "/inventory/digests?buckets=\(buckets)", headers: headers),
                response.status == 200,
                let theirs = try? WireJSON.decode(InventoryDigestsResponse.self, from: response.body),
                theirs.digests.count == buckets
            else {
                logger.warning("cannot read the inventory digests of file server \(id) at \(url)")
                continue
            }
            let ours = try directory.copyDigests(on: id, buckets: buckets).map(InventoryDigest.hex)
            let mismatched = (0..<buckets).filter { theirs.digests[$0] != ours[$0] }
            directory.forgetOrphanCandidates(serverId: id, outside: Set(mismatched), of: buckets)
            for index in mismatched {
                if thread.isStopped { return }
                let bucket = (index: index, of: buckets)
                let before = try directory.copies(on: id, bucket: bucket)
                guard
                    let response = try? client.send(
                        method: "GET", url: url + "/inventory?buckets=\(buckets)&bucket=\(index)", headers: headers),
                    response.status == 200,
                    let inventory = try? WireJSON.decode(InventoryResponse.self, from: response.body)
                else {
                    logger.warning("cannot read bucket \(index) of the inventory of file server \(id) at \(url)")
                    break
                }
                try directory.reconcile(serverId: id, before: before, blobs: inventory.blobs, bucket: bucket)
            }
        }
    }

    /// Makes missing copies (the target pulls from a good copy and proves it with a receipt) and drops extra ones.
    private func replicate(_ client: HTTPClient) throws {
        let (jobs, extras) = try directory.replicationPlan(limit: 16)
        for extra in extras {
            try directory.dropCopy(fileId: extra.fileId, version: extra.version, serverId: extra.serverId, deleteBlob: true)
        }
        for job in jobs {
            var result: UploadResult?
            if !thread.isStopped {
                let request = ReplicateRequest(
                    fileId: job.fileId, version: job.version, sha256: job.sha256, size: job.size,
                    sourceUrl: job.sourceURL)
                if let body = try? WireJSON.encode(request),
                    let response = try? client.send(
                        method: "POST", url: job.targetURL + "/replicate",
                        headers: [
                            HTTPHeader("Content-Type", "application/json"),
                            HTTPHeader(ClusterSecret.header, directory.secret.token),
                        ], body: .data(body)),
                    response.status == 200 || response.status == 201
                {
                    result = try? WireJSON.decode(UploadResult.self, from: response.body)
                } else {
                    logger.warning("copying \(job.fileId).\(job.version) to file server \(job.target) failed; will retry")
                }
            }
            try directory.copyFinished(job, result: result)
        }
    }

    private func run() {
        // No overall timeout: a copy of a large file takes as long as it takes (connect and stall limits still apply).
        let client = HTTPClient(connectTimeout: 2, timeout: 0, caFile: directory.config.server.caFile)
        while !thread.isStopped {
            do {
                try directory.expireAbandonedWrites()
                for (blob, url, ticket) in try directory.pendingDeletions(limit: 100) {
                    if thread.isStopped { break }
                    let response = try? client.send(
                        method: "DELETE", url: "\(url)/files/\(blob.fileId)?version=\(blob.version)&ticket=\(ticket)",
                        headers: [HTTPHeader(ClusterSecret.header, directory.secret.token)])
                    if let status = response?.status, status == 200 || status == 404 {
                        try directory.deletionDone(blob)
                    }
                }
                try reconcileInventories(client)
                try replicate(client)
            } catch {
                logger.warning("maintenance pass failed: \(error)")
            }
            thread.pause(ms: 1000)
        }
    }
}
