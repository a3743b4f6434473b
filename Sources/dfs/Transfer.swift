import ArgumentParser
import DFSClient
import Foundation

struct Put: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Upload a local file.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The local file.") var local: String
    @Argument(help: "The dfs path.") var path: String

    func run() throws {
        try global.withClient { try $0.put(localPath: local, to: path) }
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a file (to LOCAL, default its name).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The dfs path.") var path: String
    @Argument(help: "The local file (default: the file's name in the current directory).") var local: String?

    func run() throws {
        let name = path.split(separator: "/").last.map(String.init) ?? "download"
        try global.withClient { try $0.get(path, toLocal: local ?? name) }
    }
}

struct Cat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a file to standard output.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The dfs path.") var path: String

    func run() throws {
        try global.withClient { client in
            try client.read(path) { FileHandle.standardOutput.write($0) }
        }
    }
}

struct Write: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write standard input to a file.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The dfs path.") var path: String

    func run() throws {
        let input = LocalReader(descriptor: FileHandle.standardInput.fileDescriptor)
        try global.withClient { client in
            try client.write(path, length: nil) { max in try input.read(upToCount: max) }
        }
    }
}
