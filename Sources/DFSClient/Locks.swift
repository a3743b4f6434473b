import Curl
import DFSCore
import DFSProtocol
import Foundation
import Synchronization

/// Shared or exclusive.
public enum LockMode: String, Sendable {
    case read
    case write
}

extension DFSClient {
    /// Takes a lease on `path`, waiting in the server's FIFO queue up to `waitMs` (0 = try once).
    ///
    /// The lease is renewed in the background until `LockHandle.release()`; while it is held, this client's
    /// reads and writes of the path use it instead of locking again.
    /// - Throws: `DFSClientError` with code `lock_busy` (and the holders in the message) when not granted in time.
    public func lock(
        _ path: String, mode: LockMode = .write, ttlMs: Int64? = nil, waitMs: Int64 = 0, autoRenew: Bool = true
    ) throws -> LockHandle {
        let request = LockRequest(path: path, mode: mode.rawValue, clientId: try clientId(), ttlMs: ttlMs, waitMs: waitMs)
        let info = try transport.call("POST", "/locks", body: request, as: LockInfo.self)
        let handle = LockHandle(
            info: info, client: self,
            renewer: autoRenew
                ? LockRenewer(
                    directory: settings.directory, caFile: settings.caFile, token: transport.token, info: info,
                    ttlMs: ttlMs ?? info.expiresInMs) : nil)
        heldLocks[Self.key(path)] = info
        return handle
    }

    /// Releases every lease this client holds on `path`; returns how many.
    @discardableResult
    public func unlock(_ path: String) throws -> Int64 {
        heldLocks[Self.key(path)] = nil
        return try transport.call(
            "DELETE", "/locks", query: ["path": path, "client_id": String(try clientId())], as: ReleaseResponse.self
        ).released
    }

    /// The lease table: holders and waiters, for one path or all.
    public func locks(_ path: String? = nil) throws -> LocksResponse {
        try transport.call("GET", "/locks", query: path.map { ["path": $0] } ?? [:], as: LocksResponse.self)
    }

    func release(_ info: LockInfo) throws {
        if heldLocks[Self.key(info.path)]?.lockId == info.lockId { heldLocks[Self.key(info.path)] = nil }
        _ = try transport.call(
            "DELETE", "/locks/\(info.lockId)", query: ["client_id": String(info.clientId)], as: OKResponse.self)
    }

    /// Runs `body` under a lock on `path` unless this client already holds one that covers `mode`.
    func withLock<T>(_ path: String, _ mode: LockMode, _ body: (LockInfo?) throws -> T) throws -> T {
        if let held = heldLocks[Self.key(path)], mode == .read || held.mode == LockMode.write.rawValue {
            return try body(held)
        }
        guard settings.lockWaitMs >= 0 else { return try body(nil) }
        let handle = try lock(path, mode: mode, waitMs: settings.lockWaitMs)
        do {
            let result = try body(handle.info)
            try handle.release()
            return result
        } catch {
            try? handle.release()
            throw error
        }
    }

    static func key(_ path: String) -> String { (try? DFSPath(path).description) ?? path }
}

/// A held lease. Release it when done; it is renewed in the background until then.
public final class LockHandle {
    public let info: LockInfo
    private let client: DFSClient
    private let renewer: LockRenewer?
    private var released = false

    init(info: LockInfo, client: DFSClient, renewer: LockRenewer?) {
        self.info = info
        self.client = client
        self.renewer = renewer
        renewer?.start()
    }

    /// A handle dropped without `release()` (an error path, say) still gives the lock back, best effort, instead of
    /// leaving others to wait for the lease to run out.
    deinit {
        renewer?.stop()
        if !released { try? client.release(info) }
    }

    /// Lets go of the handle but keeps the lease on the server until it expires or someone calls
    /// `DFSClient.unlock` (what `dfs lock PATH` without a command does).
    public func detach() {
        released = true
        renewer?.stop()
    }

    /// Ends the lease (idempotent).
    public func release() throws {
        guard !released else { return }
        released = true
        renewer?.stop()
        try client.release(info)
    }
}

/// Renews one lease every third of its length on its own connection, until stopped.
final class LockRenewer: Sendable {
    private let directory: String
    private let caFile: String?
    private let token: String?
    private let info: LockInfo
    private let ttlMs: Int64
    private let stopped = Mutex(false)
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    init(directory: String, caFile: String?, token: String?, info: LockInfo, ttlMs: Int64) {
        self.directory = directory
        self.caFile = caFile
        self.token = token
        self.info = info
        self.ttlMs = max(100, ttlMs)
    }

    func start() {
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "dfs-lock-renewer"
        thread.start()
    }

    func stop() {
        let first = stopped.withLock { value -> Bool in
            defer { value = true }
            return !value
        }
        guard first else { return }
        wake.signal()
        done.wait()
    }

    private func run() {
        let transport = Transport(directory: directory, caFile: caFile)
        transport.token = token
        let interval = Int(max(30, ttlMs / 3))
        while wake.wait(timeout: .now() + .milliseconds(interval)) == .timedOut {
            if stopped.withLock({ $0 }) { return }
            do {
                _ = try transport.call(
                    "PUT", "/locks/\(info.lockId)", body: RenewRequest(ttlMs: ttlMs),
                    as: LockInfo.self)
            } catch let error as DFSClientError where error.status == 404 || error.status == 403 {
                return  // the lease is gone; the holder's next write will be refused
            } catch {
                continue  // transient: try again next interval
            }
        }
    }
}
