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
    /// Missing or invalid credentials: a client token, or the cluster secret between servers (401).
    case unauthorized = "unauthorized"
    case forbidden = "forbidden"
    case noFileServers = "no_file_servers"
    /// A lock could not be granted in time (409, with the holders).
    case lockBusy = "lock_busy"
    /// The path is write-locked by someone else (423).
    case locked = "locked"
    /// A write carried a fencing token older than one already used (409).
    case staleLock = "stale_lock"
    case unavailable = "unavailable"
    case `internal` = "internal"
}

/// The one error shape of every route: `{"error": {"code": "not_found", "message": "..."}}`.
public struct ErrorBody: Codable, Sendable, Equatable, WireKeys {
    public struct Detail: Codable, Sendable, Equatable, WireKeys {
        public var code: String
        public var message: String
        /// For `lock_busy` and `locked`: who holds the lock.
        public var holders: [LockInfo]?
        public init(code: String, message: String, holders: [LockInfo]? = nil) {
            self.code = code
            self.message = message
            self.holders = holders
        }
    }

    public var error: Detail

    public init(code: ErrorCode, message: String, holders: [LockInfo]? = nil) {
        self.error = Detail(code: code.rawValue, message: message, holders: holders)
    }
}
