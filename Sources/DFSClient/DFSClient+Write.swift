import ClientCache
import Crypto
import Curl
import DFSCore
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
        // Small files are created in one round trip: the bytes go to a file server, which commits them (taking and
        // releasing the path's write lock at the directory for that instant). If someone holds the lock, or no
        // file server can be reached that way, fall back to the paths below.
        if heldLocks[Self.key(path)] == nil, settings.lockWaitMs >= 0, let length, length <= Self.createLimit {
            var staged = Data(capacity: Int(length))
            while staged.count < Int(length) {
                let chunk = try read(Int(length) - staged.count)
                if chunk.isEmpty { break }
                staged.append(chunk)
            }
            guard staged.count == Int(length), try read(1).isEmpty else {
                throw DFSClientError.io("\(path): the source did not hold the \(length) bytes announced")
            }
            if let entry = try create(path, data: staged, baseVersion: baseVersion) { return entry }
            var offset = 0
            let replay: (Int) throws -> Data = { max in
                let end = min(staged.count, offset + max)
                defer { offset = end }
                return staged.subdata(in: offset..<end)
            }
            return try withLock(path, .write) { lock in
                try upload(path, length: length, baseVersion: baseVersion, lockToken: lock?.token, read: replay)
            }
        }
        // Files that upload well within a lease: the directory takes the lock with the write and releases it with
        // the commit (three round trips instead of five). If someone holds the lock, fall back to waiting for it in
        // the queue.
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

    /// Files up to this size are created through a file server in one round trip (`PUT /creates`): held in memory
    /// meanwhile, so their checksum goes with them and the server refuses other bytes before anything is committed.
    public static let createLimit: Int64 = 1 << 20

    /// Creates (or replaces) a small file in one round trip to a file server, which stores the bytes and commits
    /// them. Nil when the lock is taken (the caller then waits for it), or when no file server could be reached
    /// that way — nothing was committed then.
    private func create(_ path: String, data: Data, baseVersion: Int64?) throws -> EntryInfo? {
        try authenticate()
        guard let targets = try place(Int64(data.count)), let first = targets.first, let token = transport.token else {
            return nil
        }
        let sha256 = Data(SHA256.hash(data: data)).hexString
        var url = "\(first.url)/creates?path=\(Transport.escape(path))"
        if let baseVersion { url += "&base_version=\(baseVersion)" }
        var headers = [
            HTTPHeader("Content-Type", "application/octet-stream"), HTTPHeader("Authorization", "Bearer \(token)"),
            HTTPHeader("X-DFS-SHA256", sha256),
        ]
        if targets.count > 1 {
            headers.append(HTTPHeader("X-DFS-Forward", targets.dropFirst().map(\.url).joined(separator: ", ")))
        }
        let response: HTTPResponse
        do {
            response = try transport.http.send(method: "PUT", url: url, headers: headers, body: .data(data))
        } catch {
            // Not known to have reached the server: place again next time, and write the other way now.
            placement = nil
            return nil
        }
        do {
            try Transport.check(response)
        } catch let error as DFSClientError where ["lock_busy", "locked"].contains(error.code) {
            return nil
        } catch let error as DFSClientError where error.code == "unavailable" {
            // A file server that cannot reach the directory or the next server: the other way may still work.
            placement = nil
            return nil
        }
        let entry = try WireJSON.decode(EntryInfo.self, from: response.body)
        guard let fileId = entry.fileId, let version = entry.version, entry.sha256 == sha256 else {
            throw DFSClientError(
                status: nil, code: "bad_response", message: "the file server's answer does not describe these bytes")
        }
        // With its path: the next read names this version (If-None-Match), and the directory sends no bytes.
        if cacheable(Int64(data.count)) {
            try? cache?.store(fileId: fileId, version: version, sha256: sha256, data: data, path: entry.path)
        }
        return entry
    }

    /// Where a new file of `size` bytes goes, in pipeline order: the directory's rule (`Placement`) applied to the
    /// loads of its last `GET /placement` answer plus what this client placed since (so a burst of files spreads as
    /// the directory would spread it). Nil when the directory has no such route.
    private func place(_ size: Int64) throws -> [PlacementServer]? {
        let now = DispatchTime.now().uptimeNanoseconds
        if (placement?.until ?? 0) <= now {
            let answer: PlacementResponse
            do {
                answer = try transport.call("GET", "/placement", as: PlacementResponse.self)
            } catch let error as DFSClientError where error.status == 404 {
                return nil  // a directory from before creates
            }
            placement = (answer.servers, Int(answer.replicas), now + UInt64(max(0, answer.ttlMs)) * 1_000_000)
        }
        guard case (var servers, let replicas, let until)? = placement else { return nil }
        let loads = servers.map {
            ServerLoad(
                id: $0.fileServerId, storedBytes: $0.storedBytes, inflightBytes: $0.inflightBytes, files: $0.files,
                isLive: true)
        }
        let chosen = Placement.choose(from: loads, count: replicas)
        for id in chosen {
            if let index = servers.firstIndex(where: { $0.fileServerId == id }) {
                servers[index].storedBytes += size
                servers[index].files += 1
            }
        }
        placement = (servers, replicas, until)
        return chosen.compactMap { id in servers.first { $0.fileServerId == id } }
    }

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
        let reader = LocalReader(descriptor: handle.fileDescriptor)
        return try write(path, length: length, baseVersion: baseVersion) { max in try reader.read(upToCount: max) }
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
        // A file within the directory's `inline_max_bytes` also brings its bytes with the commit, for the
        // directory to keep and serve in one round trip (as creates do).
        let inlineLimit = Int(min(ticket.inlineMaxBytes ?? 0, ClientCache.inlineLimit))
        var inline: Data? = inlineLimit > 0 && (length ?? 0) <= Int64(inlineLimit) ? Data() : nil
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
                        if let kept = inline?.count, kept + chunk.count > inlineLimit {
                            inline = nil
                        }
                        inline?.append(chunk)
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
            releaseLock: ticket.lock != nil ? true : nil, data: inline)
        let entry = try transport.call("POST", "/commits", body: commit, as: EntryInfo.self)
        if let memory {
            // With its path: the next read names this version (If-None-Match), and the directory sends no bytes.
            try? cache?.store(
                fileId: ticket.fileId, version: ticket.version, sha256: sha256, data: memory, path: entry.path)
        } else if let copy, (try? copy.commit(fileId: ticket.fileId, version: ticket.version, sha256: sha256)) != nil {
            cache?.storeAttributes(
                path: entry.path, fileId: ticket.fileId, version: ticket.version, sha256: sha256, size: size)
        }
        return entry
    }
}
