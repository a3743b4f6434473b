import Foundation
import MicroHTTPD

extension ServerSettings {
    /// The HTTP server options these settings ask for, listening on `listen`.
    /// - Throws: `ConfigError` when a TLS file cannot be read.
    public func httpOptions(listen: ListenAddress) throws(ConfigError) -> ServerOptions {
        var options = ServerOptions()
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
