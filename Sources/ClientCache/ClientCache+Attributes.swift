import Foundation
import SQLite

/// A file's attributes as last seen at the directory (the NFS attribute cache).
public struct CachedAttributes: Sendable, Equatable {
    public var fileId: Int64
    public var version: Int64
    public var sha256: String
    public var size: Int64
    public var fetchedMs: Int64
}

/// The NFS-style attribute cache: a file's id, version, sha256 and size as last seen at the directory, by path.
extension ClientCache {
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

    /// The attributes of `path` as last seen, however long ago: the version a read can name in `If-None-Match`, so
    /// that the directory sends no bytes the cache has.
    ///
    /// Only an optimisation, so it may miss: a cache whose index held no attributes when it was opened is not
    /// asked again (a query per read, a tenth of a small read's CPU); what this process stored is remembered in
    /// memory instead, and another process's sightings since are not seen (the directory then sends the bytes).
    public func lastSeen(_ path: String) -> CachedAttributes? {
        if let known = seen.withLock({ $0[path] }) { return known }
        guard attributesAtOpen else { return nil }
        return attributes(of: path, maxAgeMs: Int64.max)
    }

    /// Notes what this process stored for `lastSeen` (or forgets it, with nil).
    func remember(_ path: String, _ attributes: CachedAttributes?) {
        seen.withLock { seen in
            if attributes != nil, seen.count >= Self.seenLimit { seen.removeAll(keepingCapacity: true) }
            seen[path] = attributes
        }
    }

    /// The most paths `seen` keeps.
    static let seenLimit = 4096

    /// Remembers what the directory said about `path` just now.
    public func storeAttributes(path: String, fileId: Int64, version: Int64, sha256: String, size: Int64) {
        let seen = CachedAttributes(fileId: fileId, version: version, sha256: sha256, size: size, fetchedMs: Self.nowMs())
        try? db.withLock { db in
            try db.transaction {
                // A queued older sighting must not overwrite this one when the queue is flushed.
                pending.withLock { _ = $0.attributes.removeValue(forKey: path) }
                try Self.insertAttributes(db, path: path, seen)
                remember(path, seen)
            }
        }
    }

    static func insertAttributes(_ db: Database, path: String, _ seen: CachedAttributes) throws {
        try db.run(
            """
            INSERT OR REPLACE INTO attributes(path, file_id, version, sha256, size, fetched_ms)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            [.text(path), .integer(seen.fileId), .integer(seen.version), .text(seen.sha256), .integer(seen.size),
             .integer(seen.fetchedMs)])
    }

    /// Forgets `path`'s attributes, so the next read asks the directory.
    public func forgetAttributes(path: String) {
        pending.withLock { _ = $0.attributes.removeValue(forKey: path) }
        remember(path, nil)
        try? db.withLock { db in try db.run("DELETE FROM attributes WHERE path = ?", [.text(path)]) }
    }
}
