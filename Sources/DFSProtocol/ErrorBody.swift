/// Machine-readable error codes; every error response carries one.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case invalidPath = "invalid_path"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case exists = "exists"
    case notEmpty = "not_empty"
    case notADirectory = "not_a_directory"
    case isADirectory = "is_a_directory"
    case tooLarge = "too_large"
    case conflict = "conflict"
    case checksumMismatch = "checksum_mismatch"
    case forbidden = "forbidden"
    case noFileServers = "no_file_servers"
    case unavailable = "unavailable"
    case `internal` = "internal"
}

/// The one error shape of every route: `{"error": {"code": "not_found", "message": "..."}}`.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var error: Detail

    public init(code: ErrorCode, message: String) {
        self.error = Detail(code: code.rawValue, message: message)
    }
}
