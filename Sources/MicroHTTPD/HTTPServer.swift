internal import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// An error starting the server.
public struct HTTPServerError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String

    /// A readable description of the error.
    public var description: String { "HTTPServerError: \(message)" }
}

/// An HTTP/1.1 server on libmicrohttpd: a pool of epoll threads that call `handler` for each request.
///
/// The handler, body consumers and `park` closures run on libmicrohttpd's own threads; one connection is always
/// served by the same thread, one request at a time. Never call ``stop()`` from one of those callbacks.
public final class HTTPServer: Sendable {
    private struct Running {
        var daemon: OpaquePointer
        var core: Unmanaged<ServerCore>
        var address: SocketAddress
    }

    /// The bound port (the ephemeral one when ``ServerOptions/port`` is 0).
    public let port: UInt16
    private let running: Mutex<Running?>

    /// Starts listening on `options.host` only. SIGPIPE is ignored process-wide from here on.
    /// - Parameters:
    ///   - options: Address, threads and limits.
    ///   - handler: Called once per request, after its headers arrive.
    /// - Throws: ``HTTPServerError`` if the host is not an IP literal or the daemon cannot start (port in use...).
    public init(options: ServerOptions, handler: @escaping RequestHandler) throws {
        // MHD writes to sockets whose peer may be gone; a SIGPIPE must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        let address = try SocketAddress(host: options.host, port: options.port)
        var flags =
            MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ITC.rawValue
        if address.isIPv6 {
            flags |= MHD_USE_IPv6.rawValue
        }
        let core = Unmanaged.passRetained(ServerCore(handler: handler))
        let daemon = dfs_mhd_start_daemon(
            flags, options.port,
            accessHandler, core.toOpaque(),
            requestCompleted, core.toOpaque(),
            address.sockaddrPointer,
            UInt32(clamping: max(1, options.threads)),
            max(4096, options.connectionMemoryLimit),
            UInt32(clamping: max(0, options.connectionTimeoutSeconds)))
        guard let daemon else {
            core.release()
            address.deallocate()
            throw HTTPServerError(
                message: "cannot listen on \(options.host):\(options.port) (\(String(cString: strerror(errno))))")
        }
        port = dfs_mhd_get_daemon_info(daemon, .DAEMON_INFO_BIND_PORT)?.pointee.port ?? 0
        running = Mutex(Running(daemon: daemon, core: core, address: address))
    }

    deinit {
        stop()
    }

    /// Stops the server: answers parked connections with 503 (waiting up to 5 s for them to be sent), then closes
    /// every connection; streamed bodies in progress get ``BodyConsumer/cancel()``. Idempotent; blocks until done.
    public func stop() {
        guard
            let stopping = running.withLock({ running in
                defer { running = nil }
                return running
            })
        else { return }
        let core = stopping.core.takeUnretainedValue()
        for suspension in core.beginStopping() {
            suspension.resume(with: .serviceUnavailable)
        }
        // MHD_stop_daemon must not see a suspended connection; give the 503s time to go out. Bounded: 500 × 10 ms.
        for _ in 0..<500 {
            if core.parkedCount == 0 { break }
            usleep(10_000)
        }
        MHD_stop_daemon(stopping.daemon)
        stopping.core.release()
        stopping.address.deallocate()
    }
}
