import ArgumentParser
import DFSClient
import Foundation

/// Runs the user's editor (`$VISUAL`, else `$EDITOR`, else `vi`) on a local file; the editor command may carry
/// arguments (`EDITOR="code --wait"`). Returns its exit status.
func runEditor(on file: String) throws -> Int32 {
    let environment = ProcessInfo.processInfo.environment
    let editor = [environment["VISUAL"], environment["EDITOR"]].compactMap { $0 }.first { !$0.isEmpty } ?? "vi"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    // The shell splits the editor command into words; the file travels as "$1", never re-parsed.
    process.arguments = ["-c", editor + " \"$1\"", "dfs-editor", file]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// A private temp directory holding a local copy named like the remote file (editors show the name, pick syntax).
func localCopyPath(for path: String) throws -> (directory: String, file: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-edit-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let name = path.split(separator: "/").last.map(String.init) ?? "file"
    return (directory, directory + "/" + name)
}

func digest(_ path: String) -> Data? { FileManager.default.contents(atPath: path).map { Data($0) } }

struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edit a file in $VISUAL / $EDITOR (lock, fetch, edit, write back, unlock).",
        discussion: """
            Takes the write lock (renewed while you edit), fetches the file through the cache into a private temp
            copy and opens your editor on it. If the editor exits 0 and the content changed, the new content is
            uploaded and committed; then the lock is released. An editor that fails uploads nothing. A path that does
            not exist yet is created.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The dfs path to edit.") var path: String

    func run() throws {
        var status: Int32 = 0
        try global.withClient { client in
            let lock = try client.lock(path, mode: .write, waitMs: client.settings.lockWaitMs)
            defer { try? lock.release() }
            let (directory, local) = try localCopyPath(for: path)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var base: Int64?
            do {
                base = try client.get(path, toLocal: local).version
            } catch let error as DFSClientError where error.code == "not_found" {
                _ = FileManager.default.createFile(atPath: local, contents: nil)
            }
            let before = digest(local)
            status = try runEditor(on: local)
            guard status == 0 else {
                FileHandle.standardError.write(
                    Data("dfs: the editor exited with status \(status); nothing was uploaded\n".utf8))
                return
            }
            guard digest(local) != before else { return }
            do {
                try client.put(localPath: local, to: path, baseVersion: base)
            } catch let error as DFSClientError where error.code == "conflict" {
                global.fail("\(path) was changed by someone else while you edited; your edit was not saved (\(error.message))")
            }
        }
        if status != 0 { throw ExitCode(1) }
    }
}

struct View: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open a file read-only in $VISUAL / $EDITOR (read under a read lock, then view).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The dfs path to view.") var path: String

    func run() throws {
        var status: Int32 = 0
        try global.withClient { client in
            let (directory, local) = try localCopyPath(for: path)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try client.get(path, toLocal: local)
            try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: local)
            status = try runEditor(on: local)
        }
        if status != 0 { throw ExitCode(status) }
    }
}

struct Cache: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect or clear the client disk cache ($DFS_HOME/cache).", subcommands: [Stats.self, Clear.self])

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Entries, bytes, hits, misses, bytes saved.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try global.withClient { client in
                let stats = try client.cacheStats()
                if json { return try Output.json(stats) }
                Output.line("entries:     \(stats.entries)")
                Output.line("bytes:       \(stats.bytes) of \(stats.maxBytes)")
                Output.line("hits:        \(stats.hits)")
                Output.line("misses:      \(stats.misses)")
                Output.line("bytes saved: \(stats.bytesSaved)")
            }
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop every cached file and the counters.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try global.withClient { try $0.clearCache() }
        }
    }
}
