/// The head of an HTTP request: method, path, query and headers. The body is read separately (see ``Disposition``).
public struct Request: Sendable {
    /// The method as sent: "GET", "PUT", "HEAD", ...
    public let method: String
    /// The URL path without the query, percent-decoded by libmicrohttpd.
    public let path: String
    /// Decoded query arguments; when a name repeats, the last value wins. `?flag` maps to "".
    public let query: [String: String]
    /// Request headers with lowercased names; repeated headers are joined with ", ".
    public let headers: [String: String]

    /// Creates a request head, for example to test a router without a socket.
    /// - Parameters:
    ///   - method: The HTTP method.
    ///   - path: The decoded path, without the query.
    ///   - query: Decoded query arguments.
    ///   - headers: Header fields; names are lowercased here.
    public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:]) {
        self.method = method
        self.path = path
        self.query = query
        var lowered: [String: String] = [:]
        for (name, value) in headers {
            lowered[name.lowercased()] = value
        }
        self.headers = lowered
    }

    /// Looks a header up by name, ignoring case.
    /// - Parameter name: The header name in any case.
    /// - Returns: The header value, or nil if the request has no such header.
    public func header(_ name: String) -> String? {
        // Callers mostly pass lowercase names already: lowercase (Unicode-aware, so not free) only when needed.
        headers[name.utf8.contains { (0x41...0x5A).contains($0) } ? name.lowercased() : name]
    }
}
