import Curl
import DFSProtocol
import Foundation
import Logging
import MicroHTTPD
import ServerKit
import Synchronization

/// Creates through this server (`PUT /creates`): ids for their blobs, leased from the directory a block at a time,
/// and a pipeline of two background threads in which no request thread waits. A create's connection is parked once
/// its blob is written and named; the first thread makes every blob placed so far durable with one flush
/// (`FileStore.makeDurable`: one `syncfs` by default), the second commits the durable ones at the directory in one
/// batch (group commit, twice) and answers each parked request. (Two committing threads, so that the directory
/// could apply one batch during the other's log flush, measured no faster: smaller batches cost the directory more.)
///
/// A create whose bytes the directory keeps too (at most its `inline_max_bytes`) skips the first thread when
/// `inline_flush_ms` is above 0: its commit says `blob_durable: false`, the directory keeps the bytes whatever
/// happens and has them on its disk when the commit is, and the client is answered then. Such blobs are made
/// durable here by one flush every `inline_flush_ms` (a third thread; also at `stop`). Until then a power cut could
/// take or tear this server's copy (a killed process does not: the bytes are in the page cache), never the file:
/// `GET /content` serves the directory's copy, and a small blob is checked against its name's sha256 before this
/// server serves it. (16 clients creating 4 KiB files: +21% files/s, the flushes being what the directory's log
/// flush waited behind on the disk; flushing and committing at the same time, both awaited, gained 3%.)
final class Creates: Sendable {
    /// Ids asked for at a time: one directory call per this many creates.
    static let idBlock: Int64 = 1024
    /// The most creates one batch commits.
    static let maxBatch = 256

    /// A create whose blob is in place: its commit, and how to answer it (called once, from the pipeline).
    struct Pending: Sendable {
        var item: BatchCommitItem
        var answer: @Sendable (Result<BatchCommitOutcome, DFSError>) -> Void
    }

    private let directory: String
    private let secret: ClusterSecret
    private let ids = Mutex<(next: Int64, end: Int64)>((0, 0))
    /// The directory's `inline_max_bytes` as last learnt (id block, batch answer): creates up to this size send their
    /// bytes along with their commit, for the directory to keep (0 until the first block, and when it keeps none).
    private let inlineLimit = InlineLimit()

    /// Creates up to this size send their bytes with their commit.
    var inlineMaxBytes: Int { inlineLimit.bytes }
    /// Held while a block is fetched, so that only one request asks the directory.
    private let refilling: Mutex<HTTPClient>
    private let flushing: BatchWorker<Pending>
    private let committing: BatchWorker<Pending>
    /// Flushes the blobs of creates answered before their flush, when there are any, every `inlineFlushMs`.
    private let lateFlushing: BackgroundThread?
    /// Whether a blob was placed for `lateFlushing` since its last flush began.
    private let unflushed = Atomic<Bool>(false)
    private let lateFlushCount = Atomic<Int64>(0)
    private let store: FileStore
    private let logger: Logger

    init(
        directory: String, secret: ClusterSecret, caFile: String?, store: FileStore, inlineFlushMs: Int = 20,
        logger: Logger = Logger(label: "dfs.fileserver")
    ) {
        self.directory = directory
        self.store = store
        self.secret = secret
        refilling = Mutex(HTTPClient(connectTimeout: 2, timeout: 10, caFile: caFile))
        let headers = Self.headers(secret)
        // The kept-alive connection to the directory, used by the committing thread alone.
        let sender = Locked(HTTPClient(connectTimeout: 2, timeout: 30, caFile: caFile))
        let limit = inlineLimit
        let committing = BatchWorker<Pending>(name: "dfs-commits", maxBatch: Self.maxBatch) { batch in
            // Creates carrying their bytes make big bodies: cut so that each fits the directory's limit.
            var start = 0
            for items in BatchCommitRequest.batches(batch.map(\.item)) {
                let results = Self.send(items, to: directory, headers: headers, sender, limit)
                for (pending, result) in zip(batch[start..<start + items.count], results) { pending.answer(result) }
                start += items.count
            }
        }
        self.committing = committing
        flushing = BatchWorker(name: "dfs-flush", maxBatch: Int.max) { batch in
            // One flush covers every blob placed before it began: all of this batch.
            var failure: DFSError?
            do {
                try store.makeDurable()
            } catch {
                failure = error as? DFSError ?? DFSError(500, .internal, "cannot make the blob durable")
            }
            for pending in batch {
                if let failure { pending.answer(.failure(failure)) } else { committing.submit(pending) }
            }
        }
        self.logger = logger
        lateFlushing = inlineFlushMs > 0 ? BackgroundThread(name: "dfs-late-flush") : nil
        lateFlushing?.start { [self] in
            while let lateFlushing, !lateFlushing.isStopped {
                lateFlushing.pause(ms: inlineFlushMs)
                flushLate()
            }
        }
    }

    /// One flush of what was placed before it began, if anything was placed since the last.
    private func flushLate() {
        guard unflushed.exchange(false, ordering: .acquiringAndReleasing) else { return }
        do {
            try store.makeDurable()
            lateFlushCount.add(1, ordering: .relaxed)
        } catch {
            // The directory has the bytes; the scrubber and the check before serving catch a copy this left torn.
            unflushed.store(true, ordering: .releasing)
            logger.error("cannot make created blobs durable: \(error)")
        }
    }

    /// Lets the pipeline's threads end once what they hold is answered.
    func stop() {
        flushing.stop()
        committing.stop()
        lateFlushing?.stop()
        flushLate()
    }

    /// Whether creates whose bytes the directory keeps are answered before their blob's flush.
    var flushesLate: Bool { lateFlushing != nil }

    /// The flushes made for such creates so far.
    var lateFlushes: Int64 { lateFlushCount.load(ordering: .relaxed) }

    /// Makes a placed blob durable and commits it, in the background: the commit waits for the flush, unless the
    /// commit brings the bytes (`blob_durable: false`) and the flush comes within `inlineFlushMs`.
    func submit(_ pending: Pending) {
        guard pending.item.blobDurable == false else { return flushing.submit(pending) }
        unflushed.store(true, ordering: .releasing)
        committing.submit(
            Pending(item: pending.item) { [flushing] result in
                // 412: the directory no longer keeps files this big. Commit the usual way, once the blob is durable.
                guard case .success(let outcome) = result, outcome.status == 412 else { return pending.answer(result) }
                var item = pending.item
                item.data = nil
                item.blobDurable = nil
                flushing.submit(Pending(item: item, answer: pending.answer))
            })
    }

    private static func headers(_ secret: ClusterSecret) -> [Curl.HTTPHeader] {
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
                    method: "POST", url: directory + "/ids", headers: Self.headers(secret),
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
            inlineLimit.learn(block.inlineMaxBytes ?? 0)
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

    /// One `POST /commits/batch`: an outcome per item, or the same error for all when the batch failed as a whole.
    private static func send(
        _ items: [BatchCommitItem], to directory: String, headers: [Curl.HTTPHeader], _ sender: Locked<HTTPClient>,
        _ inlineLimit: InlineLimit
    ) -> [Result<BatchCommitOutcome, DFSError>] {
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
            if let limit = answer.inlineMaxBytes { inlineLimit.learn(limit) }
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
                signer: signer, forwarder: forwarder, keepUpTo: creates.inlineMaxBytes
            ) { [creates] stored, kept in
                let commit = CommitRequest(
                    path: path, fileId: id, version: id, size: stored.size, sha256: stored.sha256,
                    baseVersion: baseVersion,
                    receipts: stored.all.map { StoredReceipt(fileServerId: $0.fileServerId, receipt: $0.receipt) })
                // Bytes the directory keeps make the create durable there: this server's flush may come later.
                let item = BatchCommitItem(
                    clientId: clientId, commit: commit, data: kept,
                    blobDurable: kept != nil && creates.flushesLate ? false : nil)
                return .suspend { suspension in
                    creates.submit(
                        Creates.Pending(item: item) { result in
                            suspension.resume(with: Self.createAnswer(result))
                        })
                }
            })
    }

    /// The answer to a create: 201 and the entry, or the directory's refusal as the client would have had it.
    static func createAnswer(_ result: Result<BatchCommitOutcome, DFSError>) -> Response {
        Router.answer {
            let outcome = try result.get()
            if let entry = outcome.entry, outcome.status == 201 { return .json(entry, status: 201) }
            let error = outcome.error ?? ErrorBody.Detail(code: "internal", message: "the commit failed")
            var refusal = DFSError(outcome.status, ErrorCode(rawValue: error.code) ?? .internal, error.message)
            refusal.holders = error.holders
            throw refusal
        }
    }
}

/// The directory's `inline_max_bytes` as last learnt (from an id block, or a batch's answer), at most
/// `BatchCommitItem.unflushedMaxBytes`: a blob answered before its flush is one checked before it is served.
final class InlineLimit: Sendable {
    private let value = Atomic<Int>(0)
    var bytes: Int { value.load(ordering: .relaxed) }
    func learn(_ directoryLimit: Int64) {
        value.store(Int(max(0, min(directoryLimit, Int64(BatchCommitItem.unflushedMaxBytes)))), ordering: .relaxed)
    }
}

/// A thread that takes what was submitted a batch at a time (everything waiting, up to `maxBatch`) and hands each
/// batch to `process`; it sleeps while there is nothing to do.
final class BatchWorker<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var idle = false
        var stopped = false
    }

    private enum Step {
        case run([Item]), sleep, exit
    }

    private let state = Locked(State())
    private let wake = DispatchSemaphore(value: 0)

    init(name: String, maxBatch: Int, process: @escaping @Sendable ([Item]) -> Void) {
        let thread = Thread { [state, wake] in
            while true {
                let step = state.withLock { state -> Step in
                    if state.items.isEmpty {
                        if state.stopped { return .exit }
                        state.idle = true
                        return .sleep
                    }
                    let batch = Array(state.items.prefix(maxBatch))
                    state.items.removeFirst(batch.count)
                    return .run(batch)
                }
                switch step {
                case .run(let batch): process(batch)
                case .sleep: wake.wait()
                case .exit: return
                }
            }
        }
        thread.name = name
        thread.start()
    }

    func submit(_ item: Item) { update { $0.items.append(item) } }

    /// Lets the thread end once everything submitted was processed.
    func stop() { update { $0.stopped = true } }

    /// Changes the state, and wakes the thread if it sleeps.
    private func update(_ change: (inout State) -> Void) {
        let wasIdle = state.withLock { state -> Bool in
            change(&state)
            defer { state.idle = false }
            return state.idle
        }
        if wasIdle { wake.signal() }
    }
}
