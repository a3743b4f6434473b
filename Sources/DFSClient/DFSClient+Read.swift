import ClientCache
import Crypto
import Curl
import DFSProtocol
import Foundation
import Glibc

extension DFSClient {
    /// Streams a file (or a byte range of it) into `sink`, verifying the whole file's sha256.
    ///
    /// Close-to-open consistency: the version is revalidated with the directory (one small round trip; none
    /// within `attrCacheMs` of the last check), and an unchanged file is served from the disk cache with no
    /// bytes from a file server; a changed one is fetched (a second round trip) and kept in the cache. Whole files
    /// up to `ClientCache.inlineLimit` are fetched into memory and verified before `sink` sees them (one chunk);
    /// bigger ones and ranges stream in chunks, in constant memory.
    ///
    /// Seed semantics: while another client holds the path's write lock, the read waits for a read lock, so it
    /// never sees a file in the middle of a locked update. Otherwise no lock round trips are needed: versions
    /// are immutable blobs, so the version the directory named is read whole even if a writer commits meanwhile.
    @discardableResult
    public func read(_ path: String, range: ClosedRange<Int64>? = nil, into sink: (Data) throws -> Void) throws
        -> EntryInfo
    {
        try read(path, range: range, into: sink, restart: nil)
    }

    /// `read`, for a caller whose sink can start over (`restart`) if a replica turns out bad mid-way.
    func read(
        _ path: String, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void, restart: (() throws -> Void)?
    ) throws -> EntryInfo {
        if let cached = cachedAttributes(path), try serveFromCache(cached, range: range, into: sink) {
            return cached
        }
        var found: EntryInfo?
        if range == nil, !directoryLacksContent {
            do {
                switch try readThroughDirectory(path, into: sink) {
                case .served(let served):
                    rememberAttributes(served)
                    return served
                case .entry(let entry): found = entry
                }
            } catch let error as DFSClientError where error.status == 404 && error.message.hasPrefix("no route") {
                directoryLacksContent = true
            }
        }
        let entry = try found ?? stat(path)
        let lockedByOther = entry.writeLockedBy != nil && heldLocks[Self.key(path)] == nil
        guard lockedByOther else { return try fetch(entry, path: path, range: range, into: sink, restart: restart) }
        return try withLock(path, .read) { lock in
            // The writer has finished: look again.
            try fetch(lock == nil ? entry : try stat(path), path: path, range: range, into: sink, restart: restart)
        }
    }

    /// Serves `entry` from the cache, else downloads it. If the version vanished before the transfer began
    /// (a newer commit deleted it), looks up the path once more and reads the newer version.
    private func fetch(
        _ entry: EntryInfo, path: String, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void,
        restart: (() throws -> Void)?
    ) throws -> EntryInfo {
        var current = entry
        for attempt in 0..<2 {
            if try serveFromCache(current, range: range, into: sink) {
                rememberAttributes(current)
                return current
            }
            do {
                if range == nil, let size = current.size, size <= ClientCache.inlineLimit {
                    try downloadSmall(current, size: size, into: sink)
                } else {
                    cache?.record(hit: false)
                    try download(current, range: range, into: sink, restart: restart)
                }
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
        try read(path) { chunk in
            // A small file arrives in one chunk: keep it rather than copy it.
            if data.isEmpty { data = chunk } else { data.append(chunk) }
        }
        return data
    }

    /// Downloads a file to a local path: into a temp file beside it, renamed into place once verified.
    ///
    /// A destination that exists and is not a regular file (`/dev/null`, a FIFO, a terminal) is written in place
    /// instead — never replaced — with bytes verified before the first one is written.
    @discardableResult
    public func get(_ path: String, toLocal localPath: String) throws -> EntryInfo {
        if let mode = fileType(localPath), mode != S_IFREG {
            guard mode != S_IFDIR else {
                throw DFSClientError.io("\(localPath) is a directory: name the file to write")
            }
            guard let handle = FileHandle(forWritingAtPath: localPath) else {
                throw DFSClientError.io("cannot open \(localPath) for writing")
            }
            defer { try? handle.close() }
            return try read(path) { try handle.write(contentsOf: $0) }
        }
        let temp = localPath + ".dfs-partial-\(ProcessInfo.processInfo.processIdentifier)"
        let fd = Glibc.open(temp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DFSClientError.io("cannot create \(temp)") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            // No fsync: a download is a copy (like curl -o); the rename only makes it appear whole. A bad replica
            // mid-way restarts the temp file from the next one.
            let entry = try read(path, range: nil, into: { try handle.write(contentsOf: $0) }) {
                try handle.truncate(atOffset: 0)
                try handle.seek(toOffset: 0)
            }
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
    func serveFromCache(_ entry: EntryInfo, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void) throws
        -> Bool
    {
        guard let cache, !entry.isDirectory, let fileId = entry.fileId, let version = entry.version,
            let sha256 = entry.sha256,
            let hit = cache.lookup(fileId: fileId, version: version, sha256: sha256, range: range)
        else { return false }
        try serve(hit, into: sink)
        return true
    }

    /// Hands a cache hit's bytes to `sink`.
    private func serve(_ hit: ClientCache.Hit, into sink: (Data) throws -> Void) throws {
        switch hit {
        case .bytes(let data):
            if !data.isEmpty { try sink(data) }
        case .file(let handle, var remaining):
            defer { try? handle.close() }
            let reader = LocalReader(descriptor: handle.fileDescriptor)
            while remaining > 0, case let chunk = try reader.read(upToCount: Int(min(1 << 20, remaining))), !chunk.isEmpty {
                try sink(chunk)
                remaining -= Int64(chunk.count)
            }
        }
    }

    /// Whether a file of this size is worth a cache copy: at most a quarter of the cache, so one big transfer
    /// neither evicts everything nor pays for a second full write of its bytes.
    func cacheable(_ size: Int64) -> Bool { size <= settings.cacheMaxBytes / 4 }

    // MARK: Transfer

    /// Streams the entry's version into `sink`, from the first replica that delivers it intact.
    ///
    /// A replica that cannot be reached is skipped; one that lacks the version or sends bytes whose sha256 does not
    /// match is skipped and reported to the directory, which repairs it. Whole reads never hand wrong bytes to the
    /// caller: they are staged (in the cache, or a temp file) and verified first, unless the caller can `restart`
    /// its sink (as `get` does with its temp file). Range reads cannot be verified; they are retried only while no
    /// byte has been delivered. (`fetch` sends whole reads of small files to `downloadSmall` instead.)
    private func download(
        _ entry: EntryInfo, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void,
        restart: (() throws -> Void)? = nil
    ) throws {
        let (fileId, version, replicas) = try located(entry)
        if range == nil, restart == nil {
            return try staged(entry, into: sink)
        }
        var lastError: Error?
        var delivered = false
        for replica in replicas {
            if delivered {
                guard let restart else { break }
                try restart()
                delivered = false
            }
            let copy = range == nil && cacheable(entry.size ?? 0) ? try? cache?.beginEntry() : nil
            do {
                try transferred(entry, from: replica, range: range) { chunk in
                    delivered = true
                    try sink(chunk)
                    try copy?.write(chunk)
                }
                if let sha256 = entry.sha256, range == nil {
                    try? copy?.commit(fileId: fileId, version: version, sha256: sha256)
                }
                return
            } catch {
                copy?.abort()
                lastError = error
            }
        }
        throw lastError
            ?? DFSClientError(status: nil, code: "unavailable", message: "no copy of \(entry.path) is readable")
    }

    /// A whole read staged through a verified local copy (the cache entry, or a temp file), then handed over.
    private func staged(_ entry: EntryInfo, into sink: (Data) throws -> Void) throws {
        if let cache, let fileId = entry.fileId, let version = entry.version, let sha256 = entry.sha256,
            cacheable(entry.size ?? 0)
        {
            var writer = try? cache.beginEntry()
            if writer != nil {
                try download(entry, range: nil, into: { try writer?.write($0) }) {
                    writer?.abort()
                    writer = try cache.beginEntry()
                }
                try writer?.commit(fileId: fileId, version: version, sha256: sha256)
                if let hit = cache.lookup(fileId: fileId, version: version, sha256: sha256, counting: false) {
                    return try serve(hit, into: sink)
                }
            }
        }
        let staging = try TempFile(in: settings.home + "/tmp")
        defer { staging.remove() }
        try download(entry, range: nil, into: { try staging.handle.write(contentsOf: $0) }) { try staging.truncate() }
        try staging.handle.seek(toOffset: 0)
        let file = try FileHandle(forReadingFrom: URL(fileURLWithPath: staging.path))
        defer { try? file.close() }
        let reader = LocalReader(descriptor: file.fileDescriptor)
        while case let chunk = try reader.read(upToCount: 1 << 20), !chunk.isEmpty { try sink(chunk) }
    }

    /// One GET from one replica, checked against the entry's sha256 for whole reads; bad or missing copies are
    /// reported to the directory.
    private func transferred(
        _ entry: EntryInfo, from replica: Replica, range: ClosedRange<Int64>?, into sink: (Data) throws -> Void
    ) throws {
        guard let fileId = entry.fileId, let version = entry.version else { return }
        // A range cannot be checked against the whole file's sha256: hash whole reads only.
        let hasher = range == nil ? BackgroundHasher() : nil
        var finished: String?
        defer { if finished == nil { _ = hasher?.finish() } }
        var headers: [HTTPHeader] = []
        if let range { headers.append(HTTPHeader("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        let response: HTTPResponse
        do {
            response = try withoutActuallyEscaping(sink) { sink in
                try transport.http.send(
                    method: "GET", url: "\(replica.url)/files/\(fileId)?version=\(version)", headers: headers
                ) { chunk in
                    hasher?.update(chunk)
                    try sink(chunk)
                }
            }
        } catch let error as CurlError {
            throw DFSClientError.unreachable("file server \(replica.fileServerId) at \(replica.url)", error.message)
        }
        if response.status == 404 {
            reportProblem(entry, replica, "missing")
        }
        try Transport.check(response)
        guard let hasher else { return }
        let digest = hasher.finish()
        finished = digest
        if let expected = entry.sha256, digest != expected {
            throw corrupt(entry, replica)
        }
    }

    /// Reports a replica's copy as corrupt; returns the error for the read.
    func corrupt(_ entry: EntryInfo, _ replica: Replica) -> DFSClientError {
        reportProblem(entry, replica, "corrupt")
        return DFSClientError(
            status: nil, code: "checksum_mismatch",
            message: "file server \(replica.fileServerId) sent bytes of \(entry.path) whose sha256 does not match")
    }

    /// The file id, version and replicas of a file entry.
    /// - Throws: `is_a_directory`, or `unavailable` when the directory names no copy.
    func located(_ entry: EntryInfo) throws -> (fileId: Int64, version: Int64, replicas: [Replica]) {
        guard !entry.isDirectory else {
            throw DFSClientError(status: nil, code: "is_a_directory", message: "\(entry.path) is a directory")
        }
        guard let fileId = entry.fileId, let version = entry.version, let replicas = entry.replicas,
            !replicas.isEmpty
        else {
            throw DFSClientError(status: nil, code: "unavailable", message: "no copy of \(entry.path) is reachable")
        }
        return (fileId, version, replicas)
    }

    /// Tells the directory a copy is bad or missing so that it is repaired; best effort.
    func reportProblem(_ entry: EntryInfo, _ replica: Replica, _ problem: String) {
        guard let fileId = entry.fileId, let version = entry.version, (try? authenticate()) != nil else { return }
        let report = ProblemReport(fileId: fileId, version: version, fileServerId: replica.fileServerId, problem: problem)
        _ = try? transport.call("POST", "/reports", body: report, as: OKResponse.self)
    }
}

/// The type bits (`S_IFREG`, `S_IFCHR`…) of what `path` names, following symlinks; nil when nothing is there.
private func fileType(_ path: String) -> mode_t? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return status.st_mode & S_IFMT
}

/// A private temp file, removed when done.
final class TempFile {
    let path: String
    let handle: FileHandle

    init(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/\(UUID().uuidString).part"
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forUpdatingAtPath: path)
        else { throw DFSClientError.io("cannot create \(path)") }
        self.handle = handle
    }

    func truncate() throws {
        try handle.truncate(atOffset: 0)
        try handle.seek(toOffset: 0)
    }

    func remove() {
        try? handle.close()
        unlink(path)
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
