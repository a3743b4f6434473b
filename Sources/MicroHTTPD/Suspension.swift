internal import CMicroHTTPD
import Synchronization

/// A parked request (see ``Disposition/suspend(park:)``). Thread-safe: answer it from any thread.
public final class Suspension: Sendable {
    private struct State {
        var response: Response?
        var answered = false
        var suspended = false
        var closed = false
    }

    /// The MHD connection's address; used only under the lock and only until `closed`.
    private let connectionAddress: UInt
    private let state = Mutex(State())

    init(connection: OpaquePointer) {
        connectionAddress = UInt(bitPattern: connection)
    }

    private var connection: OpaquePointer? { OpaquePointer(bitPattern: connectionAddress) }

    /// Answers the parked request with `response`. Only the first call counts: later calls, and calls after the
    /// connection is gone, are ignored (a `.file` descriptor in an ignored response is closed).
    /// - Parameter response: The response to send.
    public func resume(with response: Response) {
        let ignored: Response? = state.withLock { state in
            guard !state.answered, !state.closed else { return response }
            state.answered = true
            state.response = response
            if state.suspended, let connection {
                state.suspended = false
                // Under the lock, so the connection cannot complete (and be freed) concurrently.
                MHD_resume_connection(connection)
            }
            return nil
        }
        ignored?.discard()
    }

    /// Suspends the connection unless it was answered already. Called from the access handler only.
    /// - Returns: true if the connection is now suspended.
    func suspendUnlessAnswered() -> Bool {
        state.withLock { state in
            guard !state.answered, !state.closed, let connection else { return false }
            state.suspended = true
            MHD_suspend_connection(connection)
            return true
        }
    }

    /// Takes the answer, if any. Called from the access handler after a resume.
    func takeResponse() -> Response? {
        state.withLock { state in
            defer { state.response = nil }
            return state.response
        }
    }

    /// Whether the client went away while the request was parked (its socket reports a hang-up or end of stream).
    /// libmicrohttpd does not watch parked connections, so an answer to a gone client would look delivered: ask
    /// before handing out something that must not be lost, such as a lock.
    public var clientHasGone: Bool {
        state.withLock { state in
            // Under the lock, so the connection cannot complete (and be freed) concurrently.
            guard !state.closed, !state.answered, let connection else { return state.closed }
            return dfs_mhd_peer_closed(connection) != 0
        }
    }

    /// The request is over: later `resume(with:)` calls are ignored. Called from NOTIFY_COMPLETED.
    func close() {
        let unsent: Response? = state.withLock { state in
            state.closed = true
            defer { state.response = nil }
            return state.response
        }
        unsent?.discard()
    }
}
