import ArgumentParser
import DFSClient
import Foundation

/// `dfs`: the command-line client.
struct DFS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dfs",
        abstract: "Use a dfs cluster: store, list, move and read files.",
        discussion: """
            The directory server is --directory, else $DFS_DIRECTORY, else http://127.0.0.1:5000.
            Client state lives in $DFS_HOME (default ~/.dfs).
            """,
        subcommands: [
            List.self, Mkdir.self, Put.self, Get.self, Cat.self, Write.self, Remove.self, Move.self, Stat.self,
            Servers.self, Lock.self, Unlock.self, Locks.self, Edit.self, View.self, Cache.self,
        ])
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Directory server URL (default: $DFS_DIRECTORY or http://127.0.0.1:5000).")
    var directory: String?

    @Option(
        name: .customLong("attr-cache-ms"),
        help: "Trust file attributes this long without asking the directory (default: $DFS_ATTR_CACHE_MS or 0).")
    var attrCacheMs: Int64?

    @Option(name: .customLong("ca-file"), help: "PEM CA file to verify HTTPS servers (default: $DFS_CA_FILE).")
    var caFile: String?

    /// Runs `body` with a client, turning failures into `dfs: <message>` and exit code 1.
    func withClient(_ body: (DFSClient) throws -> Void) throws {
        var settings = ClientSettings(directory: directory)
        if let attrCacheMs { settings.attrCacheMs = max(0, attrCacheMs) }
        if let caFile { settings.caFile = caFile }
        let client = DFSClient(settings: settings)
        do {
            try body(client)
        } catch let error as DFSClientError {
            fail(error.message)
        } catch let error as CocoaError {
            fail(error.localizedDescription)
        }
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("dfs: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// Writes to standard output without buffering surprises.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
    }

    static func time(_ ms: Int64, _ formatter: ISO8601DateFormatter = timeFormatter()) -> String {
        formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// One formatter per listing: making one is far costlier than using it.
    static func timeFormatter() -> ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
