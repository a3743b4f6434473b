internal import CMicroHTTPD
import Foundation

/// The access handler given to MHD_start_daemon; its context is the retained ``ServerCore``.
let accessHandler: MHD_AccessHandlerCallback = {
    context, connection, url, method, _, uploadData, uploadDataSize, requestContext in
    guard let context, let connection, let uploadDataSize, let requestContext else { return .NO }
    if let existing = requestContext.pointee {
        let state = Unmanaged<Connection>.fromOpaque(existing).takeUnretainedValue()
        let size = uploadDataSize.pointee
        guard size > 0 else { return state.bodyComplete(connection) }
        uploadDataSize.pointee = 0  // every chunk is consumed whole
        return state.bodyChunk(uploadData, size, connection)
    }
    let core = Unmanaged<ServerCore>.fromOpaque(context).takeUnretainedValue()
    core.headerDeadlines.headersArrived(connection)
    let request = Request(
        connection: connection, method: method.map { String(cString: $0) } ?? "",
        url: url.map { String(cString: $0) } ?? "/")
    let state = Connection(core: core, disposition: core.handler(request))
    // Released in requestCompleted, which MHD calls for every request whose handler ran (also on abort).
    requestContext.pointee = Unmanaged.passRetained(state).toOpaque()
    return state.headersComplete(connection)
}

/// MHD_OPTION_NOTIFY_COMPLETED: the request is over (answered, aborted, timed out, or the daemon stopped).
let requestCompleted: MHD_RequestCompletedCallback = { context, connection, requestContext, _ in
    if let context, let connection {
        Unmanaged<ServerCore>.fromOpaque(context).takeUnretainedValue().headerDeadlines.requestCompleted(connection)
    }
    guard let requestContext, let existing = requestContext.pointee else { return }
    requestContext.pointee = nil
    Unmanaged<Connection>.fromOpaque(existing).takeRetainedValue().completed()
}

/// One request's progress through libmicrohttpd's multi-call access-handler protocol:
///
/// 1. first call: headers only; the handler decides (``Disposition``) and we return YES without responding,
///    because a response queued on the first call makes 0.9.75 close a keep-alive connection;
/// 2. one call per body chunk: consumed whole (`*upload_data_size = 0`);
/// 3. a final call with no data: the response is queued (or the connection is suspended).
///
/// All calls for a request come from the same MHD thread, so this class needs no lock.
final class Connection {
    private enum Phase {
        case discarding(Response)
        case collecting(limit: Int, tooLarge: () -> Response, then: (Data) -> Disposition, body: Data)
        case streaming(BodyConsumer)
        case suspending(park: (Suspension) -> Void)
        case parked(Suspension)
        case answered
    }

    private let core: ServerCore
    private var phase: Phase
    private var parked: Suspension?

    init(core: ServerCore, disposition: Disposition) {
        self.core = core
        switch disposition {
        case .respond(let response):
            phase = .discarding(response)
        case .collectBody(let limit, let tooLarge, let then):
            phase = .collecting(limit: max(0, limit), tooLarge: tooLarge, then: { .respond(then($0)) }, body: Data())
        case .collectBodyThen(let limit, let tooLarge, let then):
            phase = .collecting(limit: max(0, limit), tooLarge: tooLarge, then: then, body: Data())
        case .streamBody(let consumer):
            phase = .streaming(consumer)
        case .suspend(let park):
            phase = .suspending(park: park)
        }
    }

    /// First call. An announced over-limit body is refused. A client waiting for `100 Continue` is answered now
    /// (MHD skips the `100` and closes, so the body is never sent). A client already sending the body would see
    /// a reset before reading the answer, so a moderate body is read and discarded first; only a huge one is
    /// answered at once.
    func headersComplete(_ connection: OpaquePointer) -> MHD_Result {
        guard case .collecting(let limit, let tooLarge, _, _) = phase,
            let announced = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length"),
            let length = UInt64(String(cString: announced)), length > UInt64(limit)
        else { return .YES }
        let expect = MHD_lookup_connection_value(connection, .HEADER_KIND, "Expect").map { String(cString: $0) }
        if expect?.lowercased() == "100-continue" || length > Self.maxDiscardedBody {
            return answer(tooLarge(), connection)
        }
        phase = .discarding(tooLarge())
        return .YES
    }

    /// The largest refused body that is read and thrown away so its sender can read the refusal.
    static let maxDiscardedBody: UInt64 = 64 << 20

    /// A body chunk; `data` is valid only during this call.
    func bodyChunk(_ data: UnsafePointer<CChar>?, _ size: Int, _ connection: OpaquePointer) -> MHD_Result {
        guard let data else { return .YES }
        switch phase {
        case .collecting(let limit, let tooLarge, let then, var body):
            guard body.count + size <= limit else {
                // Answering mid-body would make MHD close a socket with unread data (an RST that can destroy the
                // response before the client reads it), so the rest of the body is discarded first.
                phase = .discarding(tooLarge())
                return .YES
            }
            phase = .answered  // drop the reference so the append below does not copy the buffer
            body.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: size)
            phase = .collecting(limit: limit, tooLarge: tooLarge, then: then, body: body)
            return .YES
        case .streaming(let consumer):
            if let response = consumer.consume(Data(bytes: data, count: size)) {
                phase = .discarding(response)  // answered after the rest of the body, as above
            }
            return .YES
        case .discarding, .suspending, .parked, .answered:
            return .YES
        }
    }

    /// The final call: the body is complete (or the connection was resumed).
    func bodyComplete(_ connection: OpaquePointer) -> MHD_Result {
        switch phase {
        case .discarding(let response):
            return answer(response, connection)
        case .collecting(_, _, let then, let body):
            phase = .answered
            return proceed(then(body), connection)
        case .streaming(let consumer):
            phase = .answered
            return proceed(consumer.finishing(), connection)
        case .suspending(let park):
            let suspension = Suspension(connection: connection)
            guard core.park(suspension) else { return answer(.serviceUnavailable, connection) }
            parked = suspension
            phase = .parked(suspension)
            guard suspension.suspendUnlessAnswered() else { return answerParked(suspension, connection) }
            park(suspension)
            return .YES
        case .parked(let suspension):
            return answerParked(suspension, connection)
        case .answered:
            return .YES
        }
    }

    /// The request is over. Cleans up whatever was not handed to MHD.
    func completed() {
        switch phase {
        case .discarding(let response):
            response.discard()
        case .collecting:
            break
        case .streaming(let consumer):
            consumer.cancel()
        case .suspending, .parked, .answered:
            break
        }
        phase = .answered
        if let parked {
            parked.close()
            core.unpark(parked)
        }
    }

    /// What a complete body leads to: an answer now, or a parked request (anything else is a handler's bug: 500).
    private func proceed(_ next: Disposition, _ connection: OpaquePointer) -> MHD_Result {
        switch next {
        case .respond(let response):
            return answer(response, connection)
        case .suspend(let park):
            phase = .suspending(park: park)
            return bodyComplete(connection)
        case .collectBody, .collectBodyThen, .streamBody:
            return answer(.internalServerError, connection)
        }
    }

    private func answerParked(_ suspension: Suspension, _ connection: OpaquePointer) -> MHD_Result {
        if let response = suspension.takeResponse() {
            return answer(response, connection)
        }
        // Woken without an answer: park again rather than spin.
        return suspension.suspendUnlessAnswered() ? .YES : answer(.internalServerError, connection)
    }

    private func answer(_ response: Response, _ connection: OpaquePointer) -> MHD_Result {
        phase = .answered
        return response.queue(on: connection)
    }
}
