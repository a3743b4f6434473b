import Synchronization

/// What the C callbacks reach through their context pointer: the handler and the parked connections.
/// Retained by the daemon from start to stop (see ``HTTPServer``).
final class ServerCore: Sendable {
    private struct State {
        var stopping = false
        var parked: [ObjectIdentifier: Suspension] = [:]
    }

    let handler: RequestHandler
    /// Closes connections whose request headers are late (see ``HeaderDeadlines``).
    let headerDeadlines: HeaderDeadlines
    private let state = Mutex(State())
    /// libmicrohttpd's messages while the daemon starts; nil once it has started (later messages are dropped).
    private let startMessages = Mutex<[String]?>([])

    init(handler: @escaping RequestHandler, headerTimeoutSeconds: Int) {
        self.handler = handler
        headerDeadlines = HeaderDeadlines(seconds: headerTimeoutSeconds)
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

    /// Whether libmicrohttpd's messages are still recorded (the daemon is starting).
    var isStarting: Bool {
        startMessages.withLock { $0 != nil }
    }

    /// Records a libmicrohttpd message if the daemon is starting (at most 16 are kept).
    func record(_ message: String) {
        startMessages.withLock { messages in
            if messages != nil, messages!.count < 16 {
                messages!.append(message)
            }
        }
    }

    /// Stops recording messages.
    /// - Returns: the messages recorded while the daemon started.
    func finishStarting() -> [String] {
        startMessages.withLock { messages in
            defer { messages = nil }
            return messages ?? []
        }
    }

    /// The number of parked requests not yet completed.
    var parkedCount: Int {
        state.withLock { state in state.parked.count }
    }
}
