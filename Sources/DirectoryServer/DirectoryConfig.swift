import ServerKit

/// Settings of the directory server, read from `etc/directory.conf`.
public struct DirectoryConfig: Sendable {
    public static let keys: Set<String> = ServerSettings.keys.union([
        "listen", "data_dir", "heartbeat_interval_ms", "stale_after_ms", "dead_after_ms", "abandoned_write_ms",
        "lock_lease_ms", "lock_max_wait_ms", "ticket_ttl_ms", "replicas", "inventory_interval_ms", "orphan_grace_ms",
        "inline_max_bytes", "inline_cache_bytes",
    ])

    public var listen = ListenAddress(host: "127.0.0.1", port: 5000)
    public var dataDir = "var/directory"
    /// Threads, limits, TLS and the cluster secret.
    public var server = ServerSettings()
    public var heartbeatIntervalMs: Int64 = 2000
    public var staleAfterMs: Int64 = 6000
    public var deadAfterMs: Int64 = 12000
    public var abandonedWriteMs: Int64 = 3_600_000
    public var lockLeaseMs: Int64 = 30000
    public var lockMaxWaitMs: Int64 = 300_000
    public var ticketTTLMs: Int64 = 600_000
    /// Copies of each file (capped by the live file servers).
    public var replicas = 2
    /// How often every file server's inventory is compared with the metadata.
    public var inventoryIntervalMs: Int64 = 60000
    /// How long a blob no metadata points to is kept before it is deleted.
    public var orphanGraceMs: Int64 = 600_000
    /// Files up to this size whose bytes come with their commit are also kept in the metadata and read from the
    /// directory in one round trip (`GET /content`); 0 keeps none.
    public var inlineMaxBytes: Int64 = 4096
    /// Memory for the bytes of small files recently read through `GET /content` (by version, oldest out first), so
    /// that repeated reads skip SQLite; 0 keeps none.
    public var inlineCacheBytes = 16 << 20

    public init() {}

    /// Reads the settings, with defaults for absent keys.
    public init(_ file: ConfigFile) throws(ConfigError) {
        listen = try file.listenAddress("listen", default: "127.0.0.1:5000")
        dataDir = try file.string("data_dir", default: "var/directory")
        server = try ServerSettings(file)
        heartbeatIntervalMs = try file.integer("heartbeat_interval_ms", default: 2000, range: 50...600_000)
        staleAfterMs = try file.integer("stale_after_ms", default: 6000, range: 100...3_600_000)
        deadAfterMs = try file.integer("dead_after_ms", default: 12000, range: 100...86_400_000)
        abandonedWriteMs = try file.integer("abandoned_write_ms", default: 3_600_000, range: 1000...604_800_000)
        lockLeaseMs = try file.integer("lock_lease_ms", default: 30000, range: 100...86_400_000)
        lockMaxWaitMs = try file.integer("lock_max_wait_ms", default: 300_000, range: 0...86_400_000)
        ticketTTLMs = try file.integer("ticket_ttl_ms", default: 600_000, range: 1000...86_400_000)
        replicas = Int(try file.integer("replicas", default: 2, range: 1...16))
        inventoryIntervalMs = try file.integer("inventory_interval_ms", default: 60000, range: 100...86_400_000)
        orphanGraceMs = try file.integer("orphan_grace_ms", default: 600_000, range: 0...604_800_000)
        inlineMaxBytes = try file.integer("inline_max_bytes", default: 4096, range: 0...65536)
        inlineCacheBytes = Int(try file.integer("inline_cache_bytes", default: 16 << 20, range: 0...(1 << 34)))
        guard deadAfterMs > staleAfterMs else {
            throw ConfigError("\(file.path): dead_after_ms must be larger than stale_after_ms")
        }
    }
}
