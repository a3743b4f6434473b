import DFSProtocol

/// An error a handler throws to answer with a status and the one JSON error shape.
///
/// Any other error a handler throws becomes `500 internal`, with the details logged, not sent.
public struct DFSError: Error, Equatable, CustomStringConvertible {
    public let status: Int
    public let code: ErrorCode
    public let message: String
    /// For `lock_busy`: who holds the lock.
    public var holders: [LockInfo]?

    public init(_ status: Int, _ code: ErrorCode, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status) \(code.rawValue): \(message)" }

    public static func badRequest(_ message: String) -> DFSError { DFSError(400, .badRequest, message) }
    public static func invalidPath(_ message: String) -> DFSError { DFSError(400, .invalidPath, message) }
    public static func notFound(_ message: String) -> DFSError { DFSError(404, .notFound, message) }
    public static func exists(_ message: String) -> DFSError { DFSError(409, .exists, message) }
    public static func notEmpty(_ message: String) -> DFSError { DFSError(409, .notEmpty, message) }
    public static func notADirectory(_ message: String) -> DFSError { DFSError(409, .notADirectory, message) }
    public static func isADirectory(_ message: String) -> DFSError { DFSError(409, .isADirectory, message) }
    public static func conflict(_ message: String) -> DFSError { DFSError(409, .conflict, message) }
    public static func unauthorized(_ message: String) -> DFSError { DFSError(401, .unauthorized, message) }
    public static func forbidden(_ message: String) -> DFSError { DFSError(403, .forbidden, message) }
    public static func tooLarge(_ message: String) -> DFSError { DFSError(413, .tooLarge, message) }
    public static func unavailable(_ message: String) -> DFSError { DFSError(503, .unavailable, message) }
    public static func checksumMismatch(_ message: String) -> DFSError { DFSError(422, .checksumMismatch, message) }
}
