import ClientCache
import Crypto
import Curl
import DFSProtocol
import Foundation

extension DFSClient {
    /// Writes a whole file from a stream of chunks: upload to the chosen file server, then commit.
    ///
    /// Takes the path's write lock for the duration (waiting up to `lockWaitMs`) unless this client holds it.
    /// The bytes are also kept in the disk cache, so reading one's own write transfers nothing.
    /// - Parameters:
    ///   - length: the byte count when known (sent as Content-Length and used for placement), nil to stream chunked.
    ///   - baseVersion: when set, the commit is refused with `conflict` if the file changed since that version.
    ///   - read: returns up to n bytes; empty at the end.
    @discardableResult
    public func write(
        _ path: String, length: Int64?, baseVersion: Int64? = nil, read: (Int) throws -> Data
    ) throws -> EntryInfo {
        // Fast path for files that upload well within a lease: the directory takes the lock with the write and
        // releases it with the commit (three round trips instead of five). If someone holds the lock, fall back
        // to waiting for it in the queue.
        if heldLocks[Self.key(path)] == nil, settings.lockWaitMs >= 0, let length, length <= Self.inlineLockLimit {
            do {
                return try upload(path, length: length, baseVersion: baseVersion, lockToken: nil, takeLock: true, read: read)
            } catch let error as DFSClientError where error.code == "lock_busy" {
                // Nothing was begun or read: wait for the lock below.
            }
        }
        return try withLock(path, .write) { lock in
            try upload(path, length: length, baseVersion: baseVersion, lockToken: lock?.token, read: read)
        }
    }

    /// Files up to this size take their lock with the write itself (no renewal is needed for them).
    static let inlineLockLimit: Int64 = 64 << 20

    /// Writes a whole file from memory.
    @discardableResult
    public func write(_ path: String, data: Data, baseVersion: Int64? = nil) throws -> EntryInfo {
        var offset = 0
        return try write(path, length: Int64(data.count), baseVersion: baseVersion) { max in
            let end = min(data.count, offset + max)
            defer { offset = end }
            return data.subdata(in: offset..<end)
        }
    }

    /// Uploads a local file, streaming it.
    @discardableResult
    public func put(localPath: String, to path: String, baseVersion: Int64? = nil) throws -> EntryInfo {
        guard let handle = FileHandle(forReadingAtPath: localPath) else {
            throw DFSClientError.io("cannot open \(localPath) for reading")
        }
        defer { try? handle.close() }
        let length = (try? FileManager.default.attributesOfItem(atPath: localPath)[.size] as? Int64) ?? nil
        return try write(path, length: length, baseVersion: baseVersion) { max in
            try handle.read(upToCount: max) ?? Data()
        }
    }

    /// One upload and commit, under the given lock token (if any), or taking the lock with the write (`takeLock`).
    private func upload(
        _ path: String, length: Int64?, baseVersion: Int64?, lockToken: Int64?, takeLock: Bool = false,
        read: (Int) throws -> Data
    ) throws -> EntryInfo {
        let ticket = try transport.call(
            "POST", "/writes",
            body: WriteRequest(
                path: path, clientId: try clientId(), sizeHint: length, lockToken: lockToken, lock: takeLock ? true : nil),
            as: WriteTicket.self)
        do {
            return try transfer(ticket, length: length, baseVersion: baseVersion, read: read)
        } catch {
            // The lock taken with this write must not outlive it.
            if let taken = ticket.lock { try? release(taken) }
            throw error
        }
    }

    /// Streams the bytes to the ticket's target and commits them (releasing a lock taken with the write).
    private func transfer(_ ticket: WriteTicket, length: Int64?, baseVersion: Int64?, read: (Int) throws -> Data)
        throws -> EntryInfo
    {
        guard let target = ticket.targets.first else {
            throw DFSClientError(status: nil, code: "no_file_servers", message: "the directory offered no file server")
        }
        // A cache copy unless the file is too big to be worth one (checked again as bytes stream when unannounced):
        // in memory for a small file, stored inline after the commit; else through a cache entry writer.
        let small = length.map { $0 <= ClientCache.inlineLimit && cacheable($0) } ?? false
        var memory: Data? = small && cache != nil ? Data(capacity: Int(length ?? 0)) : nil
        var copy = !small && (length.map(cacheable) ?? true) ? try? cache?.beginEntry() : nil
        var hasher = SHA256()
        var size: Int64 = 0
        var url = "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)&ticket=\(target.ticket)"
        if let fence = ticket.lockToken { url += "&fence=\(fence)" }
        // The bytes go up once: the first file server passes them down the chain of the other targets (a pipeline,
        // as in HDFS) and answers with every copy's result.
        var headers = [HTTPHeader("Content-Type", "application/octet-stream")]
        let downstream = ticket.targets.dropFirst().map { "\($0.url) \($0.ticket)" }
        if !downstream.isEmpty { headers.append(HTTPHeader("X-DFS-Forward", downstream.joined(separator: ", "))) }
        let response: HTTPResponse
        do {
            response = try withoutActuallyEscaping(read) { read in
                try transport.http.send(
                    method: "PUT", url: url, headers: headers,
                    body: .stream(length: length) { max in
                        let chunk = try read(max)
                        hasher.update(data: chunk)
                        size += Int64(chunk.count)
                        if copy != nil, !self.cacheable(size) {
                            copy?.abort()
                            copy = nil
                        }
                        try copy?.write(chunk)
                        // More than announced: the upload fails anyway; keep memory bounded meanwhile.
                        if let kept = memory?.count, Int64(kept + chunk.count) > ClientCache.inlineLimit {
                            memory = nil
                        }
                        memory?.append(chunk)
                        return chunk
                    })
            }
        } catch let error as CurlError {
            throw DFSClientError.unreachable("file server \(target.fileServerId) at \(target.url)", error.message)
        }
        try Transport.check(response)
        let copies = try WireJSON.decode(UploadResult.self, from: response.body).all
        let sha256 = Data(hasher.finalize()).hexString
        for stored in copies where stored.sha256 != sha256 || stored.size != size {
            throw DFSClientError(
                status: nil, code: "checksum_mismatch",
                message: "file server \(stored.fileServerId) stored different bytes than were sent")
        }
        let commit = CommitRequest(
            path: ticket.path, fileId: ticket.fileId, version: ticket.version, size: size, sha256: sha256,
            baseVersion: baseVersion,
            receipts: copies.map { StoredReceipt(fileServerId: $0.fileServerId, receipt: $0.receipt) },
            releaseLock: ticket.lock != nil ? true : nil)
        let entry = try transport.call("POST", "/commits", body: commit, as: EntryInfo.self)
        if let memory {
            try? cache?.store(fileId: ticket.fileId, version: ticket.version, sha256: sha256, data: memory)
        } else {
            try? copy?.commit(fileId: ticket.fileId, version: ticket.version, sha256: sha256)
        }
        if settings.attrCacheMs > 0 {
            cache?.storeAttributes(
                path: entry.path, fileId: ticket.fileId, version: ticket.version, sha256: sha256, size: size)
        }
        return entry
    }
}
