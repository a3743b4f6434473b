import Foundation
import MicroHTTPD

extension ServerSettings {
    /// The HTTP server options these settings ask for, listening on `listen`.
    ///
    /// Each connection gets a memory pool of twice `bodyChunkBytes` plus twice `max_header_bytes` (at least
    /// 32 KiB). Keep it small where bodies are small: libmicrohttpd zeroes the pool between the requests of a
    /// kept-alive connection, so a 1 MiB pool costs a 1 MiB memset per request. Measured with wrk (16 connections):
    /// a 4 KiB file-server GET went from 6,900 req/s with a 2 MiB pool to 20,600 with 544 KiB and 32,800 with
    /// 96 KiB, and the directory's `/health` from 34,000 to 80,000 req/s (1 MiB → 64 KiB). The directory takes
    /// 8 KiB chunks (its bodies are small JSON), file servers 128 KiB (see `FileServer.bodyChunkBytes`).
    /// - Parameter bodyChunkBytes: the upload chunk size wanted.
    /// - Throws: `ConfigError` when a TLS file cannot be read.
    public func httpOptions(listen: ListenAddress, bodyChunkBytes: Int = 32 << 10) throws(ConfigError) -> ServerOptions
    {
        var options = ServerOptions()
        options.connectionMemoryLimit = max(32 << 10, 2 * bodyChunkBytes + 2 * maxHeaderBytes)
        options.host = listen.host
        options.port = listen.port
        options.threads = threads
        options.connectionTimeoutSeconds = connectionTimeoutSeconds
        options.connectionLimit = maxConnections
        if usesTLS {
            options.tlsCertificatePEM = try Self.read(tlsCertificatePath, "tls_cert")
            options.tlsKeyPEM = try Self.read(tlsKeyPath, "tls_key")
        }
        return options
    }

    /// The CA file for verifying other servers, or nil for the system's CAs.
    public var caFile: String? { tlsCAPath.isEmpty ? nil : tlsCAPath }

    private static func read(_ path: String, _ key: String) throws(ConfigError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("\(key): cannot read \(path)")
        }
        return text
    }

    /// `https` when the server speaks TLS, else `http`.
    public var scheme: String { usesTLS ? "https" : "http" }
}
