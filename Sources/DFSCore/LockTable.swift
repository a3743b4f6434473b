/// Shared (read) and exclusive (write) leases per path, with a FIFO wait queue and fencing tokens.
///
/// A deterministic state machine: time is an argument, nothing here reads a clock or does I/O. The owner (the
/// directory's lock service) serialises calls, parks waiting requests and turns the returned grants and timeouts
/// into answers.
///
/// Rules:
/// - Any number of read holders, or exactly one write holder.
/// - A new request is granted at once only when it is compatible with the holders *and* nobody is queued, so a
///   waiting writer is never starved by a stream of new readers.
/// - Queued requests are granted in arrival order; a run of readers at the head of the queue is granted together.
/// - A lease ends when released by its own client, or when it expires (then the next waiters are granted).
/// - Every write grant carries a fencing token larger than every token handed out before.
public struct LockTable: Sendable {
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        case read
        case write
    }

    /// A granted lease.
    public struct Lease: Sendable, Equatable {
        public var lockId: Int64
        public var path: String
        public var clientId: Int64
        public var mode: Mode
        /// The fencing token (write and read leases both get one; only write tokens fence data).
        public var token: Int64
        public var expiresAtMs: Int64
    }

    /// A queued request.
    public struct Waiter: Sendable, Equatable {
        public var requestId: Int64
        public var path: String
        public var clientId: Int64
        public var mode: Mode
        public var ttlMs: Int64
        public var deadlineMs: Int64
    }

    /// What `acquire` decided.
    public enum Acquisition: Sendable, Equatable {
        case granted(Lease)
        /// Queued until `deadlineMs`; a later `release`/`tick` returns the grant or the timeout for `requestId`.
        case queued(Waiter)
        /// Not grantable and the caller would not wait: the current holders.
        case busy([Lease])
    }

    /// A queued request's outcome, produced by `release`, `tick` or `cancel`.
    public enum Outcome: Sendable, Equatable {
        case granted(requestId: Int64, Lease)
        case timedOut(requestId: Int64, path: String, holders: [Lease])
    }

    public enum LockError: Error, Equatable, Sendable {
        case notFound
        case notOwner
    }

    private struct PathState: Sendable {
        var holders: [Lease] = []
        var queue: [Waiter] = []
        var isEmpty: Bool { holders.isEmpty && queue.isEmpty }
    }

    private var paths: [String: PathState] = [:]
    private var pathOfLock: [Int64: String] = [:]
    private var nextLockId: Int64 = 1
    private var nextRequestId: Int64 = 1
    private var lastToken: Int64

    /// - Parameter tokenBase: tokens start above this; pass a value above every token of an earlier run.
    public init(tokenBase: Int64 = 0) {
        lastToken = tokenBase
    }

    // MARK: Queries

    /// Current leases and waiters, for one path or all.
    public func snapshot(path: String? = nil) -> (holders: [Lease], waiters: [Waiter]) {
        let states = path.map { paths[$0].map { [$0] } ?? [] } ?? paths.keys.sorted().compactMap { paths[$0] }
        return (states.flatMap(\.holders), states.flatMap(\.queue))
    }

    /// The current holders of a path.
    public func holders(of path: String) -> [Lease] { paths[path]?.holders ?? [] }

    /// The write lease on a path, if any.
    public func writer(of path: String) -> Lease? { paths[path]?.holders.first { $0.mode == .write } }

    /// The earliest time at which `tick` has something to do (a lease expiry or a waiter deadline).
    public var nextDeadlineMs: Int64? {
        var earliest: Int64?
        for state in paths.values {
            for holder in state.holders { earliest = min(earliest ?? holder.expiresAtMs, holder.expiresAtMs) }
            for waiter in state.queue { earliest = min(earliest ?? waiter.deadlineMs, waiter.deadlineMs) }
        }
        return earliest
    }

    // MARK: Transitions

    /// Requests a lease on `path` for `ttlMs`, waiting up to `waitMs` (0 = try once).
    public mutating func acquire(
        path: String, clientId: Int64, mode: Mode, ttlMs: Int64, waitMs: Int64, nowMs: Int64
    ) -> Acquisition {
        var state = paths[path] ?? PathState()
        defer { paths[path] = state.isEmpty ? nil : state }
        if state.queue.isEmpty && Self.compatible(mode, with: state.holders) {
            let lease = grant(path: path, clientId: clientId, mode: mode, ttlMs: ttlMs, nowMs: nowMs)
            state.holders.append(lease)
            return .granted(lease)
        }
        guard waitMs > 0 else { return .busy(state.holders) }
        let waiter = Waiter(
            requestId: nextRequestId, path: path, clientId: clientId, mode: mode, ttlMs: ttlMs,
            deadlineMs: nowMs + waitMs)
        nextRequestId += 1
        state.queue.append(waiter)
        return .queued(waiter)
    }

    /// Ends a lease; only its own client may. Returns the grants this frees.
    public mutating func release(lockId: Int64, clientId: Int64, nowMs: Int64) throws(LockError) -> [Outcome] {
        guard let path = pathOfLock[lockId], var state = paths[path],
            let index = state.holders.firstIndex(where: { $0.lockId == lockId })
        else { throw .notFound }
        guard state.holders[index].clientId == clientId else { throw .notOwner }
        state.holders.remove(at: index)
        pathOfLock[lockId] = nil
        var outcomes: [Outcome] = []
        promote(path: path, &state, nowMs: nowMs, into: &outcomes)
        paths[path] = state.isEmpty ? nil : state
        return outcomes
    }

    /// The lock ids `clientId` holds on `path`.
    public func leases(of clientId: Int64, on path: String) -> [Lease] {
        holders(of: path).filter { $0.clientId == clientId }
    }

    /// Extends a lease to `nowMs + ttlMs`; only its own client may.
    public mutating func renew(lockId: Int64, clientId: Int64, ttlMs: Int64, nowMs: Int64) throws(LockError) -> Lease {
        guard let path = pathOfLock[lockId], var state = paths[path],
            let index = state.holders.firstIndex(where: { $0.lockId == lockId })
        else { throw .notFound }
        guard state.holders[index].clientId == clientId else { throw .notOwner }
        state.holders[index].expiresAtMs = nowMs + ttlMs
        paths[path] = state
        return state.holders[index]
    }

    /// Withdraws a queued request (its connection went away). Returns grants this frees.
    public mutating func cancel(requestId: Int64, path: String, nowMs: Int64) -> [Outcome] {
        guard var state = paths[path], let index = state.queue.firstIndex(where: { $0.requestId == requestId }) else {
            return []
        }
        state.queue.remove(at: index)
        var outcomes: [Outcome] = []
        promote(path: path, &state, nowMs: nowMs, into: &outcomes)
        paths[path] = state.isEmpty ? nil : state
        return outcomes
    }

    /// Expires leases and waiter deadlines due at `nowMs`, and grants what that frees.
    public mutating func tick(nowMs: Int64) -> [Outcome] {
        var outcomes: [Outcome] = []
        for path in paths.keys.sorted() {
            guard var state = paths[path] else { continue }
            let expired = state.holders.filter { $0.expiresAtMs <= nowMs }
            guard !expired.isEmpty || state.queue.contains(where: { $0.deadlineMs <= nowMs }) else { continue }
            for lease in expired { pathOfLock[lease.lockId] = nil }
            state.holders.removeAll { $0.expiresAtMs <= nowMs }
            promote(path: path, &state, nowMs: nowMs, into: &outcomes)
            let late = state.queue.filter { $0.deadlineMs <= nowMs }
            state.queue.removeAll { $0.deadlineMs <= nowMs }
            for waiter in late {
                outcomes.append(.timedOut(requestId: waiter.requestId, path: path, holders: state.holders))
            }
            // A timed-out head may have been what blocked the waiters behind it.
            promote(path: path, &state, nowMs: nowMs, into: &outcomes)
            paths[path] = state.isEmpty ? nil : state
        }
        return outcomes
    }

    // MARK: Internals

    private static func compatible(_ mode: Mode, with holders: [Lease]) -> Bool {
        switch mode {
        case .read: return !holders.contains { $0.mode == .write }
        case .write: return holders.isEmpty
        }
    }

    /// Grants queued requests from the head while they are compatible.
    private mutating func promote(path: String, _ state: inout PathState, nowMs: Int64, into outcomes: inout [Outcome]) {
        while let head = state.queue.first, Self.compatible(head.mode, with: state.holders) {
            state.queue.removeFirst()
            let lease = grant(path: path, clientId: head.clientId, mode: head.mode, ttlMs: head.ttlMs, nowMs: nowMs)
            state.holders.append(lease)
            outcomes.append(.granted(requestId: head.requestId, lease))
        }
    }

    private mutating func grant(path: String, clientId: Int64, mode: Mode, ttlMs: Int64, nowMs: Int64) -> Lease {
        lastToken += 1
        let lease = Lease(
            lockId: nextLockId, path: path, clientId: clientId, mode: mode, token: lastToken,
            expiresAtMs: nowMs + ttlMs)
        nextLockId += 1
        pathOfLock[lease.lockId] = path
        return lease
    }
}
