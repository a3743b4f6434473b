import Foundation

/// The answer to `HTTPClient.send`.
public struct HTTPResponse: Sendable {
    /// The HTTP status code of the final response.
    public let status: Int
    /// The final response's header fields, names lowercased. Repeated fields are joined with `", "`.
    public let headers: [String: String]
    /// The body; empty when streamed into `onBody`, and at most `bodyLimit` bytes for a non-2xx status.
    public let body: Data

    /// Creates a response (for tests and fakes; `HTTPClient` builds its own).
    /// - Parameters:
    ///   - status: The HTTP status code.
    ///   - headers: Header fields with lowercased names.
    ///   - body: The collected body.
    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Whether the status is in 200...299.
    public var isSuccess: Bool { (200..<300).contains(status) }
}
