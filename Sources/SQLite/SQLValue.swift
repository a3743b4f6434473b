import Foundation

/// A value bound to a statement parameter or read from a result column, one case per SQLite storage class.
public enum SQLValue: Sendable, Equatable {
    /// SQL NULL.
    case null
    /// A 64-bit signed integer.
    case integer(Int64)
    /// An IEEE double.
    case real(Double)
    /// UTF-8 text.
    case text(String)
    /// Raw bytes. An empty blob is stored as a zero-length blob, not as NULL.
    case blob(Data)
}
