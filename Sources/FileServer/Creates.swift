import Curl
import DFSProtocol
import Foundation
import MicroHTTPD
import ServerKit
import Synchronization

/// Creates through this server (`PUT /creates`): ids for their blobs, leased from the directory a block at a time,
/// and their commits, sent to the directory in batches (group commit, as `GroupFlush` does for a disk).
final class Creates: Sendable {
    /// Ids asked for at a time: one directory call per this many creates.
    static let idBlock: Int64 = 1024
    /// The most creates one batch commits.
    static let maxBatch = 256

    private let directory: String
    private let secret: ClusterSecret
    private let ids = Mutex<(next: Int64, end: Int64)>((0, 0))
    /// Held while a block is fetched, so that only one request asks the directory.
    private let refilling = Mutex<HTTPClient>(HTTPClient(connectTimeout: 2, timeout: 10))

    /// What a waiting create is told: its outcome, or to send the next batch itself.
    private enum Turn: Sendable {
        case done(Result<BatchCommitOutcome, DFSError>)
        case lead
    }

    /// One waiting create: woken once, by the thread that sent its batch (or that hands it the next one).
    private final class Slot: Sendable {
        let woken = DispatchSemaphore(value: 0)
        let turn = Mutex<Turn?>(nil)

        func wake(_ value: Turn) {
            turn.withLock { $0 = value }
            woken.signal()
        }
    }

    private struct Queue {
        var waiting: [(item: BatchCommitItem, slot: Slot)] = []
        var sending = false
    }

    private let queue = Mutex(Queue())
    /// The kept-alive connection to the directory, used by the one thread sending a batch.
    private let sender: Mutex<HTTPClient>

    init(directory: String, secret: ClusterSecret, caFile: String?) {
        self.directory = directory
        self.secret = secret
        sender = Mutex(HTTPClient(connectTimeout: 2, timeout: 30, caFile: caFile))
        refilling.withLock { $0 = HTTPClient(connectTimeout: 2, timeout: 10, caFile: caFile) }
    }

    private var headers: [Curl.HTTPHeader] {
        [Curl.HTTPHeader("Content-Type", "application/json"), Curl.HTTPHeader(ClusterSecret.header, secret.token)]
    }

    /// A new id for a created blob (its file id and version alike), never handed out before in the cluster.
    func nextId() throws -> Int64 {
        if let id = take() { return id }
        return try refilling.withLock { client in
            // Another request may have refilled while this one waited.
            if let id = take() { return id }
            let response: HTTPResponse
            do {
                response = try client.send(
                    method: "POST", url: directory + "/ids", headers: headers,
                    body: .data(try WireJSON.encode(IdBlockRequest(count: Self.idBlock))))
            } catch {
                throw DFSError(503, .unavailable, "cannot reach the directory at \(directory) for new ids: \(error)")
            }
            guard response.status == 201, let block = try? WireJSON.decode(IdBlockResponse.self, from: response.body),
                block.first > 0, block.count > 0
            else {
                throw DFSError(502, .unavailable, "the directory refused new ids (\(response.status))")
            }
            ids.withLock { $0 = (block.first + 1, block.first + block.count) }
            return block.first
        }
    }

    private func take() -> Int64? {
        ids.withLock { ids in
            guard ids.next < ids.end else { return nil }
            defer { ids.next += 1 }
            return ids.next
        }
    }

    /// Commits one create at the directory, together with the others waiting at the same time, and returns its
    /// outcome. While one batch is out, the creates finishing meanwhile queue up and go in the next one, sent by
    /// the first of them; every other thread sleeps until its own outcome is in (no broadcast wakes them all).
    func commit(_ item: BatchCommitItem) throws(DFSError) -> BatchCommitOutcome {
        let slot = Slot()
        let leads = queue.withLock { queue -> Bool in
            queue.waiting.append((item, slot))
            if queue.sending { return false }
            queue.sending = true
            return true
        }
        if !leads {
            slot.woken.wait()
            if case .done(let outcome)? = slot.turn.withLock({ $0 }) { return try outcome.get() }
        }
        while true {
            let batch = queue.withLock { queue in
                let batch = Array(queue.waiting.prefix(Self.maxBatch))
                queue.waiting.removeFirst(batch.count)
                return batch
            }
            let results = send(batch.map(\.item))
            var own: Result<BatchCommitOutcome, DFSError>?
            for (index, waiting) in batch.enumerated() {
                if waiting.slot === slot { own = results[index] } else { waiting.slot.wake(.done(results[index])) }
            }
            guard let own else { continue }
            // The first create still waiting sends the next batch; with none, the next arrival will.
            let next = queue.withLock { queue -> Slot? in
                if let first = queue.waiting.first { return first.slot }
                queue.sending = false
                return nil
            }
            next?.wake(.lead)
            return try own.get()
        }
    }

    /// One `POST /commits/batch`: an outcome per item, or the same error for all when the batch failed as a whole.
    private func send(_ items: [BatchCommitItem]) -> [Result<BatchCommitOutcome, DFSError>] {
        let result = sender.withLock { client -> Result<[BatchCommitOutcome], DFSError> in
            let response: HTTPResponse
            do {
                response = try client.send(
                    method: "POST", url: directory + "/commits/batch", headers: headers,
                    body: .data(try WireJSON.encode(BatchCommitRequest(commits: items))))
            } catch {
                return .failure(DFSError(503, .unavailable, "cannot reach the directory at \(directory) to commit: \(error)"))
            }
            guard response.status == 200,
                let answer = try? WireJSON.decode(BatchCommitResponse.self, from: response.body),
                answer.outcomes.count == items.count
            else {
                return .failure(DFSError(502, .unavailable, "the directory did not take the commits (\(response.status))"))
            }
            return .success(answer.outcomes)
        }
        switch result {
        case .success(let outcomes): return outcomes.map { .success($0) }
        case .failure(let error): return items.map { _ in .failure(error) }
        }
    }
}

extension FileService {
    /// `PUT /creates?path=P[&base_version=V]` with a client's bearer token: stores the body under a new id and
    /// commits it as the file at `path` (batched with other creates); answers with the directory's outcome — 201
    /// and the new entry, or its error. `X-DFS-Forward: <url>, <url>...` streams the body on down a pipeline of
    /// file servers, for which this server writes the tickets; every copy is committed.
    func create(_ request: Request) throws -> Disposition {
        guard let clientId = secret.clientTokens.clientId(authorization: request.header("authorization")) else {
            throw DFSError.unauthorized("creating a file needs 'Authorization: Bearer <token>' (from POST /register_client)")
        }
        guard let path = request.query["path"], !path.isEmpty else {
            throw DFSError.badRequest("query parameter 'path' is required")
        }
        var baseVersion: Int64?
        if let text = request.query["base_version"] {
            guard let value = Int64(text) else { throw DFSError.badRequest("base_version must be an integer") }
            baseVersion = value
        }
        let length = request.header("content-length").flatMap(Int64.init)
        if let length {
            guard length <= maxFileBytes else {
                throw DFSError.tooLarge("files may be at most \(maxFileBytes) bytes (max_file_bytes)")
            }
            guard length <= capacityBytes - store.usage.bytes else {
                throw DFSError.tooLarge("the upload (\(length) bytes) exceeds this server's free capacity")
            }
        }
        let (serverId, signer) = try signer()
        let urls = try ForwardTarget.parseURLs(request.header(PipelineHeader.name))
        let id = try creates.nextId()
        let name = BlobName(fileId: id, version: id)
        let expiry = wallClockMs() + 3_600_000
        let hops = urls.map { url in
            ForwardTarget(url: url, ticket: signer.sign(
                    .put, fileId: id, version: id, detail: TicketSigner.fenceDetail(nil), expiresAtMs: expiry))
        }
        let expected = request.header("x-dfs-sha256")?.lowercased()
        let forwarder = hops.first.map { next in
            Forwarder(
                name: name, fence: nil, target: next, rest: Array(hops.dropFirst()), length: length,
                expectedSHA256: expected, caFile: caFile, bufferBytes: forwardBufferBytes)
        }
        let upload = try store.beginUpload(name)
        forwarder?.start()
        return .streamBody(
            UploadConsumer(
                upload: upload, expectedSHA256: expected, fence: nil, service: self, serverId: serverId,
                signer: signer, forwarder: forwarder
            ) { [creates] stored in
                let commit = CommitRequest(
                    path: path, fileId: id, version: id, size: stored.size, sha256: stored.sha256,
                    baseVersion: baseVersion,
                    receipts: stored.all.map { StoredReceipt(fileServerId: $0.fileServerId, receipt: $0.receipt) })
                let outcome = try creates.commit(BatchCommitItem(clientId: clientId, commit: commit))
                if let entry = outcome.entry, outcome.status == 201 { return .json(entry, status: 201) }
                let error = outcome.error ?? ErrorBody.Detail(code: "internal", message: "the commit failed")
                var refusal = DFSError(
                    outcome.status, ErrorCode(rawValue: error.code) ?? .internal, error.message)
                refusal.holders = error.holders
                throw refusal
            })
    }
}
