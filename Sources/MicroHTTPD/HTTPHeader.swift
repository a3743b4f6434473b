/// One HTTP header field of a response.
public struct HTTPHeader: Sendable, Equatable {
    /// The field name, sent as given.
    public var name: String
    /// The field value. Must not contain CR or LF (such a header is dropped).
    public var value: String

    /// Creates a header field.
    /// - Parameters:
    ///   - name: The field name.
    ///   - value: The field value.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}
