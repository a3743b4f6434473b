import Crypto
import Foundation

/// The cluster's shared secret and the keys derived from it.
///
/// Every server of a cluster has the same `cluster_secret`. It proves a peer is a server of this cluster
/// (`X-DFS-Cluster-Token` on registration, heartbeats and server-to-server calls), and it keys the HMACs of upload
/// tickets, receipts and client tokens — so file servers can check the directory's orders without asking it.
public struct ClusterSecret: Sendable {
    /// The placeholder the shipped configuration files carry; servers warn when they run with it.
    public static let placeholder = "change-me"
    /// The header servers send to each other.
    public static let header = "X-DFS-Cluster-Token"

    private let secret: String
    /// The signer of tickets and receipts.
    public let tickets: TicketSigner
    /// The signer of client tokens.
    public let clientTokens: ClientTokens

    /// Derives the keys once: deriving them per request showed as 4% of the directory's CPU under creates.
    public init(_ secret: String) {
        self.secret = secret
        self.tickets = TicketSigner(key: Self.derive("dfs-tickets", from: secret))
        self.clientTokens = ClientTokens(key: Self.derive("dfs-client-tokens", from: secret))
    }

    public var isPlaceholder: Bool { secret == Self.placeholder }

    /// The value for the `X-DFS-Cluster-Token` header.
    public var token: String { secret }

    /// Whether a presented header value is this secret (compared in constant time).
    public func matches(_ presented: String?) -> Bool {
        guard let presented else { return false }
        return constantTimeEqual(Array(presented.utf8), Array(secret.utf8))
    }

    private static func derive(_ purpose: String, from secret: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(purpose.utf8), using: SymmetricKey(data: Data(secret.utf8))))
    }
}

/// HMAC-SHA256 under one key, keyed once: every code starts from a copy of the keyed state, instead of building a
/// `SymmetricKey` and hashing the key's pads again for each message.
struct KeyedHMAC: Sendable {
    // Never mutated: each use copies it (a value type) and updates the copy, under the lock only because `HMAC` is
    // not `Sendable` (a microsecond's hold, uncontended at these rates).
    private let keyed: Locked<HMAC<SHA256>>

    init(key: Data) {
        keyed = Locked(HMAC<SHA256>(key: SymmetricKey(data: key)))
    }

    func code(for message: Data) -> Data {
        keyed.withLock { keyed in
            var hmac = keyed
            hmac.update(data: message)
            return Data(hmac.finalize())
        }
    }

    /// Whether `code` is the code of `message` (compared in constant time).
    func isValid(_ code: Data, for message: Data) -> Bool {
        constantTimeEqual(code, self.code(for: message))
    }
}

/// Whether two byte strings are equal, in time that depends on their length only (not on where they differ).
func constantTimeEqual<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    guard a.count == b.count else { return false }
    return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
}

/// Bearer tokens that prove a client's id: `<client id>.<hex HMAC(key, "client:<id>")>`.
public struct ClientTokens: Sendable {
    private let hmac: KeyedHMAC
    /// Tokens already verified, with their client id: a client sends the same token with every request. Only
    /// valid tokens get in; emptied when full.
    private let verified = VerifiedTokens()

    init(key: Data) {
        hmac = KeyedHMAC(key: key)
    }

    public func token(for clientId: Int64) -> String {
        "\(clientId)." + hmac.code(for: Data("client:\(clientId)".utf8)).hexString
    }

    /// The client id a token proves, or nil when it is not a valid token.
    public func clientId(from token: String) -> Int64? {
        if let known = verified.lookup(token) { return known }
        let parts = token.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let id = Int64(parts[0]), id > 0, let code = Data(hex: String(parts[1])) else {
            return nil
        }
        guard hmac.isValid(code, for: Data("client:\(id)".utf8)) else { return nil }
        verified.insert(token, id)
        return id
    }

    /// The client id an `Authorization: Bearer <token>` header proves, or nil when it is missing or not valid.
    public func clientId(authorization header: String?) -> Int64? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        // Trimmed by hand: Foundation's trimmingCharacters showed in the profile of every state-changing request.
        var token = header.dropFirst(7)
        while token.first == " " || token.first == "\t" { token.removeFirst() }
        while token.last == " " || token.last == "\t" { token.removeLast() }
        return clientId(from: String(token))
    }
}

/// The memo of `ClientTokens`: valid tokens and their client ids, at most `limit` of them.
private final class VerifiedTokens: Sendable {
    private let tokens = Locked<[String: Int64]>([:])
    private static let limit = 4096

    func lookup(_ token: String) -> Int64? { tokens.withLock { $0[token] } }

    func insert(_ token: String, _ id: Int64) {
        tokens.withLock { tokens in
            if tokens.count >= Self.limit { tokens.removeAll(keepingCapacity: true) }
            tokens[token] = id
        }
    }
}

/// Short-lived, signed permission for one operation on one blob, checked by a file server without asking the
/// directory (like SeaweedFS's per-fid JWT). A ticket is `<expiry ms>.<hex HMAC(key, "<op>:<id>:<version>:<detail>:<expiry>")>`.
public struct TicketSigner: Sendable {
    public enum Operation: String, Sendable {
        /// Upload the bytes of a new blob.
        case put
        /// Delete a blob.
        case delete
        /// A file server's receipt: it stored the blob with the given size and sha256 (in `detail`).
        case stored
    }

    private let hmac: KeyedHMAC

    init(key: Data) {
        hmac = KeyedHMAC(key: key)
    }

    /// The ticket detail binding an upload to a lock's fencing token (empty when written without a lock).
    public static func fenceDetail(_ token: Int64?) -> String {
        token.map { "fence=\($0)" } ?? ""
    }

    /// A ticket valid until `expiresAtMs` (wall clock, milliseconds since the epoch).
    public func sign(
        _ operation: Operation, fileId: Int64, version: Int64, detail: String = "", expiresAtMs: Int64
    ) -> String {
        let message = Self.message(operation, fileId, version, detail, expiresAtMs)
        return "\(expiresAtMs)." + hmac.code(for: message).hexString
    }

    /// True when the ticket is genuine for exactly these claims and has not expired at `nowMs`.
    public func verify(
        _ ticket: String, _ operation: Operation, fileId: Int64, version: Int64, detail: String = "", nowMs: Int64
    ) -> Bool {
        let parts = ticket.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let expiresAtMs = Int64(parts[0]), expiresAtMs >= nowMs,
            let code = Data(hex: String(parts[1]))
        else { return false }
        let message = Self.message(operation, fileId, version, detail, expiresAtMs)
        return hmac.isValid(code, for: message)
    }

    private static func message(
        _ operation: Operation, _ fileId: Int64, _ version: Int64, _ detail: String, _ expiresAtMs: Int64
    ) -> Data {
        Data("\(operation.rawValue):\(fileId):\(version):\(detail):\(expiresAtMs)".utf8)
    }
}

/// Wall-clock milliseconds since the epoch (ticket expiry is compared across servers).
public func wallClockMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
