internal import CSQLite

/// An error reported by SQLite, or a misuse of `Database` caught before SQLite saw it.
public struct SQLiteError: Error, CustomStringConvertible {
    /// The primary result code, e.g. 19 (`SQLITE_CONSTRAINT`), 5 (`SQLITE_BUSY`).
    /// - SeeAlso: https://www.sqlite.org/rescode.html
    public let code: Int32
    /// `sqlite3_errmsg` at the time of the failure (or this wrapper's explanation of a misuse).
    public let message: String
    /// The extended result code (`sqlite3_extended_errcode`), e.g. 2067 (`SQLITE_CONSTRAINT_UNIQUE`); equals `code`
    /// when SQLite gave no more detail.
    public let extendedCode: Int32

    /// Creates an error.
    /// - Parameters:
    ///   - code: A primary SQLite result code.
    ///   - message: A human-readable explanation.
    ///   - extendedCode: The extended result code, if known.
    public init(code: Int32, message: String, extendedCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.extendedCode = extendedCode ?? code
    }

    /// `sqlite error <code>: <message>`.
    public var description: String { "sqlite error \(extendedCode): \(message)" }

    /// Whether a UNIQUE, PRIMARY KEY, NOT NULL, CHECK or FOREIGN KEY constraint failed.
    public var isConstraintViolation: Bool { code == SQLITE_CONSTRAINT }

    /// Whether the database stayed locked past the busy timeout.
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }

    /// Whether the file is damaged or not a database at all (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    public var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
}

extension SQLiteError {
    /// The error SQLite just reported on `db` for result code `result`.
    init(db: OpaquePointer?, result: Int32) {
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(result))
        let extended = db.map { sqlite3_extended_errcode($0) } ?? result
        self.init(code: result & 0xff, message: message, extendedCode: extended)
    }
}
