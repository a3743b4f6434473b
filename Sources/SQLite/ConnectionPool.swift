import Foundation

/// Connections (or objects wrapping one) used by one thread at a time: `withConnection` takes an idle one, or makes
/// one, and puts it back after. There are as many as were ever in use at once.
///
/// For read-only connections beside a writer (WAL): a reader per HTTP worker thread, kept in the thread's
/// dictionary, cost 3% of the directory's CPU (an NSDictionary lookup with a bridged key on every request).
public final class ConnectionPool<Connection: AnyObject>: @unchecked Sendable {
    // @unchecked: `idle` only under `lock`, and a connection belongs to one `withConnection` call at a time.
    private let lock = NSLock()
    private var idle: [Connection] = []
    private let make: () throws -> Connection

    /// - Parameter make: opens a new connection when none is idle.
    public init(make: @escaping () throws -> Connection) {
        self.make = make
    }

    /// Runs `body` with a connection no other caller is using meanwhile.
    public func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        lock.lock()
        let reused = idle.popLast()
        lock.unlock()
        let connection = try reused ?? make()
        defer {
            lock.lock()
            idle.append(connection)
            lock.unlock()
        }
        return try body(connection)
    }
}
