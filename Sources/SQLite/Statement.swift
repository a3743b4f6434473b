internal import CSQLite
import Foundation

/// A prepared statement, owned by `Database`'s cache and finalised when dropped.
///
/// Between uses it is always reset with no bindings, so it holds no read lock and no copy of a bound blob.
final class Statement {
    private let db: OpaquePointer
    private let raw: OpaquePointer

    init(db: OpaquePointer, raw: OpaquePointer) {
        self.db = db
        self.raw = raw
    }

    deinit {
        sqlite3_finalize(raw)
    }

    /// Binds `values` to parameters 1...n; their number must match the statement's.
    /// - SeeAlso: https://www.sqlite.org/c3ref/bind_blob.html
    func bind(_ values: [SQLValue]) throws {
        let expected = Int(sqlite3_bind_parameter_count(raw))
        guard values.count == expected else {
            throw SQLiteError(code: SQLITE_RANGE, message: "statement takes \(expected) arguments, got \(values.count)")
        }
        for (offset, value) in values.enumerated() {
            let result = bind(value, at: Int32(offset + 1))
            guard result == SQLITE_OK else { throw SQLiteError(db: db, result: result) }
        }
    }

    private func bind(_ value: SQLValue, at index: Int32) -> Int32 {
        // SQLITE_TRANSIENT: SQLite copies the bytes before returning, so Swift's buffers may go away.
        let transient = dfs_sqlite3_transient()
        switch value {
        case .null:
            return sqlite3_bind_null(raw, index)
        case .integer(let number):
            return sqlite3_bind_int64(raw, index, number)
        case .real(let number):
            return sqlite3_bind_double(raw, index, number)
        case .text(let string):
            // Explicit byte length: correct for embedded NULs, and a non-NULL pointer even for "".
            return string.withCString { pointer in
                sqlite3_bind_text64(
                    raw, index, pointer, sqlite3_uint64(string.utf8.count), transient, UInt8(SQLITE_UTF8))
            }
        case .blob(let data) where data.isEmpty:
            // A NULL pointer would bind SQL NULL: bind a zero-length blob explicitly.
            return sqlite3_bind_zeroblob(raw, index, 0)
        case .blob(let data):
            return data.withUnsafeBytes { bytes in
                sqlite3_bind_blob64(raw, index, bytes.baseAddress, sqlite3_uint64(bytes.count), transient)
            }
        }
    }

    /// Steps to completion, handing each row to `row` (nil to skip reading columns).
    func run(_ row: ((Row) -> Void)?) throws {
        // Bounded by the statement's result: every step returns a row, DONE or an error.
        while true {
            let result = sqlite3_step(raw)
            switch result {
            case SQLITE_ROW:
                row?(currentRow())
            case SQLITE_DONE:
                return
            default:
                throw SQLiteError(db: db, result: result)
            }
        }
    }

    /// Rewinds the statement and drops its bindings (releases locks and bound copies).
    func reset() {
        sqlite3_reset(raw)
        sqlite3_clear_bindings(raw)
    }

    private func currentRow() -> Row {
        let count = sqlite3_column_count(raw)
        return Row((0..<count).map(column))
    }

    /// Column `index` of the current row, by its storage class.
    /// - SeeAlso: https://www.sqlite.org/c3ref/column_blob.html
    private func column(_ index: Int32) -> SQLValue {
        switch sqlite3_column_type(raw, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(raw, index))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(raw, index))
        case SQLITE_TEXT:
            // Pointer first, then byte count, as the SQLite docs prescribe.
            let pointer = sqlite3_column_text(raw, index)
            let count = Int(sqlite3_column_bytes(raw, index))
            guard let pointer else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let pointer = sqlite3_column_blob(raw, index)
            let count = Int(sqlite3_column_bytes(raw, index))
            guard let pointer, count > 0 else { return .blob(Data()) }
            return .blob(Data(bytes: pointer, count: count))
        default:
            return .null
        }
    }
}
