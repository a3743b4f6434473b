/// Settings both servers share: threads, limits, TLS and the cluster secret (`etc/*.conf`).
public struct ServerSettings: Sendable {
    public static let keys: Set<String> = [
        "threads", "cluster_secret", "max_header_bytes", "max_connections", "connection_timeout_s", "max_file_bytes",
        "tls_cert", "tls_key", "tls_ca",
    ]

    /// HTTP worker threads (libmicrohttpd thread pool).
    public var threads = 4
    public var clusterSecret = ClusterSecret.placeholder
    /// Requests whose URL and headers are larger get 431.
    public var maxHeaderBytes = 16 << 10
    /// Simultaneous connections served; more wait in the accept queue until one closes.
    public var maxConnections = 1024
    /// A connection idle (or trickling) this long is closed, so slow clients cannot hold every connection.
    public var connectionTimeoutSeconds = 60
    /// The largest file accepted (413 above it).
    public var maxFileBytes: Int64 = 1 << 40
    /// PEM certificate and key files; both set = serve HTTPS.
    public var tlsCertificatePath = ""
    public var tlsKeyPath = ""
    /// PEM CA file used to verify the other servers when they speak HTTPS.
    public var tlsCAPath = ""

    public init() {}

    /// - Parameter defaultThreads: the role's default pool size (file servers block in fsync, so they want more).
    public init(_ file: ConfigFile, defaultThreads: Int = 4) throws(ConfigError) {
        threads = Int(try file.integer("threads", default: Int64(defaultThreads), range: 1...256))
        clusterSecret = try file.string("cluster_secret", default: ClusterSecret.placeholder)
        maxHeaderBytes = Int(try file.integer("max_header_bytes", default: 16 << 10, range: 1024...(512 << 10)))
        maxConnections = Int(try file.integer("max_connections", default: 1024, range: 4...65536))
        connectionTimeoutSeconds = Int(try file.integer("connection_timeout_s", default: 60, range: 1...86400))
        maxFileBytes = try file.integer("max_file_bytes", default: 1 << 40, range: 0...(1 << 60))
        tlsCertificatePath = try file.string("tls_cert", default: "", allowEmpty: true)
        tlsKeyPath = try file.string("tls_key", default: "", allowEmpty: true)
        tlsCAPath = try file.string("tls_ca", default: "", allowEmpty: true)
        guard tlsCertificatePath.isEmpty == tlsKeyPath.isEmpty else {
            throw ConfigError("\(file.path): tls_cert and tls_key must be set together")
        }
    }

    /// Whether the server speaks HTTPS.
    public var usesTLS: Bool { !tlsCertificatePath.isEmpty }

    /// The secret with its derived keys (two HMACs: keep the value rather than asking again per request).
    public var secret: ClusterSecret { ClusterSecret(clusterSecret) }
}
