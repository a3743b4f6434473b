internal import CMicroHTTPD
import Foundation
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
        /// The PEM strings given to MHD_OPTION_HTTPS_MEM_CERT/KEY: MHD keeps the pointers, so they live until stop.
        var tlsStrings: [UnsafeMutablePointer<CChar>]
    }

    /// The bound port (the ephemeral one when ``ServerOptions/port`` is 0).
    public let port: UInt16
    private let running: Mutex<Running?>

    /// Starts listening on `options.host` only. SIGPIPE is ignored process-wide from here on.
    /// - Parameters:
    ///   - options: Address, threads, limits and TLS.
    ///   - handler: Called once per request, after its headers arrive.
    /// - Throws: ``HTTPServerError`` if the host is not an IP literal, only one of the TLS certificate and key is
    ///   given, or the daemon cannot start (port in use, certificate or key rejected...). The message carries
    ///   libmicrohttpd's own explanation when it gave one.
    public init(options: ServerOptions, handler: @escaping RequestHandler) throws {
        // MHD writes to sockets whose peer may be gone; a SIGPIPE must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        let tls = try Self.tlsPair(options)
        if tls != nil && MHD_is_feature_supported(.FEATURE_TLS) != .YES {
            throw HTTPServerError(message: "this libmicrohttpd was built without TLS support")
        }
        let address = try SocketAddress(host: options.host, port: options.port)
        var flags =
            MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ITC.rawValue
            | MHD_USE_ERROR_LOG.rawValue  // messages go to daemonLogger, which keeps only the start-up ones
        if address.isIPv6 {
            flags |= MHD_USE_IPv6.rawValue
        }
        if tls != nil {
            flags |= MHD_USE_TLS.rawValue
        }
        let threads = max(1, options.threads)
        let tlsStrings = tls.map { [strdup($0.certificate)!, strdup($0.key)!] } ?? []
        let core = Unmanaged.passRetained(
            ServerCore(handler: handler, headerTimeoutSeconds: max(0, options.connectionTimeoutSeconds)))
        let daemon = dfs_mhd_start_daemon(
            flags, options.port,
            accessHandler, core.toOpaque(),
            requestCompleted, core.toOpaque(),
            daemonLogger, core.toOpaque(),
            connectionNotified, core.toOpaque(),
            address.sockaddrPointer,
            UInt32(clamping: threads),
            max(4096, options.connectionMemoryLimit),
            UInt32(clamping: max(0, options.connectionTimeoutSeconds)),
            // MHD gives each pool thread limit / threads slots: below `threads`, some would get none.
            UInt32(clamping: max(threads, options.connectionLimit)),
            UInt32(clamping: max(0, options.perIPConnectionLimit)),
            tlsStrings.first, tlsStrings.last)
        let startErrno = errno
        let messages = core.takeUnretainedValue().finishStarting()
        guard let daemon else {
            core.release()
            address.deallocate()
            tlsStrings.forEach { free($0) }
            let detail =
                messages.isEmpty
                ? String(cString: strerror(startErrno))
                : messages.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: "; ")
            throw HTTPServerError(
                message: "cannot \(tls == nil ? "listen" : "serve TLS") on \(options.host):\(options.port) (\(detail))")
        }
        port = dfs_mhd_get_daemon_info(daemon, .DAEMON_INFO_BIND_PORT)?.pointee.port ?? 0
        core.takeUnretainedValue().headerDeadlines.start()
        running = Mutex(Running(daemon: daemon, core: core, address: address, tlsStrings: tlsStrings))
    }

    /// Both TLS strings, neither, or an error.
    private static func tlsPair(_ options: ServerOptions) throws -> (certificate: String, key: String)? {
        switch (options.tlsCertificatePEM, options.tlsKeyPEM) {
        case (nil, nil):
            return nil
        case (let certificate?, let key?):
            guard !certificate.contains("\0"), !key.contains("\0") else {
                throw HTTPServerError(message: "TLS certificate and key must not contain NUL bytes")
            }
            return (certificate, key)
        default:
            throw HTTPServerError(message: "give both tlsCertificatePEM and tlsKeyPEM, or neither")
        }
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
        core.headerDeadlines.stop()
        MHD_stop_daemon(stopping.daemon)
        stopping.core.release()
        stopping.address.deallocate()
        stopping.tlsStrings.forEach { free($0) }
    }
}

/// MHD_OPTION_EXTERNAL_LOGGER: keeps libmicrohttpd's messages while the daemon starts, so that a failed start can
/// say why (a rejected certificate, say); later messages (failed TLS handshakes...) are dropped.
private let daemonLogger: MHD_LogCallback = { context, format, arguments in
    guard let context, let format, let arguments else { return }
    let core = Unmanaged<ServerCore>.fromOpaque(context).takeUnretainedValue()
    guard core.isStarting else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    _ = vsnprintf(&buffer, buffer.count, format, arguments)
    core.record(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
}
