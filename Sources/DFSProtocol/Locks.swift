/// `POST /locks` body: ask for a lease on a path.
public struct LockRequest: Codable, Sendable {
    public var path: String
    /// `read` (shared) or `write` (exclusive).
    public var mode: String
    /// Optional: the client is the one the bearer token proves; if given it must match.
    public var clientId: Int64?
    /// Lease length; default `lock_lease_ms` of the directory.
    public var ttlMs: Int64?
    /// How long to wait in the queue; 0 or absent = try once (409 `lock_busy` with the holders when taken).
    public var waitMs: Int64?
    public init(path: String, mode: String, clientId: Int64? = nil, ttlMs: Int64? = nil, waitMs: Int64? = nil) {
        self.path = path
        self.mode = mode
        self.clientId = clientId
        self.ttlMs = ttlMs
        self.waitMs = waitMs
    }
}

/// `PUT /locks/{id}` body: extend a lease.
public struct RenewRequest: Codable, Sendable {
    /// Optional: the client is the one the bearer token proves; if given it must match.
    public var clientId: Int64?
    public var ttlMs: Int64?
    public init(clientId: Int64? = nil, ttlMs: Int64? = nil) {
        self.clientId = clientId
        self.ttlMs = ttlMs
    }
}

/// A granted lease.
public struct LockInfo: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case path, mode, token
        case lockId = "lock_id"
        case clientId = "client_id"
        case expiresInMs = "expires_in_ms"
    }

    public var lockId: Int64
    public var path: String
    public var clientId: Int64
    public var mode: String
    /// Fencing token: increases with every grant; writes carry it and stale ones are refused.
    public var token: Int64
    /// Milliseconds until the lease expires unless renewed.
    public var expiresInMs: Int64
    public init(lockId: Int64, path: String, clientId: Int64, mode: String, token: Int64, expiresInMs: Int64) {
        self.lockId = lockId
        self.path = path
        self.clientId = clientId
        self.mode = mode
        self.token = token
        self.expiresInMs = expiresInMs
    }
}

/// A queued lock request.
public struct LockWaiterInfo: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case path, mode
        case clientId = "client_id"
        case waitsForMs = "waits_for_ms"
    }

    public var path: String
    public var clientId: Int64
    public var mode: String
    /// Milliseconds until the request gives up.
    public var waitsForMs: Int64
    public init(path: String, clientId: Int64, mode: String, waitsForMs: Int64) {
        self.path = path
        self.clientId = clientId
        self.mode = mode
        self.waitsForMs = waitsForMs
    }
}

/// `GET /locks` answer: the lease table.
public struct LocksResponse: Codable, Sendable, WireKeys {
    public var holders: [LockInfo]
    public var waiters: [LockWaiterInfo]
    public init(holders: [LockInfo], waiters: [LockWaiterInfo]) {
        self.holders = holders
        self.waiters = waiters
    }
}

/// `DELETE /locks?path=&client_id=` answer.
public struct ReleaseResponse: Codable, Sendable {
    public var released: Int64
    public init(released: Int64) { self.released = released }
}
