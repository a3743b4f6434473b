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

/// The client's disk cache: whole files keyed by file id and version, with their sha256, bounded by LRU eviction.
///
/// Layout under `directory`: `index.sqlite3` (entries, attribute cache, counters), `packs/<n>`,
/// `blobs/<file id>.<version>` and `tmp/` for entries being written. Entries up to `inlineLimit` bytes are written
/// behind in batches, each batch one *pack* file (the entries' bytes end to end) and one index transaction; their
/// sha256 is checked at every hit (cheap at that size). Bigger ones are files in `blobs/`, trusted while their size, mtime and inode match what was
/// recorded, else re-hashed. An entry whose bytes no longer match is dropped. Eviction is least recently used, a pack
/// at a time (its entries were filled together). Several processes may share one directory: blobs appear by atomic
/// rename, a pack before the index names it, and SQLite's file locking (WAL) serialises index updates; each lookup
/// or insert is one transaction. Never talks to the network.
public final class ClientCache: Sendable {
    /// Entries up to this size are kept in packs instead of as files in `blobs/`.
    public static let inlineLimit: Int64 = 64 << 10

    public let directory: String
    public let maxBytes: Int64
    /// The index connection; every use is one transaction (or one statement) under the lock.
    let db: Mutex<Database>
    /// Small entries and counts not yet in the index (write-behind, see `store`).
    let pending = Mutex(Pending())
    /// Attributes this process stored, by path (a bounded memo for `lastSeen`: emptied when full).
    let seen = Mutex<[String: CachedAttributes]>([:])
    /// Whether the index held any attributes when it was opened (else `lastSeen` need not ask it: see there).
    let attributesAtOpen: Bool

    /// What `store` queued: written to the index together, in one transaction, by `flush`.
    struct Pending: Sendable {
        struct Entry: Sendable {
            var fileId: Int64
            var version: Int64
            var sha256: String
            var data: Data
        }
        var entries: [Entry] = []
        /// Attributes seen with the entries, by path (see `store`).
        var attributes: [String: CachedAttributes] = [:]
        var bytes = 0
        var misses: Int64 = 0
        var hits: Int64 = 0
        var saved: Int64 = 0
        var isEmpty: Bool { entries.isEmpty && attributes.isEmpty && misses == 0 && hits == 0 }
    }

    /// A flush happens once this many small entries are queued, or a pack's worth of bytes (`packLimit`).
    public static let pendingEntries = 64
    static let pendingBytes = 1 << 20

    /// Opens the cache in `directory`, creating it if needed; a cache of an older layout is emptied first.
    public init(directory: String, maxBytes: Int64) throws {
        self.directory = directory
        self.maxBytes = maxBytes
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/blobs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/packs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        let db = try Self.openIndex(directory: directory)
        attributesAtOpen = (try? db.query("SELECT 1 FROM attributes LIMIT 1").isEmpty == false) ?? true
        self.db = Mutex(db)
    }

    deinit {
        try? flush()
    }

    // MARK: Lookup

    /// A cache hit: the requested bytes of a small entry, or an open file for a big one.
    public enum Hit {
        /// The bytes (of the range, if one was asked for), verified against the sha256.
        case bytes(Data)
        /// The entry's file, positioned at the start of the range, and how many bytes of it to read. The handle stays
        /// valid even if another process evicts the entry meanwhile; the caller closes it.
        case file(FileHandle, count: Int64)
    }

    /// Looks up a file version with the given sha256; nil on a miss.
    ///
    /// A hit marks the entry as used and counts it (as `hits`, and the bytes served as `bytes_saved`) in the same
    /// transaction as the lookup. Bytes that no longer match their sha256 are dropped and make a miss.
    /// - Parameters:
    ///   - range: The bytes wanted (clipped to the entry); nil for all of them.
    ///   - counting: false to leave the counters alone, e.g. when re-reading an entry just stored after a miss.
    public func lookup(
        fileId: Int64, version: Int64, sha256: String, range: ClosedRange<Int64>? = nil, counting: Bool = true
    ) -> Hit? {
        if let queued = pendingHit(fileId: fileId, version: version, sha256: sha256, range: range, counting: counting) {
            return queued
        }
        let key: [SQLValue] = [.integer(fileId), .integer(version)]
        // A miss (the usual case for a first read) costs one read, not a write transaction.
        let known = try? db.withLock { db in
            try db.query("SELECT sha256 FROM entries WHERE file_id = ? AND version = ?", key).first?.text(0)
        }
        guard known == sha256 else { return nil }
        let path = blobPath(fileId, version)
        let found = try? db.withLock { db in
            try db.transaction { () -> Found in
                guard
                    let row = try db.query(
                        "SELECT sha256, size, stat, pack, pack_offset FROM entries WHERE file_id = ? AND version = ?",
                        key
                    ).first, row.text(0) == sha256, let size = row.int(1)
                else { return .miss }
                let span = Self.span(of: range, size: size)
                if let pack = row.int(3) {
                    let data = readPack(pack, offset: row.int(4) ?? 0, count: size)
                    guard let data, Int64(data.count) == size, Self.sha256(of: data) == sha256 else {
                        try db.run("DELETE FROM entries WHERE file_id = ? AND version = ?", key)
                        // Unlinked before the commit: should the commit fail, the entry finds no pack and goes then.
                        removePacks(try Self.takeDeadPacks(db))
                        return .miss
                    }
                    try Self.markUsed(db, key, saved: counting ? span.count : nil)
                    return .hit(.bytes(data.subdata(in: Int(span.offset)..<Int(span.offset + span.count))))
                }
                guard let handle = FileHandle(forReadingAtPath: path) else {
                    try db.run("DELETE FROM entries WHERE file_id = ? AND version = ?", key)
                    return .miss
                }
                guard Self.statSignature(handle.fileDescriptor) == row.text(2) else {
                    // Re-hashing a big file is left until the index is unlocked.
                    return .changed(handle, span)
                }
                try Self.markUsed(db, key, saved: counting ? span.count : nil)
                try handle.seek(toOffset: UInt64(span.offset))
                return .hit(.file(handle, count: span.count))
            }
        }
        switch found {
        case .hit(let hit): return hit
        case .changed(let handle, let span): return revalidated(handle, path, key, sha256, span, counting: counting)
        case .miss, nil: return nil
        }
    }

    /// A hit among the entries `store` queued and not yet flushed.
    private func pendingHit(
        fileId: Int64, version: Int64, sha256: String, range: ClosedRange<Int64>?, counting: Bool
    ) -> Hit? {
        pending.withLock { pending in
            guard let index = pending.entries.lastIndex(where: { $0.fileId == fileId && $0.version == version }),
                pending.entries[index].sha256 == sha256
            else { return nil }
            // Used now: queued last, it is written as the most recently used of the batch.
            let entry = pending.entries.remove(at: index)
            pending.entries.append(entry)
            let span = Self.span(of: range, size: Int64(entry.data.count))
            if counting {
                pending.hits += 1
                pending.saved += span.count
            }
            return .bytes(entry.data.subdata(in: Int(span.offset)..<Int(span.offset + span.count)))
        }
    }

    /// What the lookup transaction found.
    private enum Found {
        case miss
        case hit(Hit)
        /// A blob file whose stat signature changed since it was cached.
        case changed(FileHandle, (offset: Int64, count: Int64))
    }

    /// A blob file changed on disk since it was cached: trusted only if its bytes still hash right.
    private func revalidated(
        _ handle: FileHandle, _ path: String, _ key: [SQLValue], _ sha256: String,
        _ span: (offset: Int64, count: Int64), counting: Bool
    ) -> Hit? {
        guard let actual = try? Self.sha256(of: handle), actual == sha256 else {
            try? handle.close()
            try? db.withLock { db in try db.run("DELETE FROM entries WHERE file_id = ? AND version = ?", key) }
            unlink(path)
            return nil
        }
        let signature = Self.statSignature(handle.fileDescriptor)
        // The bytes are verified: serve them even if the index cannot be updated now.
        try? db.withLock { db in
            try db.transaction {
                try db.run(
                    "UPDATE entries SET stat = ? WHERE file_id = ? AND version = ?", [.text(signature)] + key)
                try Self.markUsed(db, key, saved: counting ? span.count : nil)
            }
        }
        guard (try? handle.seek(toOffset: UInt64(span.offset))) != nil else {
            try? handle.close()
            return nil
        }
        return .file(handle, count: span.count)
    }

    /// Counts a read served from the cache (`bytes` not transferred) or one that had to fetch.
    public func record(hit: Bool, bytes: Int64 = 0) {
        try? db.withLock { db in
            try db.transaction {
                try Self.bump(db, hit ? "hits" : "misses", by: 1)
                if hit { try Self.bump(db, "bytes_saved", by: bytes) }
            }
        }
    }

    // MARK: Insertion

    /// Starts a new entry. Its bytes stay in memory up to `inlineLimit`, then go to a temp file until `commit`.
    public func beginEntry() throws -> CacheEntryWriter {
        CacheEntryWriter(cache: self)
    }

    /// Stores a file version whose bytes are in memory, and evicts what no longer fits.
    ///
    /// Small entries (up to `inlineLimit`) are queued and written `pendingEntries` at a time (write-behind), as one
    /// pack file and one index transaction: a fill then costs a copy in memory — measured, the cache fill was half
    /// of a client's CPU on 4 KiB reads, and 4 KiB rows in the index still cost 3× what a pack does. Lookups of this
    /// `ClientCache` see queued entries at once;
    /// other processes sharing the directory see them after `flush` (called when the queue is full, by `stats`,
    /// and when the cache is released). A process that dies first only loses cache copies.
    ///
    /// The bytes are not hashed here: the caller has verified them, and inline entries are checked at every hit.
    /// Entries bigger than `inlineLimit` go through a `CacheEntryWriter` (and are hashed).
    /// - Parameters:
    ///   - countingMiss: also count a miss (the read that fetched these bytes), written with the entry.
    ///   - path: the path the directory just named this version for: its attributes are remembered with the entry
    ///     (see `lastSeen`).
    public func store(
        fileId: Int64, version: Int64, sha256: String, data: Data, countingMiss: Bool = false, path: String? = nil
    ) throws {
        guard Int64(data.count) <= Self.inlineLimit else {
            let writer = try beginEntry()
            try writer.write(data)
            try writer.commit(fileId: fileId, version: version, sha256: sha256, countingMiss: countingMiss)
            if let path {
                storeAttributes(path: path, fileId: fileId, version: version, sha256: sha256, size: Int64(data.count))
            }
            return
        }
        let full = pending.withLock { pending -> Bool in
            pending.entries.removeAll { $0.fileId == fileId && $0.version == version }
            pending.entries.append(.init(fileId: fileId, version: version, sha256: sha256, data: data))
            if let path {
                let seen = CachedAttributes(
                    fileId: fileId, version: version, sha256: sha256, size: Int64(data.count), fetchedMs: Self.nowMs())
                pending.attributes[path] = seen
                remember(path, seen)
            }
            pending.bytes += data.count
            if countingMiss { pending.misses += 1 }
            return pending.entries.count >= Self.pendingEntries || Int64(pending.bytes) >= packLimit
        }
        if full { try flush() }
    }

    /// Writes the queued small entries (as packs) and counts to the index, in one transaction.
    public func flush() throws {
        let batch = pending.withLock { pending -> Pending in
            defer { pending = Pending() }
            return pending
        }
        guard !batch.isEmpty else { return }
        let (victims, deadPacks) = try db.withLock { db in
            try db.transaction { () -> ([String], [Int64]) in
                if batch.misses > 0 { try Self.bump(db, "misses", by: batch.misses) }
                if batch.hits > 0 {
                    try Self.bump(db, "hits", by: batch.hits)
                    try Self.bump(db, "bytes_saved", by: batch.saved)
                }
                var written: Set<String> = []
                let fitting = batch.entries.filter { Int64($0.data.count) <= maxBytes }
                for group in Self.packs(of: fitting, limit: packLimit) {
                    // The id is taken under the index's write lock, so no other process writes this pack; the file
                    // is complete before the transaction that names it commits (an id rolled back is reused, and
                    // its file overwritten).
                    let id = try db.query(
                        "INSERT INTO packs(size) VALUES (?) RETURNING id",
                        [.integer(group.reduce(0) { $0 + Int64($1.data.count) })]
                    ).first?.int(0) ?? 0
                    try writePack(id, group)
                    var offset: Int64 = 0
                    for entry in group {
                        try Self.insertRow(
                            db, fileId: entry.fileId, version: entry.version, sha256: entry.sha256,
                            size: Int64(entry.data.count), pack: id, offset: offset, signature: "")
                        offset += Int64(entry.data.count)
                    }
                    written.insert(Self.packKey(id))
                }
                for (path, seen) in batch.attributes {
                    try Self.insertAttributes(db, path: path, seen)
                }
                let victims = try evict(db, keep: written)
                return (victims, try Self.takeDeadPacks(db))
            }
        }
        for key in victims { unlink(directory + "/blobs/" + key) }
        removePacks(deadPacks)
    }

    /// The most bytes in one pack: a pack is evicted whole, so a small cache gets small packs.
    var packLimit: Int64 { max(1, min(Int64(Self.pendingBytes), maxBytes / 8)) }

    /// `entries` cut into packs of at most `limit` bytes (an entry bigger than that makes a pack alone), in order.
    static func packs(of entries: [Pending.Entry], limit: Int64) -> [[Pending.Entry]] {
        var packs: [[Pending.Entry]] = []
        var current: [Pending.Entry] = []
        var bytes: Int64 = 0
        for entry in entries {
            let size = Int64(entry.data.count)
            if !current.isEmpty, bytes + size > limit {
                packs.append(current)
                current = []
                bytes = 0
            }
            current.append(entry)
            bytes += size
        }
        if !current.isEmpty { packs.append(current) }
        return packs
    }

    /// Writes pack `id`: the entries' bytes end to end, in one write and without fsync (see `openIndex`; Data.write
    /// would fsync).
    private func writePack(_ id: Int64, _ entries: [Pending.Entry]) throws {
        var bytes = Data(capacity: entries.reduce(0) { $0 + $1.data.count })
        for entry in entries { bytes.append(entry.data) }
        let fd = open(packPath(id), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CacheError("cannot create the cache pack \(packPath(id)): errno \(errno)") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw CacheError("cannot write the cache pack \(packPath(id)): \(error)")
        }
    }

    /// `count` bytes of pack `id` from `offset`; nil when the pack cannot be read.
    private func readPack(_ id: Int64, offset: Int64, count: Int64) -> Data? {
        guard let handle = FileHandle(forReadingAtPath: packPath(id)) else { return nil }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: UInt64(offset))) != nil else { return nil }
        return count == 0 ? Data() : try? handle.read(upToCount: Int(count))
    }

    func packPath(_ id: Int64) -> String { directory + "/packs/\(id)" }

    /// An eviction unit's key for a pack (a blob's is `<file id>.<version>`).
    static func packKey(_ id: Int64) -> String { "pack:\(id)" }

    /// Moves a finished temp file into place and records it.
    func install(tempPath: String, fileId: Int64, version: Int64, sha256: String, size: Int64, countingMiss: Bool)
        throws
    {
        guard size <= maxBytes else {
            unlink(tempPath)
            if countingMiss { record(hit: false) }
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
        try insertBlob(
            fileId: fileId, version: version, sha256: sha256, size: size, signature: signature ?? "",
            countingMiss: countingMiss)
    }

    /// Records a blob entry, counts the miss if asked, and evicts the least recently used entries beyond
    /// `maxBytes`: one transaction.
    private func insertBlob(
        fileId: Int64, version: Int64, sha256: String, size: Int64, signature: String, countingMiss: Bool
    ) throws {
        let keep = size <= maxBytes
        let (victims, deadPacks) = try db.withLock { db in
            try db.transaction { () -> ([String], [Int64]) in
                if countingMiss { try Self.bump(db, "misses", by: 1) }
                guard keep else { return ([], []) }
                try Self.insertRow(
                    db, fileId: fileId, version: version, sha256: sha256, size: size, pack: nil, offset: nil,
                    signature: signature)
                let victims = try evict(db, keep: ["\(fileId).\(version)"])
                return (victims, try Self.takeDeadPacks(db))
            }
        }
        for key in victims { unlink(directory + "/blobs/" + key) }
        removePacks(deadPacks)
    }

    /// Inserts or replaces one entry (in pack `pack` at `offset`, or a blob file when `pack` is nil).
    private static func insertRow(
        _ db: Database, fileId: Int64, version: Int64, sha256: String, size: Int64, pack: Int64?, offset: Int64?,
        signature: String
    ) throws {
        try db.run(
            """
            INSERT INTO entries(file_id, version, sha256, size, last_used, stat, pack, pack_offset)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(file_id, version) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                last_used = excluded.last_used, stat = excluded.stat, pack = excluded.pack,
                pack_offset = excluded.pack_offset
            """,
            [.integer(fileId), .integer(version), .text(sha256), .integer(size), .integer(nowUs()),
             .text(signature), pack.map(SQLValue.integer) ?? .null, offset.map(SQLValue.integer) ?? .null])
    }

    /// Deletes the least recently used entries until the total fits `maxBytes`; returns the victims that were blob
    /// files. A pack goes whole, with all its entries (the triggers then note it in `dead_packs`); it counts as used
    /// when its least recently used entry was.
    private func evict(_ db: Database, keep: Set<String>) throws -> [String] {
        let total = try Self.counter(db, "bytes")
        guard total > maxBytes else { return [] }
        // Only the least recently used entries can be victims: look at the oldest few, not the whole index.
        var units: [String: LRUPolicy.Entry] = [:]
        for row in try db.query(
            "SELECT file_id, version, size, last_used, pack FROM entries ORDER BY last_used LIMIT 512")
        {
            if let pack = row.int(4) {
                let key = Self.packKey(pack)
                guard units[key] == nil else { continue }  // seen at its oldest use already
                let size = try db.query("SELECT size FROM packs WHERE id = ?", [.integer(pack)]).first?.int(0) ?? 0
                units[key] = LRUPolicy.Entry(key: key, size: size, lastUsed: row.int(3) ?? 0)
            } else {
                let key = "\(row.int(0) ?? 0).\(row.int(1) ?? 0)"
                units[key] = LRUPolicy.Entry(key: key, size: row.int(2) ?? 0, lastUsed: row.int(3) ?? 0)
            }
        }
        let candidates = Array(units.values)
        let rest = total - candidates.reduce(0) { $0 + $1.size }
        var files: [String] = []
        for key in LRUPolicy.victims(candidates, maxBytes: max(0, maxBytes - rest), keep: keep) {
            if key.hasPrefix("pack:"), let id = Int64(key.dropFirst(5)) {
                try db.run("DELETE FROM entries WHERE pack = ?", [.integer(id)])
            } else {
                let parts = key.split(separator: ".").compactMap { Int64($0) }
                try db.run(
                    "DELETE FROM entries WHERE file_id = ? AND version = ?", [.integer(parts[0]), .integer(parts[1])])
                files.append(key)
            }
        }
        return files
    }

    // MARK: Internals

    func blobPath(_ fileId: Int64, _ version: Int64) -> String { directory + "/blobs/\(fileId).\(version)" }

    /// Touches an entry (LRU) and, unless `saved` is nil, counts a hit that saved that many bytes.
    private static func markUsed(_ db: Database, _ key: [SQLValue], saved: Int64?) throws {
        try db.run("UPDATE entries SET last_used = ? WHERE file_id = ? AND version = ?", [.integer(nowUs())] + key)
        guard let saved else { return }
        try bump(db, "hits", by: 1)
        try bump(db, "bytes_saved", by: saved)
    }

    /// Offset and length of `range` within an entry of `size` bytes (all of it for nil).
    static func span(of range: ClosedRange<Int64>?, size: Int64) -> (offset: Int64, count: Int64) {
        guard let range else { return (0, size) }
        let offset = min(max(0, range.lowerBound), size)
        return (offset, max(0, min(range.upperBound + 1, size) - offset))
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

    static func sha256(of data: Data) -> String { hex(SHA256.hash(data: data)) }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
    static func nowUs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

public struct CacheError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Lowercase hex of a digest. (ClientCache depends on no dfs target, so it does not share DFSProtocol's encoder.)
func hex(_ digest: SHA256.Digest) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(2 * SHA256.byteCount)
    for byte in digest {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
