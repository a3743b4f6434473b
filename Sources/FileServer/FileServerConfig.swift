import ServerKit

/// Settings of a file server, read from `etc/fileserver-N.conf`.
public struct FileServerConfig: Sendable {
    public static let keys: Set<String> = ServerSettings.keys.union([
        "listen", "directory", "data_dir", "capacity_bytes", "public_url", "heartbeat_interval_ms",
        "scrub_interval_ms", "blob_sync", "inline_flush_ms",
    ])

    public var listen = ListenAddress(host: "127.0.0.1", port: 5001)
    public var directory = "http://127.0.0.1:5000"
    public var dataDir = "var/fileserver-1"
    public var capacityBytes: Int64 = 10 << 30
    /// The URL clients use to reach this server; empty = `http://<listen>`.
    public var publicURL = ""
    /// Threads, limits, TLS and the cluster secret.
    public var server: ServerSettings = {
        var settings = ServerSettings()
        settings.threads = 16
        return settings
    }()
    public var heartbeatIntervalMs: Int64 = 2000
    /// Milliseconds between scrubber passes (re-reading stored blobs against their sha256); 0 = no scrubber.
    public var scrubIntervalMs: Int64 = 3_600_000
    /// How blobs are made durable (`syncfs` or `fsync`; see `FileStore.BlobSync`).
    public var blobSync = FileStore.BlobSync.syncfs
    /// A created blob whose bytes the directory also keeps (a file of at most its `inline_max_bytes`) is answered
    /// once the directory's copy is durable, and made durable here within this many milliseconds; 0 = its flush is
    /// awaited before the commit, as for any other create.
    public var inlineFlushMs: Int64 = 20

    public init() {}

    public init(_ file: ConfigFile) throws(ConfigError) {
        listen = try file.listenAddress("listen", default: "127.0.0.1:5001")
        directory = try file.httpURL("directory", default: "http://127.0.0.1:5000", allowHTTPS: true)
        dataDir = try file.string("data_dir", default: "var/fileserver-1")
        capacityBytes = try file.integer("capacity_bytes", default: 10 << 30, range: 0...(1 << 60))
        publicURL = try file.string("public_url", default: "", allowEmpty: true)
        if !publicURL.isEmpty { publicURL = try file.httpURL("public_url", default: "", allowHTTPS: true) }
        server = try ServerSettings(file, defaultThreads: 16)
        heartbeatIntervalMs = try file.integer("heartbeat_interval_ms", default: 2000, range: 50...600_000)
        scrubIntervalMs = try file.integer("scrub_interval_ms", default: 3_600_000, range: 0...(30 * 86_400_000))
        blobSync = try file.choice("blob_sync", default: .syncfs)
        inlineFlushMs = try file.integer("inline_flush_ms", default: 20, range: 0...10_000)
    }
}
