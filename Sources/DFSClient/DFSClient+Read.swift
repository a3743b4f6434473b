import ClientCache
import Crypto
import Curl
import DFSProtocol
import Foundation

extension DFSClient {
    /// Streams a file (or a byte range of it) into `sink`, verifying the whole file's sha256.
    ///
    /// Close-to-open consistency: the version is revalidated with the directory (one small round trip; none
    /// within `attrCacheMs` of the last check), and an unchanged file is served from the disk cache with no
    /// bytes from a file server; a changed one is fetched (a second round trip) and kept in the cache.
    ///
    /// Seed semantics: while another client holds the path's write lock, the read waits for a read lock, so it
    /// never sees a file in the middle of a locked update. Otherwise no lock round trips are needed: versions
    /// are immutable blobs, so the version the directory named is read whole even if a writer commits meanwhile.
    @discardableResult
    public func read(_ path: String, range: ClosedRange<Int64>? = nil, into sink: (Data) throws -> Void) throws
        -> EntryInfo
    {
        if let cached = cachedAttributes(path), try serveFromCache(cached, range: range, into: sink) {
            return cached
        }
        let entry = try stat(path)
        let lockedByOther = entry.writeLockedBy != nil && heldLocks[Self.key(path)] == nil
        guard lockedByOther else { return try fetch(entry, path: path, range: range, into: sink) }
        return try withLock(path, .read) { lock in
            // The writer has finished: look again.
            try fetch(lock == nil ? entry : try stat(path), path: path, range: range, into: sink)
        }
    }

    /// Serves `entry` from the cache, else downloads it. If the version vanished before the transfer began
    /// (a newer commit deleted it), looks up the path once more and reads the newer version.
    private func fetch(
        _ entry: EntryInfo, path: String, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void
    ) throws -> EntryInfo {
        var current = entry
        for attempt in 0..<2 {
            if try serveFromCache(current, range: range, into: sink) {
                rememberAttributes(current)
                return current
            }
            do {
                try download(current, range: range, into: sink)
                rememberAttributes(current)
                return current
            } catch let error as DFSClientError where error.status == 404 && attempt == 0 {
                let fresh = try stat(path)
                guard fresh.version != current.version else { throw error }
                current = fresh
            }
        }
        return current
    }

    /// Reads a whole (small) file into memory.
    public func read(_ path: String) throws -> Data {
        var data = Data()
        try read(path) { data.append($0) }
        return data
    }

    /// Downloads a file to a local path: into a temp file beside it, renamed into place once verified.
    @discardableResult
    public func get(_ path: String, toLocal localPath: String) throws -> EntryInfo {
        let temp = localPath + ".dfs-partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temp, contents: nil),
            let handle = FileHandle(forWritingAtPath: temp)
        else { throw DFSClientError.io("cannot create \(temp)") }
        do {
            // No fsync: a download is a copy (like curl -o); the rename only makes it appear whole.
            let entry = try read(path) { try handle.write(contentsOf: $0) }
            try handle.close()
            guard rename(temp, localPath) == 0 else { throw DFSClientError.io("cannot rename \(temp) to \(localPath)") }
            return entry
        } catch {
            try? handle.close()
            unlink(temp)
            throw error
        }
    }

    // MARK: Cache

    /// Attributes trusted without asking the directory (only with `attrCacheMs` > 0).
    private func cachedAttributes(_ path: String) -> EntryInfo? {
        guard settings.attrCacheMs > 0, let cache,
            let attributes = cache.attributes(of: Self.key(path), maxAgeMs: settings.attrCacheMs)
        else { return nil }
        return EntryInfo(
            path: Self.key(path), name: "", type: "file", mtimeMs: attributes.fetchedMs, fileId: attributes.fileId,
            version: attributes.version, size: attributes.size, sha256: attributes.sha256)
    }

    private func rememberAttributes(_ entry: EntryInfo) {
        guard settings.attrCacheMs > 0, let fileId = entry.fileId, let version = entry.version,
            let sha256 = entry.sha256
        else { return }
        cache?.storeAttributes(path: entry.path, fileId: fileId, version: version, sha256: sha256, size: entry.size ?? 0)
    }

    /// Serves the entry's version from the disk cache; false on a miss.
    private func serveFromCache(_ entry: EntryInfo, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void) throws
        -> Bool
    {
        guard let cache, !entry.isDirectory, let fileId = entry.fileId, let version = entry.version,
            let sha256 = entry.sha256, let handle = cache.open(fileId: fileId, version: version, sha256: sha256)
        else { return false }
        defer { try? handle.close() }
        var remaining = Int64.max
        if let range {
            try handle.seek(toOffset: UInt64(max(0, range.lowerBound)))
            remaining = range.upperBound - range.lowerBound + 1
        }
        var served: Int64 = 0
        while remaining > 0, let chunk = try handle.read(upToCount: Int(min(1 << 20, remaining))), !chunk.isEmpty {
            try sink(chunk)
            served += Int64(chunk.count)
            remaining -= Int64(chunk.count)
        }
        cache.record(hit: true, bytes: served)
        return true
    }

    /// Whether a file of this size is worth a cache copy: at most a quarter of the cache, so one big transfer
    /// neither evicts everything nor pays for a second full write of its bytes.
    func cacheable(_ size: Int64) -> Bool { size <= settings.cacheMaxBytes / 4 }

    // MARK: Transfer

    /// Streams the entry's version from a replica into `sink` (and, for whole reads, into the cache).
    private func download(_ entry: EntryInfo, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void) throws {
        guard !entry.isDirectory else {
            throw DFSClientError(status: nil, code: "is_a_directory", message: "\(entry.path) is a directory")
        }
        guard let fileId = entry.fileId, let version = entry.version, let replicas = entry.replicas,
            !replicas.isEmpty
        else {
            throw DFSClientError(status: nil, code: "unavailable", message: "no copy of \(entry.path) is reachable")
        }
        cache?.record(hit: false)
        var lastError: Error?
        for replica in replicas {
            var delivered = false
            var hasher = SHA256()
            var headers: [HTTPHeader] = []
            if let range { headers.append(HTTPHeader("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
            let copy = range == nil && cacheable(entry.size ?? 0) ? try? cache?.beginEntry() : nil
            do {
                let response = try withoutActuallyEscaping(sink) { sink in
                    try transport.http.send(
                        method: "GET", url: "\(replica.url)/files/\(fileId)?version=\(version)", headers: headers
                    ) { chunk in
                        delivered = true
                        hasher.update(data: chunk)
                        try sink(chunk)
                        try copy?.write(chunk)
                    }
                }
                try Transport.check(response)
                if range == nil, let expected = entry.sha256 {
                    guard Data(hasher.finalize()).hexString == expected else {
                        throw DFSClientError(
                            status: nil, code: "checksum_mismatch",
                            message:
                                "file server \(replica.fileServerId) sent bytes of \(entry.path) whose sha256 does not match")
                    }
                    try? copy?.commit(fileId: fileId, version: version, sha256: expected)
                }
                return
            } catch let error as CurlError {
                copy?.abort()
                lastError = DFSClientError.unreachable(
                    "file server \(replica.fileServerId) at \(replica.url)", error.message)
            } catch {
                copy?.abort()
                lastError = error
            }
            if delivered { break }
        }
        throw lastError
            ?? DFSClientError(status: nil, code: "unavailable", message: "no copy of \(entry.path) is readable")
    }
}

extension DFSClient {
    /// The disk cache's counters.
    public func cacheStats() throws -> CacheStats {
        guard let cache else {
            throw DFSClientError.io("the disk cache is disabled (DFS_CACHE_MAX_BYTES=0) or cannot be opened")
        }
        do {
            return try cache.stats()
        } catch {
            throw DFSClientError.io("cannot read the cache index: \(error)")
        }
    }

    /// Empties the disk cache.
    public func clearCache() throws {
        do {
            try cache?.clear()
        } catch {
            throw DFSClientError.io("cannot clear the cache: \(error)")
        }
    }

    /// A file server's counters (`GET /stats`), e.g. the bytes it served.
    public func fileServerStats(url: String) throws -> FileServerStats {
        let response: HTTPResponse
        do {
            response = try transport.http.send(method: "GET", url: url + "/stats")
        } catch let error as CurlError {
            throw DFSClientError.unreachable("file server at \(url)", error.message)
        }
        try Transport.check(response)
        return try WireJSON.decode(FileServerStats.self, from: response.body)
    }
}
