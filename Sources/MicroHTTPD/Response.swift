import Foundation

/// An HTTP response: status, headers and a body.
///
/// libmicrohttpd adds `Content-Length` (from the body) and `Date` itself; a `Content-Length` or
/// `Transfer-Encoding` header given here is ignored. For `HEAD`, return the same response as for `GET`:
/// only the headers are sent, with the `Content-Length` of the body.
public struct Response: Sendable {
    /// The body of a response.
    public enum Body: Sendable {
        /// No body (`Content-Length: 0`).
        case empty
        /// An in-memory body (copied once into libmicrohttpd).
        case data(Data)
        /// The wrapper takes ownership of `descriptor` and closes it (also on error / client abort).
        /// `length` bytes are sent from `offset` (with sendfile where possible).
        case file(descriptor: Int32, offset: UInt64, length: UInt64)
    }

    /// The status code; values outside 100...599 are sent as 500.
    public var status: Int
    /// Extra header fields.
    public var headers: [HTTPHeader]
    /// The body.
    public var body: Body

    /// Creates a response.
    /// - Parameters:
    ///   - status: The status code.
    ///   - headers: Extra header fields.
    ///   - body: The body; `.file` passes ownership of the descriptor to the wrapper.
    public init(status: Int, headers: [HTTPHeader] = [], body: Body = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

extension Response {
    /// A plain 503, used when the server stops while a connection is parked.
    static let serviceUnavailable = Response(
        status: 503, headers: [HTTPHeader("Content-Type", "text/plain"), HTTPHeader("Connection", "close")],
        body: .data(Data("server is stopping\n".utf8)))

    /// A plain 500, used when a response cannot be built.
    static let internalServerError = Response(
        status: 500, headers: [HTTPHeader("Content-Type", "text/plain")],
        body: .data(Data("internal server error\n".utf8)))

    /// Releases what the response owns when it is dropped without being sent (closes a `.file` descriptor).
    func discard() {
        if case .file(let descriptor, _, _) = body {
            close(descriptor)
        }
    }
}
