import Crypto
import Foundation

/// Signed permission for one operation on one blob, checked by the file server without asking the directory.
///
/// The directory and each file server share a random key, given at registration. A ticket is
/// `hex(HMAC-SHA256(key, "<op>:<file id>:<version>:<detail>"))`.
public struct TicketSigner: Sendable {
    public enum Operation: String, Sendable {
        /// Upload the bytes of a new blob.
        case put
        /// Delete a blob.
        case delete
        /// A file server's receipt: it stored the blob with the given size and sha256 (in `detail`).
        case stored
    }

    private let keyBytes: Data
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// - Parameter hexKey: the shared key as hex; nil when it is not valid hex.
    public init?(hexKey: String) {
        guard let bytes = Data(hex: hexKey), bytes.count >= 16 else { return nil }
        keyBytes = bytes
    }

    /// The ticket detail binding an upload to a lock's fencing token (empty when written without a lock).
    public static func fenceDetail(_ token: Int64?) -> String {
        token.map { "fence=\($0)" } ?? ""
    }

    /// A new random key, as hex.
    public static func newKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.hexString
    }

    public func sign(_ operation: Operation, fileId: Int64, version: Int64, detail: String = "") -> String {
        let message = Self.message(operation, fileId, version, detail)
        return Data(HMAC<SHA256>.authenticationCode(for: message, using: key)).hexString
    }

    public func verify(
        _ ticket: String, _ operation: Operation, fileId: Int64, version: Int64, detail: String = ""
    ) -> Bool {
        guard let code = Data(hex: ticket) else { return false }
        let message = Self.message(operation, fileId, version, detail)
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: message, using: key)
    }

    private static func message(_ operation: Operation, _ fileId: Int64, _ version: Int64, _ detail: String) -> Data {
        Data("\(operation.rawValue):\(fileId):\(version):\(detail)".utf8)
    }
}

extension Data {
    /// Lowercase hex of the bytes.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes from hex text; nil unless every character is a hex digit and the length is even.
    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = Self.nibble(chars[index]), let low = Self.nibble(chars[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
