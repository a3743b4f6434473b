internal import CMicroHTTPD
import Foundation
import Synchronization

#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// Closes connections whose request headers take longer than the connection timeout to arrive (slow-loris).
///
/// libmicrohttpd 0.9.75's MHD_OPTION_CONNECTION_TIMEOUT counts idle time only, so a client that sends one header
/// byte just before each timeout holds its connection (and memory) forever. Here each connection gets a deadline
/// when it opens and whenever a request completes; the access handler's first call (all headers in) clears it.
/// A timer shuts the socket down once a deadline passes; libmicrohttpd then sees the error and closes the connection
/// itself. Bodies are not covered: MHD's idle timeout applies to them, like nginx's `client_body_timeout`.
final class HeaderDeadlines: Sendable {
    private struct Entry: Sendable {
        var descriptor: Int32
        var deadline: ContinuousClock.Instant?
    }

    private let timeout: Duration
    /// Keyed by the MHD connection's address, in shards: every request touches its entry twice from one of the
    /// worker threads, and a single lock made them queue (29% of a file server's CPU spinning under 4 KiB GETs).
    /// An entry is removed on MHD_CONNECTION_NOTIFY_CLOSED, which libmicrohttpd sends before it closes the
    /// descriptor: under its shard's lock the descriptor is never a reused one.
    private let shards: [Shard] = (0..<64).map { _ in Shard() }

    private final class Shard: Sendable {
        let entries = Mutex<[UInt: Entry]>([:])
    }
    /// Signalled by stop(): wakes the watchdog thread and ends it.
    private let stopSignal = DispatchSemaphore(value: 0)
    /// Signalled by the watchdog thread when it has ended.
    private let stopped = DispatchSemaphore(value: 0)

    /// - Parameter seconds: The headers deadline; 0 disables the checks.
    init(seconds: Int) {
        timeout = .seconds(max(0, seconds))
    }

    private var isEnabled: Bool { timeout > .zero }

    /// The shard of a connection (addresses are at least 16-byte aligned: skip the low bits).
    private func shard(_ connection: OpaquePointer) -> Shard {
        shards[Int((UInt(bitPattern: connection) >> 4) % UInt(shards.count))]
    }

    /// Starts the watchdog thread (it checks every quarter of the timeout, at least once a second).
    func start() {
        guard isEnabled else { return }
        let interval = Int(min(timeout / 4, .seconds(1)) / .milliseconds(1))
        Thread.detachNewThread { [self] in
            while stopSignal.wait(timeout: .now() + .milliseconds(interval)) == .timedOut {
                expire(now: .now)
            }
            stopped.signal()
        }
    }

    /// Ends the watchdog thread and waits for it; call once, after start(), before MHD_stop_daemon.
    func stop() {
        guard isEnabled else { return }
        stopSignal.signal()
        stopped.wait()
    }

    /// MHD_CONNECTION_NOTIFY_STARTED: the headers are due within the timeout.
    func opened(_ connection: OpaquePointer) {
        guard isEnabled,
            let info = dfs_mhd_get_connection_info(connection, .CONNECTION_INFO_CONNECTION_FD)
        else { return }
        let entry = Entry(descriptor: info.pointee.connect_fd, deadline: .now + timeout)
        shard(connection).entries.withLock { $0[UInt(bitPattern: connection)] = entry }
    }

    /// The access handler's first call for a request: its headers are in.
    func headersArrived(_ connection: OpaquePointer) {
        guard isEnabled else { return }
        shard(connection).entries.withLock { $0[UInt(bitPattern: connection)]?.deadline = nil }
    }

    /// A request completed: the next request's headers are due within the timeout.
    func requestCompleted(_ connection: OpaquePointer) {
        guard isEnabled else { return }
        let deadline = ContinuousClock.now + timeout
        shard(connection).entries.withLock { $0[UInt(bitPattern: connection)]?.deadline = deadline }
    }

    /// MHD_CONNECTION_NOTIFY_CLOSED: forget the connection before its descriptor is closed.
    func closed(_ connection: OpaquePointer) {
        guard isEnabled else { return }
        _ = shard(connection).entries.withLock { $0.removeValue(forKey: UInt(bitPattern: connection)) }
    }

    private func expire(now: ContinuousClock.Instant) {
        for shard in shards {
            shard.entries.withLock { entries in
                for (key, entry) in entries {
                    guard let deadline = entry.deadline, deadline <= now else { continue }
                    // Only shutdown, never close: the descriptor stays libmicrohttpd's to close.
                    shutdown(entry.descriptor, Int32(SHUT_RDWR))
                    entries[key]?.deadline = nil
                }
            }
        }
    }
}

/// MHD_OPTION_NOTIFY_CONNECTION: tracks open connections for ``HeaderDeadlines``.
let connectionNotified: MHD_NotifyConnectionCallback = { context, connection, _, code in
    guard let context, let connection else { return }
    let deadlines = Unmanaged<ServerCore>.fromOpaque(context).takeUnretainedValue().headerDeadlines
    switch code {
    case .CONNECTION_NOTIFY_STARTED:
        deadlines.opened(connection)
    case .CONNECTION_NOTIFY_CLOSED:
        deadlines.closed(connection)
    }
}
