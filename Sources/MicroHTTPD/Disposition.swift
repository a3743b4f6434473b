import Foundation

/// Receives a request body chunk by chunk, on the connection's MHD thread.
///
/// Exactly one of these ends the exchange: `consume` returning a response, `finish()`, or `cancel()`.
/// After `consume` returns a response, neither `finish()` nor `cancel()` is called; the rest of the body is
/// read and discarded, then that response is sent (answering mid-body would reset the connection).
public protocol BodyConsumer: AnyObject {
    /// A chunk of the body. Return nil to go on, or a response to stop consuming and answer with it.
    func consume(_ chunk: Data) -> Response?
    /// The whole body arrived (also called for an empty body).
    func finish() -> Response
    /// The connection ended before finish() (client abort, server stop): clean up temp files.
    func cancel()
    /// The whole body arrived: `.respond` (what `finish()` does by default) or `.suspend`, to answer later from
    /// another thread without holding this one (anything else is answered 500).
    func finishing() -> Disposition
}

extension BodyConsumer {
    public func finishing() -> Disposition { .respond(finish()) }
}

/// What to do with a request once its headers are in.
public enum Disposition {
    /// Answer with this response once the body (if any) has been read and discarded.
    case respond(Response)
    /// Collect the body in memory, then call `then` with it (on the MHD thread).
    /// A body longer than `limit` is answered with `tooLarge()` without calling `then`: at once when
    /// `Content-Length` says so (no `100 Continue`; the connection is closed), otherwise (chunked) once the rest
    /// of the body has been read and discarded. `tooLarge` is called only then: building a response that is
    /// almost never sent cost 5% of the directory's CPU per request.
    case collectBody(limit: Int, tooLarge: () -> Response, then: (Data) -> Response)
    /// Like `collectBody`, but `then` decides what comes next: `.respond` or `.suspend` (anything else is
    /// answered 500). Lets a request with a JSON body wait without holding a thread.
    case collectBodyThen(limit: Int, tooLarge: () -> Response, then: (Data) -> Disposition)
    /// Hand the body to a consumer chunk by chunk.
    case streamBody(BodyConsumer)
    /// Park the connection (MHD_suspend_connection): no thread is held while waiting.
    /// `park` is called once with a handle; calling `resume(with:)` from any thread, exactly once, answers.
    /// A request body is discarded before parking. If the server is stopping, the request is answered 503
    /// and `park` is not called.
    case suspend(park: (Suspension) -> Void)
}

/// Decides what to do with a request. Runs on an MHD thread; may block briefly, but should not wait
/// for other requests (use `.suspend` instead).
public typealias RequestHandler = @Sendable (Request) -> Disposition
