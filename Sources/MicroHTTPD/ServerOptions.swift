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
    /// Idle seconds before a connection is closed (MHD_OPTION_CONNECTION_TIMEOUT); 0 = never.
    public var connectionTimeoutSeconds: Int = 120

    /// Creates the default options.
    public init() {}
}
