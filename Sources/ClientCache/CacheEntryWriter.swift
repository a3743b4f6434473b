import Crypto
import Foundation
import Glibc

/// A cache entry being written; `commit` publishes it, `abort` throws it away.
///
/// Bytes stay in memory while the entry fits `ClientCache.inlineLimit` (it is then queued for a pack, as by
/// `ClientCache.store`); past that they go to a temp file in `tmp/`, moved into `blobs/` at commit.
public final class CacheEntryWriter {
    private let cache: ClientCache
    private var buffer = Data()
    private var file: (path: String, handle: FileHandle)?
    private var hasher = SHA256()
    private var size: Int64 = 0
    private var done = false

    init(cache: ClientCache) {
        self.cache = cache
    }

    deinit { abort() }

    /// Appends bytes to the entry.
    /// - Throws: `CacheError` if the temp file cannot be created, or the write error.
    public func write(_ data: Data) throws {
        hasher.update(data: data)
        size += Int64(data.count)
        if file == nil, size <= ClientCache.inlineLimit {
            buffer.append(data)
            return
        }
        let handle = try file?.handle ?? spill()
        try handle.write(contentsOf: data)
    }

    /// Moves the bytes kept so far into a new temp file, which takes the rest.
    private func spill() throws -> FileHandle {
        let path = cache.directory + "/tmp/\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: path, contents: buffer),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw CacheError("cannot create \(path)") }
        file = (path, handle)
        buffer = Data()
        try handle.seekToEnd()
        return handle
    }

    /// Publishes the entry if its bytes hash to `sha256`; otherwise drops it.
    /// - Parameter countingMiss: also count a miss (the read that fetched these bytes), in the same transaction.
    /// - Throws: `CacheError` on a checksum mismatch or when the entry cannot be moved into place; `SQLiteError`.
    public func commit(fileId: Int64, version: Int64, sha256: String, countingMiss: Bool = false) throws {
        guard !done else { return }
        done = true
        try file?.handle.close()
        guard hex(hasher.finalize()) == sha256 else {
            if let file { unlink(file.path) }
            throw CacheError("cache entry bytes do not match sha256 \(sha256)")
        }
        if let file {
            try cache.install(
                tempPath: file.path, fileId: fileId, version: version, sha256: sha256, size: size,
                countingMiss: countingMiss)
        } else {
            try cache.store(fileId: fileId, version: version, sha256: sha256, data: buffer, countingMiss: countingMiss)
        }
    }

    /// Throws the entry away (a no-op after `commit`).
    public func abort() {
        guard !done else { return }
        done = true
        buffer = Data()
        guard let file else { return }
        try? file.handle.close()
        unlink(file.path)
    }
}
