import ArgumentParser
import DFSClient
import DFSProtocol
import Foundation

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a directory.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The directory (default /).") var path: String = "/"
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try global.withClient { client in
            let entries = try client.list(path)
            if json { return try Output.json(entries) }
            let formatter = Output.timeFormatter()
            var text = ""
            for entry in entries {
                let kind = entry.isDirectory ? "d" : "-"
                let size = entry.size.map(String.init) ?? "-"
                let version = entry.version.map { "v\($0)" } ?? "-"
                let name = entry.isDirectory ? entry.name + "/" : entry.name
                text += "\(kind) \(size.leftPad(12)) \(version.leftPad(8)) \(Output.time(entry.mtimeMs, formatter)) \(name)\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

struct Mkdir: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a directory.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .short, help: "Create missing parents; no error if it exists.") var parents = false
    @Argument(help: "The directory to create.") var path: String

    func run() throws {
        try global.withClient { try $0.mkdir(path, parents: parents) }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a file or directory.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .short, help: "Remove a directory and everything in it.") var recursive = false
    @Argument(help: "The path to remove.") var path: String

    func run() throws {
        try global.withClient { try $0.remove(path, recursive: recursive) }
    }
}

struct Move: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mv", abstract: "Rename a file or directory (into TO when it is a directory).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The path to move.") var from: String
    @Argument(help: "The new path, or an existing directory to move into.") var to: String

    func run() throws {
        try global.withClient { try $0.move(from, to: to) }
    }
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a path's id, file server, size, version, sha256 and mtime.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The path.") var path: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try global.withClient { client in
            let entry = try client.stat(path)
            if json { return try Output.json(entry) }
            Output.line("path:        \(entry.path)")
            Output.line("type:        \(entry.isDirectory ? "directory" : "file")")
            if !entry.isDirectory {
                Output.line("file id:     \(entry.fileId.map(String.init) ?? "-")")
                for replica in entry.replicas ?? [] {
                    Output.line("file server: \(replica.fileServerId) \(replica.url)")
                }
                Output.line("size:        \(entry.size ?? 0)")
                Output.line("version:     \(entry.version.map(String.init) ?? "-")")
                Output.line("sha256:      \(entry.sha256 ?? "-")")
            }
            Output.line("mtime:       \(Output.time(entry.mtimeMs))")
        }
    }
}

struct Servers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the file servers and their load.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try global.withClient { client in
            let servers = try client.fileServers()
            if json { return try Output.json(servers) }
            Output.line("ID  STATE  FILES        BYTES       SERVED  URL")
            for server in servers {
                // Bytes served come from the file server itself; "-" when it cannot be reached.
                let served = (try? client.fileServerStats(url: server.url)).map { String($0.bytesServed) } ?? "-"
                Output.line(
                    "\(String(server.id).rightPad(3)) \(server.state.rightPad(6)) \(String(server.files).leftPad(5)) \(String(server.bytes).leftPad(12)) \(served.leftPad(12))  \(server.url)"
                )
            }
            if let replication = try? client.replication() {
                Output.line(
                    "replication: \(replication.effectiveReplicas) of \(replication.replicas) copies possible, \(replication.underReplicated.count) files under-replicated, \(replication.inFlight.count) copies in flight (\(replication.copiesMade) made, \(replication.copiesDropped) extra dropped)"
                )
                for task in replication.inFlight.prefix(10) {
                    Output.line(
                        "  copying \(task.fileId).\(task.version) from server \(task.fromFileServerId) to \(task.toFileServerId)")
                }
            }
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
    func rightPad(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
