import DFSCore
import DFSProtocol
import Foundation
import Logging
import MicroHTTPD
import ServerKit
import Synchronization

/// The locking service: the pure `LockTable` behind a lock, parked HTTP requests for waiters, and a timer thread
/// for lease expiry and wait deadlines.
///
/// A waiting request holds no thread: the handler parks it (libmicrohttpd suspend) and the grant — from a release,
/// an expiry or a timeout — resumes it with the answer.
public final class LockService: Sendable {
    private let table: Locked<LockTable>
    private let slots = Locked<[Int64: WaiterSlot]>([:])
    private let defaultLeaseMs: Int64
    private let maxWaitMs: Int64
    private let logger: Logger
    /// When the timer thread will next look at the table by itself, set under the table's lock. A grant, a queued
    /// request or a renewal wakes it only when its deadline comes sooner: waking it for every grant (a 30 s lease,
    /// with the timer due within a second anyway) cost a context switch and a scan of every lock per write.
    private let timerDueMs = Atomic<Int64>(0)
    /// The timer thread: expires leases and times out waiters; woken early when a deadline comes sooner.
    private let timer = BackgroundThread(name: "dfs-lock-timer")

    init(tokenBase: Int64, defaultLeaseMs: Int64, maxWaitMs: Int64, logger: Logger) {
        self.table = Locked(LockTable(tokenBase: tokenBase))
        self.defaultLeaseMs = defaultLeaseMs
        self.maxWaitMs = maxWaitMs
        self.logger = logger
    }

    func start() { timer.start { [self] in runTimer() } }

    func stop() { timer.stop() }

    // MARK: Requests

    /// `POST /locks`: grant now, answer busy, or park the request until granted or timed out.
    func acquire(_ request: LockRequest, clientId: Int64) throws -> Disposition {
        let path = try DirectoryRoutes.path(request.path).description
        guard let mode = LockTable.Mode(rawValue: request.mode) else {
            throw DFSError.badRequest("mode must be 'read' or 'write'")
        }
        let ttl = request.ttlMs ?? defaultLeaseMs
        guard (100...86_400_000).contains(ttl) else { throw DFSError.badRequest("ttl_ms must be 100 to 86400000") }
        let wait = request.waitMs ?? 0
        guard wait >= 0 else { throw DFSError.badRequest("wait_ms must not be negative") }
        let now = Clock.monotonicMs()
        let slot = WaiterSlot()
        let (result, wake) = table.withLock { table in
            let result = table.acquire(
                path: path, clientId: clientId, mode: mode, ttlMs: ttl, waitMs: min(wait, maxWaitMs), nowMs: now)
            if case .queued(let waiter) = result {
                // Registered before the table's lock is let go: the grant or time-out of this request comes from a
                // later table operation, whose `deliver` must find the slot (else the answer would be dropped and
                // the request left parked, its lock granted to nobody who knows).
                slots.withLock { $0[waiter.requestId] = slot }
            }
            return (result, timerIsLate(for: result))
        }
        switch result {
        case .granted(let lease):
            if wake { timer.wake() }
            return .respond(.json(info(lease, now: now)))
        case .busy(let holders):
            return .respond(busy(path, holders, now: now))
        case .queued:
            if wake { timer.wake() }
            return .suspend { suspension in slot.park(suspension) }
        }
    }

    /// `PUT /locks/{id}`: extend a lease.
    func renew(lockId: Int64, clientId: Int64, ttlMs: Int64?) throws -> LockInfo {
        let ttl = ttlMs ?? defaultLeaseMs
        guard (100...86_400_000).contains(ttl) else { throw DFSError.badRequest("ttl_ms must be 100 to 86400000") }
        let now = Clock.monotonicMs()
        do {
            let (lease, wake) = try table.withLock { table throws(LockTable.LockError) in
                let lease = try table.renew(lockId: lockId, clientId: clientId, ttlMs: ttl, nowMs: now)
                return (lease, timerIsLate(for: .granted(lease)))
            }
            if wake { timer.wake() }
            return info(lease, now: now)
        } catch {
            throw Self.map(error, lockId)
        }
    }

    /// `DELETE /locks/{id}`: end a lease and hand the lock on.
    func release(lockId: Int64, clientId: Int64) throws {
        let now = Clock.monotonicMs()
        do {
            let outcomes = try table.withLock { table throws(LockTable.LockError) in
                try table.release(lockId: lockId, clientId: clientId, nowMs: now)
            }
            deliver(outcomes, now: now)
        } catch {
            throw Self.map(error, lockId)
        }
    }

    /// `DELETE /locks?path=&client_id=`: end every lease the client holds on the path.
    func releaseAll(path: String, clientId: Int64) throws -> Int64 {
        let now = Clock.monotonicMs()
        let (count, outcomes) = table.withLock { table -> (Int64, [LockTable.Outcome]) in
            var outcomes: [LockTable.Outcome] = []
            let mine = table.leases(of: clientId, on: path)
            for lease in mine {
                outcomes += (try? table.release(lockId: lease.lockId, clientId: clientId, nowMs: now)) ?? []
            }
            return (Int64(mine.count), outcomes)
        }
        deliver(outcomes, now: now)
        return count
    }

    /// `GET /locks`: holders and waiters.
    func list(path: String?) -> LocksResponse {
        let now = Clock.monotonicMs()
        let (holders, waiters) = table.withLock { $0.snapshot(path: path) }
        return LocksResponse(
            holders: holders.map { info($0, now: now) },
            waiters: waiters.map {
                LockWaiterInfo(path: $0.path, clientId: $0.clientId, mode: $0.mode.rawValue, waitsForMs: $0.deadlineMs - now)
            })
    }

    // MARK: Locks taken with a write

    /// Takes the write lock on `path` for `clientId` if it is free now; 409 `lock_busy` with the holders if not.
    func tryWriteLock(path: String, clientId: Int64) throws -> LockInfo {
        let now = Clock.monotonicMs()
        let (result, wake) = table.withLock { table in
            let result = table.acquire(
                path: path, clientId: clientId, mode: .write, ttlMs: defaultLeaseMs, waitMs: 0, nowMs: now)
            return (result, timerIsLate(for: result))
        }
        switch result {
        case .granted(let lease):
            if wake { timer.wake() }
            return info(lease, now: now)
        case .busy(let holders):
            throw busyError(path, holders, now: now)
        case .queued:
            throw DFSError(500, .internal, "a try-lock was queued")
        }
    }

    /// Releases `clientId`'s write lease on `path` whose token is `token`, if it still holds it.
    func releaseWriteLock(path: String, token: Int64, clientId: Int64) {
        let now = Clock.monotonicMs()
        let outcomes = table.withLock { table -> [LockTable.Outcome] in
            guard let lease = table.writer(of: path), lease.token == token, lease.clientId == clientId else { return [] }
            return (try? table.release(lockId: lease.lockId, clientId: clientId, nowMs: now)) ?? []
        }
        deliver(outcomes, now: now)
    }

    // MARK: Checks for writes

    /// The current write lease on a path, if any.
    func writer(of path: String) -> LockInfo? {
        let now = Clock.monotonicMs()
        return table.withLock { $0.writer(of: path) }.map { info($0, now: now) }
    }

    /// Lets a write through only when it fits the path's lock: with a token, that token must be the current
    /// write lease's (else 409 `stale_lock`: the lease ended or was never granted); without one, nobody may hold
    /// the write lock (else 423 `locked`).
    func checkWrite(path: String, token: Int64?) throws {
        let writer = table.withLock { $0.writer(of: path) }
        if let token {
            guard writer?.token == token else {
                throw DFSError(
                    409, .staleLock,
                    "lock token \(token) on \(path) is not the current write lock's: the lease ended or another writer holds it"
                )
            }
        } else if let writer {
            throw DFSError(
                423, .locked, "\(path) is write-locked by client \(writer.clientId) (lock \(writer.lockId))")
        }
    }

    // MARK: Internals

    private func runTimer() {
        while !timer.isStopped {
            let now = Clock.monotonicMs()
            let outcomes = table.withLock { $0.tick(nowMs: now) }
            deliver(outcomes, now: now)
            let due = table.withLock { table in
                let due = min(table.nextDeadlineMs ?? Int64.max, now + 1000)
                timerDueMs.store(due, ordering: .relaxed)
                return due
            }
            let waitMs = max(1, due - Clock.monotonicMs())
            timer.pause(ms: Int(waitMs))
        }
        // Answer whoever is still parked: the server is going away.
        let parked = slots.withLock { slots in
            defer { slots.removeAll() }
            return Array(slots.values)
        }
        for slot in parked { slot.answer(.error(.unavailable("the directory server is stopping"))) }
    }

    /// Whether the timer must wake before it is due to expire this grant's lease or time this request out.
    /// Called under the table's lock, as the timer sets `timerDueMs`, so no deadline slips between the two.
    private func timerIsLate(for result: LockTable.Acquisition) -> Bool {
        switch result {
        case .granted(let lease): lease.expiresAtMs < timerDueMs.load(ordering: .relaxed)
        case .queued(let waiter): waiter.deadlineMs < timerDueMs.load(ordering: .relaxed)
        case .busy: false
        }
    }

    private func deliver(_ outcomes: [LockTable.Outcome], now: Int64) {
        var pending = outcomes
        while !pending.isEmpty {
            let outcome = pending.removeFirst()
            switch outcome {
            case .granted(let requestId, let lease):
                let slot = slots.withLock { $0.removeValue(forKey: requestId) }
                guard slot?.clientHasGone != true else {
                    // The waiter hung up while queued: nobody would know they hold the lock, which would stay taken
                    // for a whole lease. Hand it on at once instead.
                    logger.info("lock \(lease.lockId) on \(lease.path) granted to a client that went away; released")
                    pending += table.withLock { table in
                        (try? table.release(lockId: lease.lockId, clientId: lease.clientId, nowMs: now)) ?? []
                    }
                    continue
                }
                slot?.answer(.json(info(lease, now: now)))
            case .timedOut(let requestId, let path, let holders):
                slots.withLock { $0.removeValue(forKey: requestId) }?.answer(busy(path, holders, now: now))
            }
        }
    }

    private func busy(_ path: String, _ holders: [LockTable.Lease], now: Int64) -> Response {
        .error(busyError(path, holders, now: now))
    }

    private func busyError(_ path: String, _ holders: [LockTable.Lease], now: Int64) -> DFSError {
        var error = DFSError(409, .lockBusy, "\(path) is locked")
        error.holders = holders.map { info($0, now: now) }
        return error
    }

    private func info(_ lease: LockTable.Lease, now: Int64) -> LockInfo {
        LockInfo(
            lockId: lease.lockId, path: lease.path, clientId: lease.clientId, mode: lease.mode.rawValue,
            token: lease.token, expiresInMs: lease.expiresAtMs - now)
    }

    private static func map(_ error: LockTable.LockError, _ lockId: Int64) -> DFSError {
        switch error {
        case .notFound: return .notFound("lock \(lockId) is not held (released or expired)")
        case .notOwner: return .forbidden("lock \(lockId) belongs to another client")
        }
    }
}

/// Meets a parked request and its answer, whichever comes first.
final class WaiterSlot: Sendable {
    private let state = Mutex<(suspension: Suspension?, answer: Response?)>((nil, nil))

    /// Whether the parked request's client went away (false while it is not parked yet).
    var clientHasGone: Bool {
        state.withLock { $0.suspension }?.clientHasGone ?? false
    }

    func park(_ suspension: Suspension) {
        let ready = state.withLock { state -> Response? in
            if let answer = state.answer { return answer }
            state.suspension = suspension
            return nil
        }
        if let ready { suspension.resume(with: ready) }
    }

    func answer(_ response: Response) {
        let parked = state.withLock { state -> Suspension? in
            if let suspension = state.suspension { return suspension }
            state.answer = response
            return nil
        }
        parked?.resume(with: response)
    }
}
