import SQLite

/// The directory's SQLite schema. Entry 1 is the root directory.
///
/// `inline_data` keeps the bytes of small created files (`inline_max_bytes`) by version, which is unique in the
/// cluster (file ids and versions come from one sequence). The triggers drop a version's bytes as soon as its entry
/// moves to another version or goes, in the same transaction: no stale bytes can be served.
///
/// WAL with `synchronous = NORMAL`: a commit is written to the WAL but not flushed; `Metadata.durability` flushes
/// it, shared by every commit of the moment (group commit), before the directory answers.
enum Schema {
    static let statements = """
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = NORMAL;
        CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS clients(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            registered_ms INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS fileservers(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            capacity_bytes INTEGER NOT NULL,
            registered_ms INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS entries(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            parent INTEGER NOT NULL,
            name TEXT NOT NULL,
            is_dir INTEGER NOT NULL,
            mtime_ms INTEGER NOT NULL,
            file_id INTEGER,
            version INTEGER,
            size INTEGER,
            sha256 TEXT,
            UNIQUE(parent, name));
        CREATE TABLE IF NOT EXISTS replicas(
            file_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            server_id INTEGER NOT NULL,
            PRIMARY KEY(file_id, version, server_id));
        CREATE TABLE IF NOT EXISTS deletions(
            file_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            server_id INTEGER NOT NULL,
            PRIMARY KEY(file_id, version, server_id));
        CREATE TABLE IF NOT EXISTS inline_data(
            version INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL,
            data BLOB NOT NULL);
        CREATE TRIGGER IF NOT EXISTS inline_data_replaced AFTER UPDATE OF version ON entries
            WHEN old.version IS NOT NULL AND old.version IS NOT new.version
            BEGIN DELETE FROM inline_data WHERE version = old.version; END;
        CREATE TRIGGER IF NOT EXISTS inline_data_removed AFTER DELETE ON entries WHEN old.version IS NOT NULL
            BEGIN DELETE FROM inline_data WHERE version = old.version; END;
        INSERT OR IGNORE INTO entries(id, parent, name, is_dir, mtime_ms) VALUES (1, 0, '', 1, 0);
        """

    static let rootID: Int64 = 1

    static func open(path: String) throws -> Database {
        let db = try Database(path: path)
        try db.execute(statements)
        return db
    }
}
