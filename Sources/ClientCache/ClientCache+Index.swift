import Foundation
import Glibc
import SQLite

extension ClientCache {
    /// The index layout this code reads and writes, kept in `PRAGMA user_version`. A cache with any other version
    /// (older caches have none) is reset when opened: it is only a cache.
    static let schemaVersion: Int64 = 2

    /// Opens (and on first use creates) the index. Processes starting together on a new cache can find it busy
    /// while another one switches it to WAL or resets it; they retry for up to about a second.
    ///
    /// The index is written without fsync (`synchronous = OFF`: it is only a cache, and every hit is checked against
    /// its sha256), so a power loss can leave it damaged: a damaged index is deleted, with the blobs, and made anew.
    static func openIndex(directory: String) throws -> Database {
        var attempt = 0
        var reset = false
        while true {
            do {
                let db = try Database(path: directory + "/index.sqlite3")
                try prepareSchema(db, directory: directory)
                return db
            } catch let error as SQLiteError where error.isBusy && attempt < 50 {
                attempt += 1
                usleep(20_000)
            } catch let error as SQLiteError where error.isCorrupt && !reset {
                reset = true
                for suffix in ["", "-wal", "-shm"] { unlink(directory + "/index.sqlite3" + suffix) }
                removeFiles(in: directory + "/blobs")
            }
        }
    }

    /// Deletes the files in `path` (not the directory itself).
    static func removeFiles(in path: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { unlink(path + "/" + name) }
    }

    private static func prepareSchema(_ db: Database, directory: String) throws {
        if try db.query("PRAGMA journal_mode").first?.text(0) != "wal" {
            try db.execute("PRAGMA journal_mode = WAL")
        }
        // Only a cache: no fsync (a write-behind batch, and each checkpoint, used to fsync). See `openIndex`.
        try db.execute("PRAGMA synchronous = OFF")
        guard try userVersion(db) != schemaVersion else { return }
        try db.transaction {
            // Another process may have reset it since the check above: look again under the write lock.
            guard try userVersion(db) != schemaVersion else { return }
            try db.execute(
                """
                DROP TABLE IF EXISTS entries;
                DROP TABLE IF EXISTS attributes;
                DROP TABLE IF EXISTS counters;
                \(schema)
                PRAGMA user_version = \(schemaVersion);
                """)
            // Still under the write lock, so no process on the new layout has published a blob yet.
            for folder in ["blobs", "tmp"] { removeFiles(in: directory + "/" + folder) }
        }
    }

    private static func userVersion(_ db: Database) throws -> Int64 {
        try db.query("PRAGMA user_version").first?.int(0) ?? 0
    }

    /// Entries hold their bytes in `data` up to `inlineLimit`, else NULL (the bytes are in `blobs/`, and `stat` is
    /// the file's signature). The triggers keep the total size in `counters('bytes')` within the same transaction
    /// as every insert, replacement and delete, so bounding the cache never sums the table.
    private static let schema = """
        CREATE TABLE entries(
            file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
            last_used INTEGER NOT NULL, stat TEXT NOT NULL, data BLOB, PRIMARY KEY(file_id, version));
        CREATE INDEX entries_by_use ON entries(last_used);
        CREATE TABLE attributes(
            path TEXT PRIMARY KEY, file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL,
            size INTEGER NOT NULL, fetched_ms INTEGER NOT NULL);
        CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters(name, value) VALUES ('bytes', 0);
        CREATE TRIGGER entries_added AFTER INSERT ON entries BEGIN
            UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
        END;
        CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
            UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
        END;
        CREATE TRIGGER entries_resized AFTER UPDATE OF size ON entries BEGIN
            UPDATE counters SET value = value - OLD.size + NEW.size WHERE name = 'bytes';
        END;
        """

    // MARK: Maintenance

    public func stats() throws -> CacheStats {
        try flush()
        return try db.withLock { db in
            try db.transaction {
                CacheStats(
                    entries: try db.query("SELECT COUNT(*) FROM entries").first?.int(0) ?? 0,
                    bytes: try Self.counter(db, "bytes"), maxBytes: maxBytes, hits: try Self.counter(db, "hits"),
                    misses: try Self.counter(db, "misses"), bytesSaved: try Self.counter(db, "bytes_saved"))
            }
        }
    }

    /// Drops every entry, the attribute cache and the counters.
    public func clear() throws {
        try flush()
        seen.withLock { $0.removeAll() }
        let keys = try db.withLock { db in
            try db.transaction {
                let keys = try db.query("SELECT file_id, version FROM entries WHERE data IS NULL").map {
                    "\($0.int(0) ?? 0).\($0.int(1) ?? 0)"
                }
                try db.execute("DELETE FROM entries; DELETE FROM attributes; UPDATE counters SET value = 0;")
                return keys
            }
        }
        for key in keys { unlink(directory + "/blobs/" + key) }
    }

    /// Adds `amount` to a named counter, creating it at zero first.
    static func bump(_ db: Database, _ name: String, by amount: Int64) throws {
        try db.run(
            """
            INSERT INTO counters(name, value) VALUES (?, ?)
            ON CONFLICT(name) DO UPDATE SET value = value + excluded.value
            """,
            [.text(name), .integer(amount)])
    }

    static func counter(_ db: Database, _ name: String) throws -> Int64 {
        try db.query("SELECT value FROM counters WHERE name = ?", [.text(name)]).first?.int(0) ?? 0
    }
}
