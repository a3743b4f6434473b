import Curl
import DFSClient
import DFSProtocol
import Foundation
import Testing

/// End-to-end behaviour of a real cluster: dfsd processes on loopback, the DFSClient library, raw HTTP.
@Suite(.serialized) struct ClusterTests {
    @Test func registrationGivesIdsAndFileServersKeepTheirs() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let first = try http.send(method: "POST", url: cluster.directory.url + "/register_client")
        let second = try http.send(method: "GET", url: cluster.directory.url + "/register_client")
        #expect(first.status == 200 && second.status == 200)
        let a = try WireJSON.decode(RegisterClientResponse.self, from: first.body).clientId
        let b = try WireJSON.decode(RegisterClientResponse.self, from: second.body).clientId
        #expect(b > a)

        let before = try cluster.client().fileServers()
        #expect(before.count == 1)
        try cluster.restartFileServer(0, kill: false)
        try cluster.waitForLiveFileServers(1)
        let after = try cluster.client().fileServers()
        #expect(after.map(\.id) == before.map(\.id), "a restarted file server re-registers under its id")
    }

    @Test func namespaceOperations() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        try dfs.mkdir("/docs/reports/2026", parents: true)
        try dfs.mkdir("/docs/reports", parents: true)  // -p on an existing directory is fine
        #expect(throws: DFSClientError.self) { try dfs.mkdir("/docs") }
        #expect(throws: DFSClientError.self) { try dfs.mkdir("/nope/child") }
        try dfs.write("/docs/hello.txt", data: Data("hello\n".utf8))
        #expect(try dfs.list("/docs").map(\.name) == ["hello.txt", "reports"])

        let entry = try dfs.stat("/docs/hello.txt")
        #expect(entry.type == "file" && entry.size == 6 && entry.fileId != nil)
        #expect(entry.replicas?.count == 1)
        #expect(entry.sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")

        try dfs.move("/docs/hello.txt", to: "/docs/reports")  // into an existing directory
        #expect(try dfs.stat("/docs/reports/hello.txt").fileId == entry.fileId)
        try dfs.move("/docs/reports", to: "/archive")
        #expect(String(decoding: try dfs.read("/archive/hello.txt"), as: UTF8.self) == "hello\n")
        #expect(try dfs.list("/").map(\.name) == ["archive", "docs"])

        let moveIntoSelf = #expect(throws: DFSClientError.self) { try dfs.move("/archive", to: "/archive/2026/x") }
        #expect(moveIntoSelf?.status == 400)
        let notEmpty = #expect(throws: DFSClientError.self) { try dfs.remove("/archive") }
        #expect(notEmpty?.code == "not_empty" && notEmpty?.status == 409)
        #expect(try dfs.remove("/archive", recursive: true) == 3)
        let gone = #expect(throws: DFSClientError.self) { try dfs.stat("/archive/hello.txt") }
        #expect(gone?.code == "not_found" && gone?.status == 404)
        #expect(try dfs.list("/").map(\.name) == ["docs"])
    }

    @Test func statSeesEveryChangeAtOnce() throws {
        // The directory answers repeated stats from memory while nothing changes: every kind of change must show.
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        try dfs.write("/s", data: Data("one".utf8))
        let first = try dfs.stat("/s")
        #expect(try dfs.stat("/s") == first, "unchanged: the same answer")
        try dfs.write("/s", data: Data("two!".utf8))
        let second = try dfs.stat("/s")
        #expect(second.version != first.version && second.size == 4)
        try dfs.move("/s", to: "/t")
        #expect(throws: DFSClientError.self) { try dfs.stat("/s") }
        #expect(try dfs.stat("/t").version == second.version)
        try dfs.mkdir("/s")
        #expect(try dfs.stat("/s").type == "dir")
        try dfs.remove("/t")
        #expect(throws: DFSClientError.self) { try dfs.stat("/t") }
    }

    @Test func listingsComeInPagesWithACursor() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        // More than one default page (1000), with names that need escaping in a header and in JSON.
        let names = (0..<1203).map { String(format: "d%04d", $0) } + ["é space", "q\"uote", "z%2F"]
        try dfs.mkdir("/many")
        for name in names { try dfs.mkdir("/many/" + name) }
        let listed = try dfs.list("/many")
        #expect(listed.map(\.name) == names.sorted())
        #expect(listed.allSatisfy { $0.path == "/many/" + $0.name && $0.type == "dir" })
        var pages: [Int] = []
        try dfs.list("/many") { pages.append($0.count) }
        #expect(pages == [1000, names.count - 1000])

        let http = HTTPClient()
        let url = cluster.directory.url + "/ls?path=/many&limit=2"
        let first = try http.send(method: "GET", url: url)
        let page = try WireJSON.decode(ListResponse.self, from: first.body)
        #expect(page.entries.map(\.name) == ["d0000", "d0001"] && page.next == "d0001")
        #expect(first.headers["x-dfs-next"] == "d0001")
        let last = try WireJSON.decode(ListResponse.self, from: try http.send(method: "GET", url: url + "&after=z%252F").body)
        #expect(last.entries.map(\.name) == ["é space"] && last.next == nil)
        let tail = try http.send(method: "GET", url: cluster.directory.url + "/ls?path=/many&after=q%22uote")
        // Names sort by their bytes (SQLite's binary collation): "é…" after "z…".
        #expect(try WireJSON.decode(ListResponse.self, from: tail.body).entries.map(\.name) == ["z%2F", "é space"])
        #expect(tail.headers["x-dfs-next"] == nil, "the last page has no cursor")
        for bad in ["0", "10001", "x", "-1"] {
            let refused = try http.send(method: "GET", url: cluster.directory.url + "/ls?path=/many&limit=" + bad)
            #expect(refused.status == 400, "limit=\(bad)")
        }
    }

    @Test func writesVersionAndReadsStream() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let v1 = try dfs.write("/a.bin", data: Data(repeating: 1, count: 1000))
        let v2 = try dfs.write("/a.bin", data: Data(repeating: 2, count: 3000))
        #expect(v2.version! > v1.version!)
        // Small files are created through a file server, so an overwrite brings a new file id (an HDFS overwrite
        // makes a new inode too); a big one goes through a ticket of the directory and keeps the file's id.
        #expect(v2.fileId == v2.version && v2.fileId != v1.fileId)
        #expect(try dfs.read("/a.bin") == Data(repeating: 2, count: 3000))
        let big = Data(repeating: 3, count: Int(DFSClient.createLimit) + 1)
        let v3 = try dfs.write("/a.bin", data: big)
        let v4 = try dfs.write("/a.bin", data: big + Data([4]))
        #expect(v4.fileId == v3.fileId && v4.version! > v3.version!)
        #expect(try dfs.read("/a.bin") == big + Data([4]))
        try dfs.write("/a.bin", data: Data(repeating: 2, count: 3000))

        var part = Data()
        try dfs.read("/a.bin", range: 10...19) { part.append($0) }
        #expect(part == Data(repeating: 2, count: 10))

        // Stale version: a commit based on v1 is refused and nothing is overwritten.
        let conflict = #expect(throws: DFSClientError.self) {
            try dfs.write("/a.bin", data: Data("lost".utf8), baseVersion: v1.version)
        }
        #expect(conflict?.code == "conflict" && conflict?.status == 409)
        #expect(try dfs.read("/a.bin") == Data(repeating: 2, count: 3000))

        // The old version's blob is deleted from the file server in the background.
        let replica = try #require(v1.replicas?.first)
        let http = HTTPClient()
        let deadline = Date().addingTimeInterval(10)
        var status = 200
        while Date() < deadline {
            status = try http.send(method: "GET", url: "\(replica.url)/files/\(v1.fileId!)?version=\(v1.version!)").status
            if status == 404 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(status == 404)
    }

    @Test func openWriteCloseThenOpenRead() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let file = try dfs.open("/log.txt", mode: .write)
        try file.write(Data("one\n".utf8))
        try file.write(Data("two\n".utf8))
        #expect(throws: DFSClientError.self) { try dfs.stat("/log.txt") }  // not visible before close
        let entry = try #require(try file.close())
        #expect(entry.size == 8)
        let reader = try dfs.open("/log.txt", mode: .read)
        #expect(String(decoding: try reader.read(upToCount: 100), as: UTF8.self) == "one\ntwo\n")
        try reader.close()
    }

    @Test func thirtyEqualFilesSpreadOverThreeServers() throws {
        let cluster = try TestCluster(fileServers: 3)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        for index in 0..<30 {
            try dfs.write("/f\(index)", data: Data(repeating: UInt8(index), count: 4096))
        }
        let counts = try dfs.fileServers().map(\.files)
        #expect(counts.count == 3)
        #expect(counts.reduce(0, +) == 60, "two copies of each file")
        #expect(counts.max()! - counts.min()! <= 1, "per-server counts \(counts)")
    }

    @Test func sixteenClientsWriteAndReadFiftyFilesEach() throws {
        let cluster = try TestCluster(fileServers: 3)
        defer { cluster.shutdown() }
        try cluster.client().mkdir("/c", parents: true)
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 16) { clientIndex in
            let dfs = cluster.client(home: cluster.tempPath("home-\(clientIndex)"))
            do {
                for fileIndex in 0..<50 {
                    let body = Data("client \(clientIndex) file \(fileIndex)\n".utf8)
                    try dfs.write("/c/\(clientIndex)-\(fileIndex)", data: body)
                }
                for fileIndex in 0..<50 where try dfs.read("/c/\(clientIndex)-\(fileIndex)")
                    != Data("client \(clientIndex) file \(fileIndex)\n".utf8)
                {
                    failures.add("wrong content in \(clientIndex)-\(fileIndex)")
                }
            } catch {
                failures.add("client \(clientIndex): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(5))")
        #expect(try cluster.client().list("/c").count == 800)
    }

    @Test func everythingAcknowledgedSurvivesKillNine() throws {
        let cluster = try TestCluster(fileServers: 2)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        try dfs.mkdir("/keep", parents: true)
        for index in 0..<20 {
            try dfs.write("/keep/\(index)", data: Data("value \(index)".utf8))
        }
        try dfs.move("/keep/0", to: "/keep/zero")
        try dfs.remove("/keep/1")

        try cluster.restartDirectory(kill: true)
        try cluster.restartFileServer(0, kill: true)
        try cluster.restartFileServer(1, kill: true)
        try cluster.waitForLiveFileServers(2)

        let after = cluster.client()
        #expect(String(decoding: try after.read("/keep/zero"), as: UTF8.self) == "value 0")
        #expect(throws: DFSClientError.self) { try after.stat("/keep/1") }
        for index in 2..<20 {
            #expect(String(decoding: try after.read("/keep/\(index)"), as: UTF8.self) == "value \(index)")
        }
        // And the cluster still takes writes, with ids above every id handed out before the crash (ids come from
        // memory and are reserved on disk in blocks: a restart must continue above the reservation).
        let before = try (2..<20).map { try after.stat("/keep/\($0)") }
        let created = try after.write("/keep/new", data: Data("new".utf8))
        #expect(try after.read("/keep/new") == Data("new".utf8))
        let highest = before.flatMap { [$0.fileId ?? 0, $0.version ?? 0] }.max() ?? 0
        #expect((created.fileId ?? 0) > highest && (created.version ?? 0) > highest)
        let rewritten = try after.write("/keep/2", data: Data("again".utf8))
        #expect((rewritten.fileId ?? 0) > highest && (rewritten.version ?? 0) > (created.version ?? 0))
    }
}

/// Collects failures from concurrent workers.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var all: [String] { lock.withLock { items } }
}
