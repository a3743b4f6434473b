import Synchronization

/// What the C callbacks reach through their context pointer: the handler and the parked connections.
/// Retained by the daemon from start to stop (see ``HTTPServer``).
final class ServerCore: Sendable {
    private struct State {
        var stopping = false
        var parked: [ObjectIdentifier: Suspension] = [:]
    }

    let handler: RequestHandler
    private let state = Mutex(State())

    init(handler: @escaping RequestHandler) {
        self.handler = handler
    }

    /// Registers a connection about to be parked.
    /// - Returns: false if the server is stopping (answer 503 instead of parking).
    func park(_ suspension: Suspension) -> Bool {
        state.withLock { state in
            guard !state.stopping else { return false }
            state.parked[ObjectIdentifier(suspension)] = suspension
            return true
        }
    }

    /// Forgets a parked connection once its request completed.
    func unpark(_ suspension: Suspension) {
        _ = state.withLock { state in state.parked.removeValue(forKey: ObjectIdentifier(suspension)) }
    }

    /// Marks the server as stopping.
    /// - Returns: the connections parked now; none can be parked after this call.
    func beginStopping() -> [Suspension] {
        state.withLock { state in
            state.stopping = true
            return Array(state.parked.values)
        }
    }

    /// The number of parked requests not yet completed.
    var parkedCount: Int {
        state.withLock { state in state.parked.count }
    }
}
