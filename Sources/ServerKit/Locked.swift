import Foundation
import Synchronization

/// A value behind a lock that stays cheap when threads collide: for state that every request touches.
///
/// Swift's `Mutex` on Linux parks a contended waiter on a priority-inheritance futex (`FUTEX_LOCK_PI`, the
/// kernel's rt-mutex path) after spinning; with four HTTP worker threads on two cores that showed up as 21–29% of
/// a file server's CPU under 4 KiB GETs (`_MutexHandle._lockSlow`). Here an `NSLock` (a plain pthread mutex)
/// serialises the callers, so the inner `Mutex`, which keeps the value `Sendable`-safe, is never contended and
/// costs one atomic exchange.
public final class Locked<Value>: Sendable {
    private let lock = NSLock()
    private let storage: Mutex<Value>

    public init(_ value: sending Value) {
        storage = Mutex(value)
    }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E)
        -> sending Result
    {
        lock.lock()
        defer { lock.unlock() }
        return try storage.withLock(body)
    }
}
