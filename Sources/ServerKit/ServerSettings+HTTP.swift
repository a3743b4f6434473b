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
        return options
    }

    /// `https` when the server speaks TLS, else `http`.
    public var scheme: String { usesTLS ? "https" : "http" }
}
