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

    /// Remembers what the directory said about `path` just now.
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

    /// Forgets `path`'s attributes, so the next read asks the directory.
    public func forgetAttributes(path: String) {
        try? db.withLock { db in try db.run("DELETE FROM attributes WHERE path = ?", [.text(path)]) }
    }
}
