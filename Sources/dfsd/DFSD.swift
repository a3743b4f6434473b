import ArgumentParser
import DirectoryServer
import FileServer
import Foundation
import Logging
import MicroHTTPD
import ServerKit

/// `dfsd`: the dfs server executable, in one of two roles.
struct DFSD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dfsd",
        abstract: "The dfs servers: the directory server and the file servers.",
        subcommands: [Directory.self, FileServerCommand.self])
}

/// Options every role has.
struct ServerOptionsGroup: ParsableArguments {
    @Option(name: .long, help: "The configuration file (key = value lines).")
    var config: String?

    @Option(name: .long, help: "Listen address host:port, overriding the file's `listen` (port 0 = any free port).")
    var listen: String?

    @Option(name: .customLong("data-dir"), help: "Data directory, overriding the file's `data_dir`.")
    var dataDir: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func configFile(keys: Set<String>) throws -> ConfigFile {
        guard let config else { return ConfigFile(defaultsFor: "(defaults)") }
        return try ConfigFile(contentsOf: config, allowedKeys: keys)
    }

    func listenAddress() throws -> ListenAddress? {
        guard let listen else { return nil }
        guard let address = ListenAddress(listen) else {
            throw ValidationError("--listen must be host:port, got '\(listen)'")
        }
        return address
    }

    /// `DFS_CLUSTER_SECRET`, which overrides the file's `cluster_secret` (so it need not be written to disk).
    var environmentSecret: String? {
        ProcessInfo.processInfo.environment["DFS_CLUSTER_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func warnIfPlaceholder(_ secret: String, _ logger: Logger) {
        if ClusterSecret(secret).isPlaceholder {
            logger.warning(
                "cluster_secret is the shipped placeholder: anyone who can reach this server can act as a cluster server. Set a real secret (make run generates one).")
        }
    }

    func logger(_ label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

/// Prints the ready line, waits for SIGINT/SIGTERM, then runs `stop`.
func serveUntilSignal(role: String, url: String, stop: () -> Void) {
    // Unbuffered, so that a supervisor (or a test) reading the pipe sees the ready line at once.
    FileHandle.standardOutput.write(Data("dfsd: \(role) listening on \(url)\n".utf8))
    let signal = TerminationSignals.wait()
    FileHandle.standardError.write(Data("dfsd: \(role) stopping (signal \(signal))\n".utf8))
    stop()
}

/// Runs `body`, turning configuration and start-up errors into `dfsd: message` and exit code 1.
func startOrExit(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ConfigError {
        FileHandle.standardError.write(Data("dfsd: \(error.description)\n".utf8))
        throw ExitCode.failure
    } catch let error as ValidationError {
        throw error
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("dfsd: cannot start: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

extension DFSD {
    struct Directory: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the directory server (namespace, placement, registration).")

        @OptionGroup var options: ServerOptionsGroup

        func run() throws {
            try startOrExit {
                var config = try DirectoryConfig(try options.configFile(keys: DirectoryConfig.keys))
                if let listen = try options.listenAddress() { config.listen = listen }
                if let dataDir = options.dataDir { config.dataDir = dataDir }
                if let secret = options.environmentSecret { config.server.clusterSecret = secret }
                let logger = try options.logger("dfs.directory")
                options.warnIfPlaceholder(config.server.clusterSecret, logger)
                let server = try DirectoryServer(config: config, logger: logger)
                serveUntilSignal(
                    role: "directory", url: config.server.scheme + "://" + config.listen.with(port: server.port).description
                ) { server.stop() }
            }
        }
    }

    struct FileServerCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fileserver", abstract: "Run a file server (flat blob store).")

        @OptionGroup var options: ServerOptionsGroup

        @Option(name: .long, help: "Directory server URL, overriding the file's `directory`.")
        var directory: String?

        func run() throws {
            try startOrExit {
                var config = try FileServerConfig(try options.configFile(keys: FileServerConfig.keys))
                if let listen = try options.listenAddress() { config.listen = listen }
                if let dataDir = options.dataDir { config.dataDir = dataDir }
                if let directory { config.directory = directory }
                if let secret = options.environmentSecret { config.server.clusterSecret = secret }
                let logger = try options.logger("dfs.fileserver")
                options.warnIfPlaceholder(config.server.clusterSecret, logger)
                let server = try FileServer(config: config, logger: logger)
                serveUntilSignal(
                    role: "fileserver", url: config.server.scheme + "://" + config.listen.with(port: server.port).description
                ) { server.stop() }
            }
        }
    }
}
