import Foundation
import Glibc
import SQLite

extension ClientCache {
    /// The index layout this code reads and writes, kept in `PRAGMA user_version`. A cache with any other version
    /// (older caches have none) is reset when opened: it is only a cache.
    static let schemaVersion: Int64 = 4

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
                for folder in ["blobs", "packs"] { removeFiles(in: directory + "/" + folder) }
            }
        }
    }

    /// Deletes the files in `path` (not the directory itself).
    static func removeFiles(in path: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { unlink(path + "/" + name) }
    }

    private static func prepareSchema(_ db: Database, directory: String) throws {
        // Only a cache: no fsync (a write-behind batch, and each checkpoint, used to fsync). See `openIndex`. Set
        // first: switching a new index to WAL and creating its tables cost four fsyncs, on every client's first use.
        try db.execute("PRAGMA synchronous = OFF")
        if try db.query("PRAGMA journal_mode").first?.text(0) != "wal" {
            try db.execute("PRAGMA journal_mode = WAL")
        }
        guard try userVersion(db) != schemaVersion else { return }
        try db.transaction {
            // Another process may have reset it since the check above: look again under the write lock.
            guard try userVersion(db) != schemaVersion else { return }
            try db.execute(
                """
                DROP TABLE IF EXISTS entries;
                DROP TABLE IF EXISTS attributes;
                DROP TABLE IF EXISTS counters;
                DROP TABLE IF EXISTS packs;
                DROP TABLE IF EXISTS dead_packs;
                \(schema)
                PRAGMA user_version = \(schemaVersion);
                """)
            // Still under the write lock, so no process on the new layout has published a blob yet.
            for folder in ["blobs", "packs", "tmp"] { removeFiles(in: directory + "/" + folder) }
        }
    }

    private static func userVersion(_ db: Database) throws -> Int64 {
        try db.query("PRAGMA user_version").first?.int(0) ?? 0
    }

    /// An entry of up to `inlineLimit` bytes lives at `pack_offset` in the pack file `packs/<pack>`; a bigger one
    /// is the file `blobs/<file id>.<version>` (`pack` NULL, and `stat` is the file's signature).
    ///
    /// `counters('bytes')` is what the cache holds on disk: the sizes of the blob files and of the pack files (a
    /// pack counts whole until it is deleted). The triggers keep it within the same transaction as every insert,
    /// replacement and delete, so bounding the cache never sums a table. A pack is deleted with its last entry, and
    /// its id noted in `dead_packs` so that its file is unlinked after the transaction (`takeDeadPacks`).
    private static let schema = """
        CREATE TABLE entries(
            file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
            last_used INTEGER NOT NULL, stat TEXT NOT NULL, pack INTEGER, pack_offset INTEGER,
            PRIMARY KEY(file_id, version)) WITHOUT ROWID;
        CREATE INDEX entries_by_use ON entries(last_used);
        CREATE INDEX entries_by_pack ON entries(pack) WHERE pack IS NOT NULL;
        CREATE TABLE packs(id INTEGER PRIMARY KEY AUTOINCREMENT, size INTEGER NOT NULL);
        CREATE TABLE dead_packs(id INTEGER PRIMARY KEY);
        CREATE TABLE attributes(
            path TEXT PRIMARY KEY, file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL,
            size INTEGER NOT NULL, fetched_ms INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters(name, value) VALUES ('bytes', 0);
        CREATE TRIGGER entries_added AFTER INSERT ON entries WHEN NEW.pack IS NULL BEGIN
            UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
        END;
        CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
            UPDATE counters SET value = value - OLD.size WHERE name = 'bytes' AND OLD.pack IS NULL;
            DELETE FROM packs WHERE id = OLD.pack AND NOT EXISTS (SELECT 1 FROM entries WHERE pack = OLD.pack);
        END;
        CREATE TRIGGER entries_changed AFTER UPDATE OF size, pack ON entries BEGIN
            UPDATE counters
                SET value = value - (CASE WHEN OLD.pack IS NULL THEN OLD.size ELSE 0 END)
                    + (CASE WHEN NEW.pack IS NULL THEN NEW.size ELSE 0 END)
                WHERE name = 'bytes';
            DELETE FROM packs WHERE id = OLD.pack AND OLD.pack IS NOT NEW.pack
                AND NOT EXISTS (SELECT 1 FROM entries WHERE pack = OLD.pack);
        END;
        CREATE TRIGGER packs_added AFTER INSERT ON packs BEGIN
            UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
        END;
        CREATE TRIGGER packs_removed AFTER DELETE ON packs BEGIN
            UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
            INSERT OR IGNORE INTO dead_packs(id) VALUES (OLD.id);
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
        let (keys, packs) = try db.withLock { db in
            try db.transaction {
                let keys = try db.query("SELECT file_id, version FROM entries WHERE pack IS NULL").map {
                    "\($0.int(0) ?? 0).\($0.int(1) ?? 0)"
                }
                try db.execute("DELETE FROM entries; DELETE FROM attributes;")
                let packs = try Self.takeDeadPacks(db)
                try db.execute("UPDATE counters SET value = 0;")
                return (keys, packs)
            }
        }
        for key in keys { unlink(directory + "/blobs/" + key) }
        removePacks(packs)
    }

    /// The packs deleted in this transaction (their rows are gone; their files are unlinked by the caller, after the
    /// transaction: `removePacks`).
    static func takeDeadPacks(_ db: Database) throws -> [Int64] {
        let ids = try db.query("SELECT id FROM dead_packs").compactMap { $0.int(0) }
        if !ids.isEmpty { try db.run("DELETE FROM dead_packs") }
        return ids
    }

    func removePacks(_ ids: [Int64]) {
        for id in ids { unlink(packPath(id)) }
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
