import Foundation

/// One result row, its columns in SELECT order.
///
/// The typed accessors are strict: they return nil unless the column holds exactly that storage class
/// (`int` of a `.real` is nil), so a schema mismatch shows up instead of being converted silently.
public struct Row: Sendable {
    /// The column values, in SELECT order.
    public let values: [SQLValue]

    /// Creates a row from its column values.
    /// - Parameter values: The column values.
    public init(_ values: [SQLValue]) {
        self.values = values
    }

    /// The number of columns.
    public var count: Int { values.count }

    /// The value of column `i` (0-based); `.null` if there is no such column.
    public subscript(_ i: Int) -> SQLValue {
        values.indices.contains(i) ? values[i] : .null
    }

    /// Column `i` if it holds an integer.
    public func int(_ i: Int) -> Int64? {
        if case .integer(let value) = self[i] { return value }
        return nil
    }

    /// Column `i` if it holds a real number.
    public func double(_ i: Int) -> Double? {
        if case .real(let value) = self[i] { return value }
        return nil
    }

    /// Column `i` if it holds text.
    public func text(_ i: Int) -> String? {
        if case .text(let value) = self[i] { return value }
        return nil
    }

    /// Column `i` if it holds a blob.
    public func blob(_ i: Int) -> Data? {
        if case .blob(let value) = self[i] { return value }
        return nil
    }
}
