/// One HTTP header field as sent with a request.
///
/// The same shape as `MicroHTTPD.HTTPHeader`; each wrapper keeps its own copy so that neither depends on the other.
public struct HTTPHeader: Sendable, Equatable {
    /// The field name, sent as given (HTTP names are case-insensitive).
    public var name: String
    /// The field value. An empty value is sent as an empty header (`Name;` in curl's syntax), not dropped.
    public var value: String

    /// Creates a header field.
    /// - Parameters:
    ///   - name: The field name, e.g. `Content-Type`.
    ///   - value: The field value.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

extension UInt8 {
    /// The byte with an ASCII capital letter made small (header names compare case-insensitively).
    var asciiLowercased: UInt8 { self >= 0x41 && self <= 0x5A ? self | 0x20 : self }
}
