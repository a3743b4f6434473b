import Crypto
import Foundation
import Glibc
import SQLite
import Synchronization

/// What `dfs cache stats` shows.
public struct CacheStats: Codable, Sendable, Equatable {
    public var entries: Int64
    public var bytes: Int64
    public var maxBytes: Int64
    public var hits: Int64
    public var misses: Int64
    public var bytesSaved: Int64

    public init(entries: Int64, bytes: Int64, maxBytes: Int64, hits: Int64, misses: Int64, bytesSaved: Int64) {
        self.entries = entries
        self.bytes = bytes
        self.maxBytes = maxBytes
        self.hits = hits
        self.misses = misses
        self.bytesSaved = bytesSaved
    }
}

/// A file's attributes as last seen at the directory (the NFS attribute cache).
public struct CachedAttributes: Sendable, Equatable {
    public var fileId: Int64
    public var version: Int64
    public var sha256: String
    public var size: Int64
    public var fetchedMs: Int64
}

/// The client's disk cache: whole files keyed by file id and version, with their sha256, bounded by LRU eviction.
///
/// Layout under `directory`: `blobs/<file id>.<version>`, `tmp/` for entries being written, and `index.sqlite3`
/// (entries, attribute cache, counters). Several processes may share one directory: blobs appear by atomic rename,
/// and SQLite's file locking serialises index updates. An entry whose bytes changed on disk (checked by size,
/// mtime and inode, then by sha256) is dropped. Never talks to the network.
public final class ClientCache: Sendable {
    public let directory: String
    public let maxBytes: Int64
    private let db: Mutex<Database>

    public init(directory: String, maxBytes: Int64) throws {
        self.directory = directory
        self.maxBytes = maxBytes
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/blobs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        self.db = Mutex(try Self.openIndex(directory + "/index.sqlite3"))
    }

    /// Opens (and on first use creates) the index. Processes starting together on a new cache can find it busy
    /// while another one switches it to WAL; they retry for up to about a second.
    private static func openIndex(_ path: String) throws -> Database {
        var attempt = 0
        while true {
            do {
                let db = try Database(path: path)
                try createSchema(db)
                return db
            } catch let error as SQLiteError where error.isBusy && attempt < 50 {
                attempt += 1
                usleep(20_000)
            }
        }
    }

    private static func createSchema(_ db: Database) throws {
        if try db.query("PRAGMA journal_mode").first?.text(0) != "wal" {
            try db.execute("PRAGMA journal_mode = WAL")
        }
        try db.execute(
            """
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS entries(
                file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                last_used INTEGER NOT NULL, stat TEXT NOT NULL, PRIMARY KEY(file_id, version));
            CREATE TABLE IF NOT EXISTS attributes(
                path TEXT PRIMARY KEY, file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL,
                size INTEGER NOT NULL, fetched_ms INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS entries_by_use ON entries(last_used);
            """)
    }

    // MARK: Lookup

    /// Opens the cached copy of a file version, verified against its sha256; nil on a miss.
    ///
    /// The returned handle stays valid even if another process evicts the entry meanwhile.
    public func open(fileId: Int64, version: Int64, sha256: String) -> FileHandle? {
        let recorded = try? db.withLock { db in
            try db.query(
                "SELECT sha256, stat FROM entries WHERE file_id = ? AND version = ?", [.integer(fileId), .integer(version)]
            ).first
        }
        guard let row = recorded ?? nil, row.text(0) == sha256 else { return nil }
        let path = blobPath(fileId, version)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            forget(fileId, version)
            return nil
        }
        if Self.statSignature(handle.fileDescriptor) != row.text(1) {
            // Changed on disk since it was cached: trust it only if the bytes still hash right.
            guard let actual = try? Self.sha256(of: handle), actual == sha256 else {
                try? handle.close()
                forget(fileId, version)
                unlink(path)
                return nil
            }
            try? handle.seek(toOffset: 0)
            let signature = Self.statSignature(handle.fileDescriptor)
            try? db.withLock { db in
                try db.run(
                    "UPDATE entries SET stat = ? WHERE file_id = ? AND version = ?",
                    [.text(signature), .integer(fileId), .integer(version)])
            }
        }
        touch(fileId, version)
        return handle
    }

    /// Counts a read served from the cache (`bytes` not transferred) or one that had to fetch.
    public func record(hit: Bool, bytes: Int64 = 0) {
        try? db.withLock { db in
            try Self.bump(db, hit ? "hits" : "misses", by: 1)
            if hit { try Self.bump(db, "bytes_saved", by: bytes) }
        }
    }

    // MARK: Insertion

    /// Starts a new entry: bytes go to a temp file until `commit`.
    public func beginEntry() throws -> CacheEntryWriter {
        let temp = directory + "/tmp/\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: temp, contents: nil),
            let handle = FileHandle(forWritingAtPath: temp)
        else { throw CacheError("cannot create \(temp)") }
        return CacheEntryWriter(cache: self, tempPath: temp, handle: handle)
    }

    /// Moves a finished temp file into place, records it, and evicts what no longer fits.
    func install(tempPath: String, fileId: Int64, version: Int64, sha256: String, size: Int64) throws {
        guard size <= maxBytes else {
            unlink(tempPath)
            return
        }
        let final = blobPath(fileId, version)
        guard rename(tempPath, final) == 0 else {
            unlink(tempPath)
            throw CacheError("cannot move a cache entry into place")
        }
        let signature = FileHandle(forReadingAtPath: final).map { handle in
            defer { try? handle.close() }
            return Self.statSignature(handle.fileDescriptor)
        }
        let victims = try db.withLock { db in
            try db.transaction {
                try db.run(
                    """
                    INSERT OR REPLACE INTO entries(file_id, version, sha256, size, last_used, stat)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                    [.integer(fileId), .integer(version), .text(sha256), .integer(size), .integer(Self.nowUs()),
                     .text(signature ?? "")])
                let total = try db.query("SELECT COALESCE(SUM(size), 0) FROM entries").first?.int(0) ?? 0
                guard total > maxBytes else { return [String]() }
                // Only the least recently used entries can be victims: look at the oldest few, not the whole index.
                let oldest = try db.query(
                    "SELECT file_id, version, size, last_used FROM entries ORDER BY last_used LIMIT 512"
                ).map {
                    LRUPolicy.Entry(
                        key: "\($0.int(0) ?? 0).\($0.int(1) ?? 0)", size: $0.int(2) ?? 0, lastUsed: $0.int(3) ?? 0)
                }
                let rest = total - oldest.reduce(0) { $0 + $1.size }
                let victims = LRUPolicy.victims(
                    oldest, maxBytes: max(0, maxBytes - rest), keep: ["\(fileId).\(version)"])
                for key in victims {
                    let parts = key.split(separator: ".").compactMap { Int64($0) }
                    try db.run(
                        "DELETE FROM entries WHERE file_id = ? AND version = ?", [.integer(parts[0]), .integer(parts[1])])
                }
                return victims
            }
        }
        for key in victims { unlink(directory + "/blobs/" + key) }
    }

    // MARK: Attribute cache

    /// The attributes of `path` if they were fetched within `maxAgeMs`.
    public func attributes(of path: String, maxAgeMs: Int64) -> CachedAttributes? {
        guard maxAgeMs > 0 else { return nil }
        let row = try? db.withLock { db in
            try db.query(
                "SELECT file_id, version, sha256, size, fetched_ms FROM attributes WHERE path = ?", [.text(path)]
            ).first
        }
        guard let row = row ?? nil, let fetched = row.int(4), Self.nowMs() - fetched < maxAgeMs else { return nil }
        return CachedAttributes(
            fileId: row.int(0) ?? 0, version: row.int(1) ?? 0, sha256: row.text(2) ?? "", size: row.int(3) ?? 0,
            fetchedMs: fetched)
    }

    public func storeAttributes(path: String, fileId: Int64, version: Int64, sha256: String, size: Int64) {
        try? db.withLock { db in
            try db.run(
                """
                INSERT OR REPLACE INTO attributes(path, file_id, version, sha256, size, fetched_ms)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                [.text(path), .integer(fileId), .integer(version), .text(sha256), .integer(size), .integer(Self.nowMs())])
        }
    }

    public func forgetAttributes(path: String) {
        try? db.withLock { db in try db.run("DELETE FROM attributes WHERE path = ?", [.text(path)]) }
    }

    // MARK: Maintenance

    public func stats() throws -> CacheStats {
        try db.withLock { db in
            let totals = try db.query("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").first
            func counter(_ name: String) throws -> Int64 {
                try db.query("SELECT value FROM counters WHERE name = ?", [.text(name)]).first?.int(0) ?? 0
            }
            return CacheStats(
                entries: totals?.int(0) ?? 0, bytes: totals?.int(1) ?? 0, maxBytes: maxBytes, hits: try counter("hits"),
                misses: try counter("misses"), bytesSaved: try counter("bytes_saved"))
        }
    }

    /// Drops every entry, the attribute cache and the counters.
    public func clear() throws {
        let keys = try db.withLock { db in
            try db.transaction {
                let keys = try db.query("SELECT file_id, version FROM entries").map { "\($0.int(0) ?? 0).\($0.int(1) ?? 0)" }
                try db.execute("DELETE FROM entries; DELETE FROM attributes; DELETE FROM counters;")
                return keys
            }
        }
        for key in keys { unlink(directory + "/blobs/" + key) }
    }

    // MARK: Internals

    func blobPath(_ fileId: Int64, _ version: Int64) -> String { directory + "/blobs/\(fileId).\(version)" }

    private func touch(_ fileId: Int64, _ version: Int64) {
        try? db.withLock { db in
            try db.run(
                "UPDATE entries SET last_used = ? WHERE file_id = ? AND version = ?",
                [.integer(Self.nowUs()), .integer(fileId), .integer(version)])
        }
    }

    private func forget(_ fileId: Int64, _ version: Int64) {
        try? db.withLock { db in
            try db.run("DELETE FROM entries WHERE file_id = ? AND version = ?", [.integer(fileId), .integer(version)])
        }
    }

    private static func bump(_ db: Database, _ name: String, by amount: Int64) throws {
        try db.run(
            "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            [.text(name), .integer(amount)])
    }

    /// Size, modification time and inode: what must stay the same for an entry to be trusted without rehashing.
    static func statSignature(_ fd: Int32) -> String {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return "" }
        return "\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ino)"
    }

    static func sha256(of handle: FileHandle) throws -> String {
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
    static func nowUs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// A cache entry being written; `commit` publishes it, `abort` throws it away.
public final class CacheEntryWriter {
    private let cache: ClientCache
    private let tempPath: String
    private let handle: FileHandle
    private var hasher = SHA256()
    private var size: Int64 = 0
    private var done = false

    init(cache: ClientCache, tempPath: String, handle: FileHandle) {
        self.cache = cache
        self.tempPath = tempPath
        self.handle = handle
    }

    deinit { abort() }

    public func write(_ data: Data) throws {
        try handle.write(contentsOf: data)
        hasher.update(data: data)
        size += Int64(data.count)
    }

    /// Publishes the entry if its bytes hash to `sha256`; otherwise drops it.
    public func commit(fileId: Int64, version: Int64, sha256: String) throws {
        guard !done else { return }
        done = true
        try handle.close()
        let actual = hex(hasher.finalize())
        guard actual == sha256 else {
            unlink(tempPath)
            throw CacheError("cache entry bytes do not match sha256 \(sha256)")
        }
        try cache.install(tempPath: tempPath, fileId: fileId, version: version, sha256: sha256, size: size)
    }

    public func abort() {
        guard !done else { return }
        done = true
        try? handle.close()
        unlink(tempPath)
    }
}

public struct CacheError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Lowercase hex of a digest.
private func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }
