import DFSProtocol
import Foundation
import MicroHTTPD
import ServerKit

/// Streams one upload into the store (and, for a pipelined upload, on to the next server at the same time), checks
/// its checksum, and answers with a signed receipt — plus the receipts of the servers down the pipeline.
///
/// A pipelined upload is installed here only when the next server answered 201 with the same size and sha256; if
/// it failed in any way, this copy is dropped too and the answer is 502 `unavailable` naming the failed server.
final class UploadConsumer: BodyConsumer {
    private let upload: Upload
    private let expectedSHA256: String?
    private let fence: Int64?
    private let service: FileService
    private let serverId: Int64
    private let signer: TicketSigner
    private let forwarder: Forwarder?
    /// What comes next once every copy is placed, its name not yet durable (a create makes it durable and commits
    /// it in the background, answering later); without it, that is done here and the results answered, 201.
    /// It gets the bytes too when the body was at most `keepUpTo` bytes (the directory keeps small created files).
    private let placed: ((PipelineResult, Data?) -> Disposition)?
    private var failed = false
    /// The body so far, while it is at most `keepUpTo` bytes; nil once it is more (or nothing is kept).
    private var kept: Data?
    private let keepUpTo: Int

    init(
        upload: Upload, expectedSHA256: String?, fence: Int64?, service: FileService, serverId: Int64,
        signer: TicketSigner, forwarder: Forwarder? = nil, keepUpTo: Int = 0,
        placed: ((PipelineResult, Data?) -> Disposition)? = nil
    ) {
        self.placed = placed
        self.keepUpTo = keepUpTo
        kept = keepUpTo > 0 ? Data() : nil
        self.fence = fence
        self.upload = upload
        self.expectedSHA256 = expectedSHA256
        self.service = service
        self.serverId = serverId
        self.signer = signer
        self.forwarder = forwarder
    }

    func consume(_ chunk: Data) -> Response? {
        do {
            let size = upload.size + Int64(chunk.count)
            if size > service.maxFileBytes {
                throw DFSError.tooLarge("files may be at most \(service.maxFileBytes) bytes (max_file_bytes)")
            }
            if size > service.capacityBytes - service.store.usage.bytes {
                throw DFSError.tooLarge("the upload exceeds this server's free capacity")
            }
            try upload.append(chunk)
            if kept != nil {
                if size <= keepUpTo { kept?.append(chunk) } else { kept = nil }
            }
            service.traffic.received(Int64(chunk.count))
            if let forwarder { try forward(chunk, forwarder) }
            return nil
        } catch {
            failed = true
            upload.abort()
            forwarder?.queue.fail()
            return .error(error as? DFSError ?? DFSError(507, .internal, "cannot write the upload to disk"))
        }
    }

    /// Queues a chunk for the next server; throws when that server is gone or stalled.
    private func forward(_ chunk: Data, _ forwarder: Forwarder) throws {
        let stall = service.forwardStallSeconds
        switch forwarder.queue.push(chunk, stallDeadline: Date().addingTimeInterval(stall)) {
        case .queued:
            return
        case .stalled:
            throw downstreamFailed(forwarder, "it took no data for \(Int(stall)) s")
        case .readerGone:
            // The forward ended before the body did: it can only have failed.
            switch forwarder.wait(timeout: 5) {
            case .failed(let reason): throw downstreamFailed(forwarder, reason)
            default: throw downstreamFailed(forwarder, "it answered before the whole body was sent")
            }
        }
    }

    func finish() -> Response {
        Router.answer { .json(try stored(durable: true), status: 201) }
    }

    func finishing() -> Disposition {
        guard let placed else { return .respond(finish()) }
        do {
            return placed(try stored(durable: false), kept)
        } catch {
            return .respond(Router.answer { throw error })
        }
    }

    /// Checks what arrived, waits for the pipeline's results, and puts this copy in place (`durable`: and on
    /// disk); every copy's result.
    private func stored(durable: Bool) throws -> PipelineResult {
        forwarder?.queue.close()
        let sha256: String
        do {
            sha256 = try upload.finish()
        } catch {
            forwarder?.queue.fail()
            upload.abort()
            throw error
        }
        if let expected = expectedSHA256, expected != sha256 {
            // The next server got the same expectation and refuses the bytes as well.
            upload.abort()
            throw DFSError.checksumMismatch("received bytes have sha256 \(sha256), expected \(expected)")
        }
        let replicas = try forwarder.map { try downstreamResults(of: $0, sha256: sha256) }
        let name = upload.name
        if let fence {
            // Checked again at the end: a newer writer may have stored its bytes while these streamed in.
            guard service.fences.accept(fence, for: name.fileId) else {
                upload.abort()
                throw DFSError(409, .staleLock, "lock token \(fence) was overtaken by a newer writer")
            }
        }
        if durable {
            try service.store.install(upload, sha256: sha256)
        } else {
            try service.store.place(upload, sha256: sha256)
        }
        let stored = service.uploadResult(name, size: upload.size, sha256: sha256, serverId: serverId, signer: signer)
        var result = PipelineResult(
            fileServerId: stored.fileServerId, fileId: stored.fileId, version: stored.version, size: stored.size,
            sha256: stored.sha256, receipt: stored.receipt)
        result.replicas = replicas
        return result
    }

    /// Waits for the next server's answer; its results (its own, then its replicas') when it stored exactly
    /// these bytes, else this copy is dropped and the upload fails with 502.
    private func downstreamResults(of forwarder: Forwarder, sha256: String) throws -> [UploadResult] {
        guard let outcome = forwarder.wait(timeout: service.forwardResponseSeconds) else {
            forwarder.queue.fail()
            upload.abort()
            throw downstreamFailed(forwarder, "no answer within \(Int(service.forwardResponseSeconds)) s")
        }
        switch outcome {
        case .failed(let reason):
            upload.abort()
            throw downstreamFailed(forwarder, reason)
        case .stored(let result):
            guard result.sha256 == sha256, result.size == upload.size, result.fileId == upload.name.fileId,
                result.version == upload.name.version
            else {
                upload.abort()
                throw downstreamFailed(
                    forwarder,
                    "it stored \(result.size) bytes with sha256 \(result.sha256); this server received \(upload.size) bytes with sha256 \(sha256)"
                )
            }
            return result.all
        }
    }

    private func downstreamFailed(_ forwarder: Forwarder, _ reason: String) -> DFSError {
        let error = DFSError(502, .unavailable, "replication to \(forwarder.target.url) failed: \(reason)")
        service.logger.warning("pipelined upload of blob \(upload.name) failed: \(error.message)")
        return error
    }

    func cancel() {
        forwarder?.queue.fail()
        if !failed { upload.abort() }
    }
}
