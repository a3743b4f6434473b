internal import CSQLite
import Foundation

/// One SQLite connection with a cache of prepared statements.
///
/// Not thread-safe: the owner serialises access (a `Mutex`, an actor, or one connection per thread).
/// Pragmas such as `journal_mode=WAL` or `synchronous` are the caller's to set with `execute`.
///
/// ```swift
/// let db = try Database(path: "/var/lib/dfs/meta.sqlite")
/// try db.execute("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS f(id INTEGER PRIMARY KEY, path TEXT UNIQUE)")
/// try db.run("INSERT INTO f(path) VALUES (?)", [.text("/a")])
/// let rows = try db.query("SELECT id FROM f WHERE path = ?", [.text("/a")])
/// ```
public final class Database {  // not thread-safe: the owner serialises access
    /// The most statements kept prepared; past it the cache is emptied, so SQL built from data cannot grow it forever.
    static let statementCacheLimit = 256

    let handle: OpaquePointer
    /// Prepared statements keyed by their exact SQL text.
    private var statements: [String: Statement] = [:]
    /// Depth of nested `transaction` calls, used to name savepoints.
    var transactionDepth = 0

    /// Opens (and creates if missing) the database file at `path`, with a 5 s busy timeout.
    /// - Parameter path: A file path; `":memory:"` gives a private in-memory database.
    /// - Throws: `SQLiteError` if the file cannot be opened or is not a database.
    /// - SeeAlso: https://www.sqlite.org/c3ref/open.html
    public init(path: String) throws {
        _ = Self.configured
        var db: OpaquePointer?
        let result = sqlite3_open_v2(path, &db, SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE, nil)
        guard result == SQLITE_OK, let db else {
            let error = SQLiteError(db: db, result: result)
            // sqlite3_open_v2 allocates a handle even when it fails; it must still be closed.
            sqlite3_close_v2(db)
            throw error
        }
        handle = db
        // Wait up to 5 s for another connection's lock instead of failing at once with SQLITE_BUSY.
        sqlite3_busy_timeout(db, 5000)
    }

    /// Process-wide settings, made once before the first connection opens (SQLite then initializes itself): memory
    /// statistics off. With them on, every SQLite allocation in the process took one global mutex; under 16 reading
    /// client threads it was 61% of the client's futex calls. (Nothing here reads SQLite's memory counters.)
    private static let configured: Bool = dfs_sqlite3_disable_memory_statistics() == SQLITE_OK

    /// Whether SQLite counts its allocations (process-wide): false once a `Database` was opened.
    public static var countsMemory: Bool { dfs_sqlite3_memory_used() > 0 }

    deinit {
        statements.removeAll()  // finalize every statement before closing
        sqlite3_close_v2(handle)
    }

    /// Runs one or more `;`-separated statements that take no arguments (schema, pragmas, BEGIN…).
    /// - Parameter sql: The SQL text.
    /// - Throws: `SQLiteError` from the first statement that fails; earlier ones stay applied.
    /// - SeeAlso: https://www.sqlite.org/c3ref/exec.html
    public func execute(_ sql: String) throws {
        var errorText: UnsafeMutablePointer<CChar>?
        let result = sqlite3_exec(handle, sql, nil, nil, &errorText)
        defer { sqlite3_free(errorText) }
        guard result == SQLITE_OK else {
            let error = SQLiteError(db: handle, result: result)
            let message = errorText.map { String(cString: $0) } ?? error.message
            throw SQLiteError(code: error.code, message: message, extendedCode: error.extendedCode)
        }
    }

    /// Runs one statement with `args` bound to its `?` parameters, discarding any rows.
    /// - Parameters:
    ///   - sql: Exactly one statement; its prepared form is cached under this text.
    ///   - args: One value per parameter, in order.
    /// - Throws: `SQLiteError`, e.g. code 19 on a constraint violation, 25 (`SQLITE_RANGE`) on a wrong argument count.
    public func run(_ sql: String, _ args: [SQLValue] = []) throws {
        try withStatement(sql, args) { try $0.run(nil) }
    }

    /// Runs one statement with `args` bound and returns all its rows.
    /// - Parameters:
    ///   - sql: Exactly one statement; its prepared form is cached under this text.
    ///   - args: One value per parameter, in order.
    /// - Returns: Every result row, in order.
    /// - Throws: `SQLiteError`.
    public func query(_ sql: String, _ args: [SQLValue] = []) throws -> [Row] {
        var rows: [Row] = []
        try withStatement(sql, args) { try $0.run { rows.append($0) } }
        return rows
    }

    /// Runs one statement with `args` bound and hands each row to `body` as it is read, collecting nothing: for
    /// scans whose rows would not fit in memory all at once.
    public func forEach(_ sql: String, _ args: [SQLValue] = [], _ body: (Row) -> Void) throws {
        try withoutActuallyEscaping(body) { body in
            try withStatement(sql, args) { try $0.run(body) }
        }
    }

    /// The rowid of the most recent successful INSERT on this connection.
    /// - SeeAlso: https://www.sqlite.org/c3ref/last_insert_rowid.html
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    /// - SeeAlso: https://www.sqlite.org/c3ref/changes.html
    public var changes: Int { Int(sqlite3_changes64(handle)) }

    /// The `-wal` file of the main database (it exists once a WAL database has been read or written).
    /// - SeeAlso: https://www.sqlite.org/c3ref/filename_database.html
    public var walPath: String? {
        guard let name = sqlite3_db_filename(handle, "main"), let wal = sqlite3_filename_wal(name) else { return nil }
        let path = String(cString: wal)
        return path.isEmpty ? nil : path
    }

    /// Rows changed by every INSERT, UPDATE or DELETE since the connection opened: compare two readings to learn
    /// whether some code in between wrote.
    /// - SeeAlso: https://www.sqlite.org/c3ref/total_changes.html
    public var totalChanges: Int64 { sqlite3_total_changes64(handle) }

    /// Prepares (or reuses) `sql`, binds `args`, runs `body`, and always leaves the statement reset.
    private func withStatement(_ sql: String, _ args: [SQLValue], _ body: (Statement) throws -> Void) throws {
        let statement = try prepared(sql)
        defer { statement.reset() }
        try statement.bind(args)
        try body(statement)
    }

    private func prepared(_ sql: String) throws -> Statement {
        if let cached = statements[sql] {
            return cached
        }
        var raw: OpaquePointer?
        var extraText = ""
        let result = sql.withCString { text in
            var tail: UnsafePointer<CChar>?
            let result = sqlite3_prepare_v3(handle, text, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, &tail)
            if let tail {
                extraText = String(cString: tail)
            }
            return result
        }
        guard result == SQLITE_OK else {
            throw SQLiteError(db: handle, result: result)
        }
        guard let raw else {
            throw SQLiteError(code: SQLITE_MISUSE, message: "no SQL statement in \"\(sql)\"")
        }
        let statement = Statement(db: handle, raw: raw)
        guard extraText.allSatisfy({ $0.isWhitespace || $0 == ";" }) else {
            // Silently running only the first statement would lose the rest: use execute for several.
            throw SQLiteError(
                code: SQLITE_MISUSE, message: "run and query take one statement; use execute for \"\(sql)\"")
        }
        if statements.count >= Self.statementCacheLimit {
            statements.removeAll()
        }
        statements[sql] = statement
        return statement
    }
}
