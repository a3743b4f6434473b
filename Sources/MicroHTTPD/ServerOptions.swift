/// How an ``HTTPServer`` listens and how many resources it uses.
public struct ServerOptions: Sendable {
    /// The address to bind: an IPv4 literal, "localhost" (127.0.0.1), or an IPv6 literal ("::1").
    public var host: String = "127.0.0.1"
    /// The port; 0 picks an ephemeral port (read ``HTTPServer/port``).
    public var port: UInt16 = 0
    /// Worker threads (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL with MHD_OPTION_THREAD_POOL_SIZE).
    public var threads: Int = 4
    /// Memory per connection (MHD_OPTION_CONNECTION_MEMORY_LIMIT); body chunks are about half of it.
    public var connectionMemoryLimit: Int = 1 << 20
    /// Seconds without any bytes received or sent before a connection is closed (MHD_OPTION_CONNECTION_TIMEOUT);
    /// 0 = never. Also applies to a half-sent request: a client that stops mid-headers or mid-body is dropped
    /// (its request, if the handler saw it, completes as aborted). A client that keeps trickling bytes is not.
    public var connectionTimeoutSeconds: Int = 120
    /// The most connections open at once (MHD_OPTION_CONNECTION_LIMIT). libmicrohttpd splits it across the
    /// ``threads``, each thread taking `connectionLimit / threads` (the first `connectionLimit % threads` one more);
    /// a value below `threads` is raised to `threads` so that no thread is left without room. A thread that is full
    /// stops accepting, so a connection beyond the limit is neither refused nor closed: it waits in the kernel's
    /// listen backlog (the client's connect succeeds, no answer comes) until a slot frees up.
    public var connectionLimit: Int = 1024
    /// The most connections open at once from one IP address (MHD_OPTION_PER_IP_CONNECTION_LIMIT), across all
    /// threads; 0 = no limit. A connection beyond it is accepted and closed at once, without an answer.
    public var perIPConnectionLimit: Int = 0
    /// A PEM certificate (chain) to serve HTTPS instead of HTTP (MHD_USE_TLS, MHD_OPTION_HTTPS_MEM_CERT, GnuTLS).
    /// Give both this and ``tlsKeyPEM``, or neither. Plain HTTP requests to a TLS server fail their handshake and
    /// are closed.
    public var tlsCertificatePEM: String? = nil
    /// The PEM private key (unencrypted) for ``tlsCertificatePEM`` (MHD_OPTION_HTTPS_MEM_KEY).
    public var tlsKeyPEM: String? = nil

    /// Creates the default options.
    public init() {}
}
