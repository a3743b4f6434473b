import DFSProtocol

/// A failed call, with the server's error code and message when a server answered.
public struct DFSClientError: Error, CustomStringConvertible, Equatable {
    /// The HTTP status, or nil when no server answered.
    public let status: Int?
    /// The server's `error.code` (`not_found`, `exists`, ...), or `unreachable` / `corrupt` / `io` from the client.
    public let code: String
    public let message: String

    public init(status: Int?, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func unreachable(_ what: String, _ detail: String) -> DFSClientError {
        DFSClientError(status: nil, code: "unreachable", message: "cannot reach \(what): \(detail)")
    }

    static func io(_ message: String) -> DFSClientError {
        DFSClientError(status: nil, code: "io", message: message)
    }
}
