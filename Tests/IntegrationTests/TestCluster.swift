import Curl
import DFSClient
import DFSProtocol
import Foundation
import Synchronization

/// Where the built `dfsd` and `dfs` binaries are: `$DFS_BIN_DIR` (set by `make test`), else `.build/debug`.
enum Binaries {
    static var directory: String {
        if let dir = ProcessInfo.processInfo.environment["DFS_BIN_DIR"], !dir.isEmpty { return dir }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug").path
    }
    static var dfsd: String { directory + "/dfsd" }
    static var dfs: String { directory + "/dfs" }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One running `dfsd` process; its URL is read from the ready line it prints.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let url: String
    let logPath: String

    init(arguments: [String], logPath: String, timeout: Double = 30) throws {
        self.logPath = logPath
        process.executableURL = URL(fileURLWithPath: Binaries.dfsd)
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        let found = Mutex<String?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let reader = stdout.fileHandleForReading
        Thread.detachNewThread {
            var buffer = ""
            var signalled = false
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                buffer += String(decoding: data, as: UTF8.self)
                if !signalled, let range = buffer.range(of: "listening on ") {
                    let rest = buffer[range.upperBound...]
                    if let newline = rest.firstIndex(of: "\n") {
                        found.withLock { $0 = String(rest[..<newline]) }
                        signalled = true
                        ready.signal()
                    }
                }
            }
            if !signalled { ready.signal() }
        }
        _ = ready.wait(timeout: .now() + timeout)
        guard let url = found.withLock({ $0 }) else {
            process.terminate()
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw FixtureError("dfsd \(arguments.joined(separator: " ")) did not start:\n\(log)")
        }
        self.url = url
    }

    var pid: Int32 { process.processIdentifier }

    /// Peak resident memory so far, in bytes (VmHWM), while the process runs.
    var peakResidentBytes: Int64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int64($0) }.first ?? 0
            return kb * 1024
        }
        return nil
    }

    func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// A directory server and N file servers on ephemeral loopback ports, with data in a temp directory.
final class TestCluster: @unchecked Sendable {
    let root: String
    private(set) var directory: ServerProcess
    private(set) var fileServers: [ServerProcess] = []
    private var fileServerPorts: [String] = []

    /// This cluster's secret (each test cluster has its own).
    let secret = UUID().uuidString + UUID().uuidString

    private let fileServerConf: String

    /// The CA file clients use (for clusters that speak HTTPS).
    private let clientCAFile: String?

    init(
        fileServers count: Int = 3, directoryConf: String = "", fileServerConf: String = "", clientCAFile: String? = nil
    ) throws {
        self.fileServerConf = fileServerConf
        self.clientCAFile = clientCAFile
        root = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // Test defaults, unless the test sets the key itself.
        let given = Set(directoryConf.split(separator: "\n").compactMap { $0.split(separator: "=").first }.map {
            $0.trimmingCharacters(in: .whitespaces)
        })
        let defaults = ["heartbeat_interval_ms = 200", "stale_after_ms = 2000", "dead_after_ms = 10000"].filter {
            !given.contains(String($0.prefix { $0 != " " }))
        }
        let conf = """
            listen = 127.0.0.1:0
            cluster_secret = \(secret)
            data_dir = \(root)/directory
            \(defaults.joined(separator: "\n"))
            \(directoryConf)
            """
        try conf.write(toFile: root + "/directory.conf", atomically: true, encoding: .utf8)
        directory = try ServerProcess(
            arguments: ["directory", "--config", root + "/directory.conf"], logPath: root + "/directory.log")
        for index in 0..<count {
            fileServerPorts.append("0")
            fileServers.append(try startFileServer(index))
        }
        try waitForLiveFileServers(count)
    }

    deinit { shutdown() }

    func shutdown() {
        for server in fileServers { server.stop() }
        directory.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    private func startFileServer(_ index: Int) throws -> ServerProcess {
        let conf = """
            listen = 127.0.0.1:\(fileServerPorts[index])
            directory = \(directory.url)
            cluster_secret = \(secret)
            data_dir = \(root)/fs\(index)
            heartbeat_interval_ms = 200
            \(fileServerConf)
            """
        let path = root + "/fileserver-\(index).conf"
        try conf.write(toFile: path, atomically: true, encoding: .utf8)
        let server = try ServerProcess(
            arguments: ["fileserver", "--config", path], logPath: root + "/fileserver-\(index).log")
        fileServerPorts[index] = String(server.url.split(separator: ":").last ?? "0")
        return server
    }

    /// Waits (bounded) until the directory lists `count` live file servers.
    func waitForLiveFileServers(_ count: Int, timeout: Double = 20) throws {
        let client = self.client()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let servers = try? client.fileServers(), servers.filter({ $0.state == "live" }).count >= count {
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw FixtureError("fewer than \(count) live file servers after \(timeout) s")
    }

    /// Restarts the directory on the same port and data (after `kill -9` when `kill` is set).
    func restartDirectory(kill: Bool) throws {
        if kill { directory.kill9() } else { directory.stop() }
        let port = directory.url.split(separator: ":").last!
        directory = try ServerProcess(
            arguments: ["directory", "--config", root + "/directory.conf", "--listen", "127.0.0.1:\(port)"],
            logPath: root + "/directory-restarted.log")
    }

    /// Restarts file server `index` on its port and data (after `kill -9` when `kill` is set).
    func restartFileServer(_ index: Int, kill: Bool) throws {
        if kill { fileServers[index].kill9() } else { fileServers[index].stop() }
        fileServers[index] = try startFileServer(index)
    }

    /// A client with its own `DFS_HOME` inside the cluster's temp directory.
    func client(
        home: String? = nil, lockWaitMs: Int64 = 60000, cacheMaxBytes: Int64 = 1 << 30, attrCacheMs: Int64 = 0
    ) -> DFSClient {
        var settings = ClientSettings(directory: directory.url, home: home ?? root + "/client-home", environment: [:])
        settings.lockWaitMs = lockWaitMs
        settings.cacheMaxBytes = cacheMaxBytes
        settings.attrCacheMs = attrCacheMs
        settings.caFile = clientCAFile
        return DFSClient(settings: settings)
    }

    /// Bytes all file servers have served so far.
    func bytesServed() throws -> Int64 {
        // Every server this cluster started, not the directory's live list: a server whose heartbeat is late on a
        // loaded machine is still serving, and its bytes must still count.
        let client = self.client()
        return try fileServers.reduce(0) { $0 + (try client.fileServerStats(url: $1.url).bytesServed) }
    }

    /// Registers a new client over plain HTTP; returns its id and the headers that authenticate it.
    func rawClient() throws -> (id: Int64, headers: [HTTPHeader]) {
        let response = try HTTPClient().send(method: "POST", url: directory.url + "/register_client")
        let answer = try WireJSON.decode(RegisterClientResponse.self, from: response.body)
        return (answer.clientId, Self.headers(token: answer.token))
    }

    /// The headers a `DFSClient` with this home sends (its bearer token, from `client.json`).
    func headers(home: String) throws -> [HTTPHeader] {
        let data = try Data(contentsOf: URL(fileURLWithPath: home + "/client.json"))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return Self.headers(token: object?["token"] as? String ?? "")
    }

    static func headers(token: String) -> [HTTPHeader] {
        [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Authorization", "Bearer \(token)")]
    }

    /// A fresh temp file path inside the cluster directory.
    func tempPath(_ name: String) -> String { root + "/" + name }
}
