import DFSClient
import DFSProtocol
import Foundation
import Testing

/// The README's examples, run as written against a real cluster: a reader copies them, so they must work.
@Suite struct ReadmeTests {
    static let readme = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    /// The first ```sh block after `marker` in the README.
    static func shellBlock(after marker: String) throws -> String {
        let text = try String(contentsOf: readme, encoding: .utf8)
        let from = try #require(text.range(of: marker), "README has no '\(marker)'")
        let open = try #require(text.range(of: "```sh\n", range: from.upperBound..<text.endIndex))
        let close = try #require(text.range(of: "\n```", range: open.upperBound..<text.endIndex))
        return String(text[open.upperBound..<close.lowerBound])
    }

    /// Runs `script` with bash in `directory`, with `environment` added; bounded by `timeout` seconds.
    static func bash(_ script: String, in directory: String, environment: [String: String], timeout: Double = 60)
        throws -> (status: Int32, stdout: String, stderr: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = directory + "/readme-\(UUID().uuidString).out"
        let err = out + ".err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            _ = done.wait(timeout: .now() + 5)
        }
        return (
            process.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }

    /// "Writing with curl takes three steps": with two copies per file, as `make run` keeps them.
    @Test func curlWriteExampleCommitsEveryCopy() throws {
        try Self.expectCurlExampleStoresTwoCopies(
            after: "Writing with curl takes three steps", path: "/docs/new.txt", contents: "hello, dfs\n")
    }

    /// "Small files can also be created in one request": every copy stored, the file readable.
    @Test func curlCreateExampleStoresEveryCopy() throws {
        try Self.expectCurlExampleStoresTwoCopies(
            after: "Small files can also be created in one request", path: "/docs/quick.txt",
            contents: "hello, one request\n")
    }

    /// Runs the README's curl block after `marker` (with `D` and `AUTH` set, `hello.txt` holding `contents`) against
    /// a cluster keeping two copies: it must print the entry of `path`, stored on both servers and readable.
    static func expectCurlExampleStoresTwoCopies(after marker: String, path: String, contents text: String) throws {
        let cluster = try TestCluster(fileServers: 2, directoryConf: "replicas = 2")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        try dfs.mkdir("/docs")
        let registration = try JSONSerialization.jsonObject(
            with: try Data(contentsOf: URL(fileURLWithPath: cluster.tempPath("client-home") + "/client.json")))
        let token = try #require((registration as? [String: Any])?["token"] as? String)
        let contents = Data(text.utf8)
        try contents.write(to: URL(fileURLWithPath: cluster.tempPath("hello.txt")))

        let script = try shellBlock(after: marker)
        let run = try bash(
            script, in: cluster.root,
            environment: ["D": cluster.directory.url, "AUTH": "Authorization: Bearer \(token)"])
        #expect(run.status == 0, "\(run.stderr)")
        let entry = try #require(
            try? WireJSON.decode(EntryInfo.self, from: Data(run.stdout.utf8)), "the example answered: \(run.stdout)")
        #expect(entry.path == path && entry.size == Int64(contents.count))
        #expect(Set(entry.replicas?.map(\.fileServerId) ?? []).count == 2, "\(run.stdout)")
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 0)
        #expect(try reader.read(path) == contents)
    }

    /// The one-minute tour's `dfs` commands, in order, each succeeding (`set -e`).
    @Test func tourCommandsRunAsWritten() throws {
        let cluster = try TestCluster(fileServers: 2, directoryConf: "replicas = 2")
        defer { cluster.shutdown() }
        let script = try Self.shellBlock(after: "## One-minute tour")
        #expect(script.contains("dfs put hello.txt /docs/hello.txt") && script.contains("dfs rm -r /docs"))
        let path = Binaries.directory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let run = try Self.bash(
            "set -e\n" + script, in: cluster.root,
            environment: [
                "PATH": path, "DFS_DIRECTORY": cluster.directory.url, "DFS_HOME": cluster.tempPath("tour-home"),
            ])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("hello, dfs"), "dfs cat printed: \(run.stdout)")
        let today = try String(contentsOfFile: cluster.tempPath("today.txt"), encoding: .utf8)
        #expect(!today.isEmpty, "dfs get wrote nothing")
        #expect(throws: DFSClientError.self) { try cluster.client().stat("/docs") }
    }
}
