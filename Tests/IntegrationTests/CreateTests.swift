import Crypto
import Curl
import DFSClient
import DFSProtocol
import Foundation
import Synchronization
import Testing

/// Small files created in one round trip: `PUT /creates` at a file server, which commits through the directory in
/// batches (`POST /commits/batch`), under ids leased from it (`POST /ids`).
@Suite struct CreateTests {
    /// The client's token and the URL of the first file server of the placement.
    static func creator(_ cluster: TestCluster) throws -> (headers: [HTTPHeader], fileServer: String) {
        let (_, headers) = try cluster.rawClient()
        let placement = try WireJSON.decode(
            PlacementResponse.self, from: try HTTPClient().send(method: "GET", url: cluster.directory.url + "/placement").body)
        return (headers.filter { $0.name == "Authorization" }, try #require(placement.servers.first).url)
    }

    static func sha256(_ data: Data) -> String { Data(SHA256.hash(data: data)).hexString }

    @Test func aCreateStoresCommitsAndIsReadBack() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let (auth, fileServer) = try Self.creator(cluster)
        let http = HTTPClient()
        let body = Data("hello, one round trip\n".utf8)
        let created = try http.send(
            method: "PUT", url: fileServer + "/creates?path=/hello.txt", headers: auth, body: .data(body))
        #expect(created.status == 201)
        let entry = try WireJSON.decode(EntryInfo.self, from: created.body)
        #expect(entry.path == "/hello.txt" && entry.size == Int64(body.count) && entry.fileId == entry.version)
        #expect(entry.sha256 == Self.sha256(body) && entry.replicas?.first?.url == fileServer)
        // Visible at once to everyone, and the blob is served under the entry's id and version.
        let stat = try cluster.client(home: cluster.tempPath("other")).stat("/hello.txt")
        #expect(stat.fileId == entry.fileId && stat.version == entry.version)
        let blob = try http.send(
            method: "GET", url: fileServer + "/files/\(entry.fileId!)?version=\(entry.version!)")
        #expect(blob.status == 200 && blob.body == body)
        #expect(try cluster.client(home: cluster.tempPath("reader")).read("/hello.txt") == body)

        // An overwrite through a create: a new file id; base_version is checked like a commit's.
        let stale = try http.send(
            method: "PUT", url: fileServer + "/creates?path=/hello.txt&base_version=\(entry.version! + 1000)", headers: auth,
            body: .data(Data("x".utf8)))
        #expect(stale.status == 409 && (try? WireJSON.decode(ErrorBody.self, from: stale.body).error.code) == "conflict")
        let again = try http.send(
            method: "PUT", url: fileServer + "/creates?path=/hello.txt&base_version=\(entry.version!)", headers: auth,
            body: .data(Data("second".utf8)))
        #expect(again.status == 201)
        let second = try WireJSON.decode(EntryInfo.self, from: again.body)
        #expect(second.fileId != entry.fileId && second.version != entry.version)
        #expect(try cluster.client(home: cluster.tempPath("reader2")).read("/hello.txt") == Data("second".utf8))
    }

    @Test func theClientCreatesEmptyAndOneMiBFilesAndBiggerOnesTheOtherWay() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 0)
        for size in [0, 1, Int(DFSClient.createLimit)] {
            let data = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let entry = try dfs.write("/s\(size)", data: data)
            #expect(entry.size == Int64(size) && entry.fileId == entry.version, "\(size) bytes: created")
            #expect(try reader.read("/s\(size)") == data)
        }
        let big = Data(repeating: 9, count: Int(DFSClient.createLimit) + 1)
        let entry = try dfs.write("/big", data: big)
        #expect(entry.fileId != entry.version, "bigger files go through a ticket of the directory")
        #expect(try reader.read("/big") == big)
    }

    /// Both ways of making blobs durable (`blob_sync`) store small files (created, and made durable together) and
    /// big ones (through a ticket; with `syncfs`, fsynced on their own), which a file server killed with SIGKILL
    /// still serves when it comes back. (A process kill, not a power cut: that would need a disk to cut.)
    @Test(arguments: ["syncfs", "fsync"])
    func everyBlobSyncModeKeepsSmallAndBigFiles(mode: String) throws {
        let cluster = try TestCluster(fileServers: 1, fileServerConf: "blob_sync = \(mode)")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        var files: [String: Data] = [:]
        for index in 0..<20 { files["/small/f\(index)"] = Data("small file \(index) of \(mode)\n".utf8) }
        files["/big"] = Data((0..<(9 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        _ = try dfs.mkdir("/small")
        for (path, data) in files { _ = try dfs.write(path, data: data) }
        try cluster.restartFileServer(0, kill: true)
        let reader = cluster.client(home: cluster.tempPath("reader-\(mode)"), cacheMaxBytes: 0)
        for (path, data) in files {
            let stat = try reader.stat(path)
            // Straight from the file server (the directory keeps small files' bytes too).
            let blob = try HTTPClient().send(
                method: "GET", url: cluster.fileServers[0].url + "/files/\(stat.fileId!)?version=\(stat.version!)")
            #expect(blob.status == 200 && blob.body == data, "\(path) after a kill, blob_sync = \(mode)")
        }
        #expect(try reader.read("/big") == files["/big"])
    }

    /// A create the directory would keep the bytes of brings them with its commit; with `inline_flush_ms` above 0
    /// it is answered before the file server's flush. When the directory's `inline_max_bytes` is lowered under the
    /// file server's feet (a restart with a new conf), the first such create is refused with 412 and committed the
    /// usual way once its blob is durable; the file server learns the new limit from the batch's answer.
    @Test(arguments: [20, 0])
    func createsFollowTheDirectorysInlineLimitWhenItIsLowered(flushMs: Int) throws {
        let cluster = try TestCluster(fileServers: 1, fileServerConf: "inline_flush_ms = \(flushMs)")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 0)
        // The file server's first create takes an id block, and with it the directory's inline_max_bytes (4096).
        let kept = Data((0..<100).map { UInt8(truncatingIfNeeded: $0 &* 3) })
        _ = try dfs.write("/before", data: kept)
        #expect(try ContentTests.content(cluster, "/before").body == kept, "the directory kept the bytes")
        let conf = try String(contentsOfFile: cluster.root + "/directory.conf", encoding: .utf8)
        try (conf + "\ninline_max_bytes = 16\n").write(
            toFile: cluster.root + "/directory.conf", atomically: true, encoding: .utf8)
        try cluster.restartDirectory(kill: false)
        for (path, data) in [("/after", kept), ("/again", kept), ("/tiny", Data("sixteen bytes!!!".utf8))] {
            let entry = try dfs.write(path, data: data)
            #expect(entry.fileId == entry.version, "\(path): a create")
            let content = try ContentTests.content(cluster, path)
            if data.count > 16 {
                #expect(content.status == 307, "\(path): beyond inline_max_bytes the bytes are the file server's")
            } else {
                #expect(content.status == 200 && content.body == data, "\(path): kept by the directory")
            }
            #expect(try reader.read(path) == data)
        }
    }

    /// The blobs of creates answered before their flush are made durable by one flush per `inline_flush_ms` while
    /// there are any (counted in `GET /stats`), and by none when there are none or the key is 0.
    @Test(arguments: [20, 0])
    func createsAnsweredBeforeTheirFlushAreFlushedSoonAfter(flushMs: Int) throws {
        let cluster = try TestCluster(fileServers: 1, fileServerConf: "inline_flush_ms = \(flushMs)")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let http = HTTPClient()
        let stats = {
            try WireJSON.decode(
                FileServerStats.self, from: try http.send(method: "GET", url: cluster.fileServers[0].url + "/stats").body)
        }
        let before = try #require(try stats().lateFlushes)
        #expect(before == 0, "nothing created, nothing to flush")
        for index in 0..<10 { _ = try dfs.write("/f\(index)", data: Data("file \(index)".utf8)) }
        if flushMs > 0 { try waitUntil(timeout: 10) { (try stats().lateFlushes ?? 0) >= 1 } }
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 0)
        for index in 0..<10 {
            #expect(try reader.read("/f\(index)") == Data("file \(index)".utf8))
        }
        // Never more flushes than creates, however long the server idles (a flush waits for something to flush).
        let flushes = try #require(try stats().lateFlushes)
        #expect(flushMs > 0 ? (1...10).contains(flushes) : flushes == 0, "\(flushes) late flushes")
    }

    /// A small blob is checked against the sha256 in its name before it is served (a create's blob may be answered
    /// before its flush, so a power cut could leave it torn): a damaged copy, zeroed or cut short, is quarantined
    /// and answered 404, not even a part of it served, and the file is still read whole from the directory's copy.
    @Test func aDamagedSmallBlobIsNeverServed() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let http = HTTPClient()
        let zeroed = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) })
        let short = Data("a file cut short by a power cut\n".utf8)
        for (path, data, damaged) in [("/zeroed", zeroed, Data(count: zeroed.count)), ("/short", short, short.prefix(5))] {
            let entry = try dfs.write(path, data: data)
            let url = cluster.fileServers[0].url + "/files/\(entry.fileId!)?version=\(entry.version!)"
            #expect(try http.send(method: "GET", url: url).body == data)
            let file = "\(entry.fileId!).\(entry.version!).\(Self.sha256(data))"
            try damaged.write(to: URL(fileURLWithPath: cluster.root + "/fs0/blobs/" + file))
            let served = try http.send(method: "GET", url: url, headers: [HTTPHeader("Range", "bytes=0-3")])
            #expect(served.status == 404, "\(path): the damaged copy is not served")
            #expect(FileManager.default.fileExists(atPath: cluster.root + "/fs0/corrupt/" + file))
            #expect(try http.send(method: "GET", url: url).status == 404)
            #expect(try cluster.client(home: cluster.tempPath("reader\(path)"), cacheMaxBytes: 0).read(path) == data)
        }
    }

    @Test func badCreatesAreRefusedAndCommitNothing() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let (auth, fileServer) = try Self.creator(cluster)
        let http = HTTPClient()
        func create(_ query: String, headers: [HTTPHeader], body: Data = Data("x".utf8)) throws -> (Int, String?) {
            let response = try http.send(method: "PUT", url: fileServer + "/creates" + query, headers: headers, body: .data(body))
            return (response.status, try? WireJSON.decode(ErrorBody.self, from: response.body).error.code)
        }
        #expect(try create("?path=/a", headers: []) == (401, "unauthorized"))
        #expect(try create("?path=/a", headers: [HTTPHeader("Authorization", "Bearer 1.00")]) == (401, "unauthorized"))
        #expect(try create("", headers: auth) == (400, "bad_request"))
        #expect(try create("?path=/a&base_version=x", headers: auth) == (400, "bad_request"))
        #expect(try create("?path=relative", headers: auth) == (400, "invalid_path"))
        #expect(try create("?path=/", headers: auth) == (409, "is_a_directory"))
        #expect(try create("?path=/no/such/dir/f", headers: auth) == (404, "not_found"))
        #expect(
            try create("?path=/a", headers: auth + [HTTPHeader("X-DFS-SHA256", String(repeating: "0", count: 64))])
                == (422, "checksum_mismatch"))
        #expect(try create("?path=/a", headers: auth + [HTTPHeader("X-DFS-Forward", "not a url")]) == (400, "bad_request"))
        try cluster.client().mkdir("/d")
        #expect(try create("?path=/d", headers: auth) == (409, "is_a_directory"))
        #expect(throws: DFSClientError.self) { try cluster.client().stat("/a") }
        #expect(try cluster.client().list("/").map(\.name) == ["d"])

        // The blobs of the creates the directory refused (404, 409) are deleted by its maintenance.
        let deadline = Date().addingTimeInterval(15)
        var stored = Int64(-1)
        while Date() < deadline {
            stored = try cluster.client().fileServerStats(url: fileServer).files
            if stored == 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(stored == 0)
    }

    @Test func aCreateRespectsEveryLockAndTheClientWaitsForIt() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let (auth, fileServer) = try Self.creator(cluster)
        let alice = cluster.client(home: cluster.tempPath("alice"))
        try alice.write("/f", data: Data("alice 1".utf8))
        for mode in [LockMode.write, .read] {
            let held = try alice.lock("/f", mode: mode, autoRenew: false)
            let refused = try HTTPClient().send(
                method: "PUT", url: fileServer + "/creates?path=/f", headers: auth, body: .data(Data("bob".utf8)))
            let error = try WireJSON.decode(ErrorBody.self, from: refused.body).error
            #expect(refused.status == 409 && error.code == "lock_busy" && error.holders?.first?.clientId == held.info.clientId)
            try held.release()
        }
        #expect(try alice.read("/f") == Data("alice 1".utf8))

        // Bob's client meets the lock, waits for it in the queue, and writes once Alice lets go.
        let held = try alice.lock("/f", mode: .write, autoRenew: false)
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<EntryInfo, Error>?>(nil)
        Thread.detachNewThread {
            let bob = cluster.client(home: cluster.tempPath("bob"), lockWaitMs: 20_000)
            let result = Result { try bob.write("/f", data: Data("bob".utf8)) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 0.5) == .timedOut, "Bob waits while Alice holds the lock")
        try held.release()
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(throws: Never.self) { try outcome.withLock { $0 }?.get() }
        #expect(try alice.read("/f") == Data("bob".utf8))
    }

    @Test func serverRoutesNeedTheClusterSecretAndCheckEveryItem() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let json = [HTTPHeader("Content-Type", "application/json")]
        let secret = json + [HTTPHeader("X-DFS-Cluster-Token", cluster.secret)]
        let ids = Data(#"{"count":10}"#.utf8)
        #expect(try http.send(method: "POST", url: cluster.directory.url + "/ids", headers: json, body: .data(ids)).status == 401)
        for bad in [#"{"count":0}"#, #"{"count":65537}"#, #"{"count":"x"}"#, "{"] {
            let refused = try http.send(
                method: "POST", url: cluster.directory.url + "/ids", headers: secret, body: .data(Data(bad.utf8)))
            #expect(refused.status == 400, "\(bad)")
        }
        // Two blocks never overlap, and both lie above every id handed out before.
        let existing = try cluster.client().write("/before", data: Data("b".utf8))
        let blocks = try (0..<2).map { _ in
            try WireJSON.decode(
                IdBlockResponse.self,
                from: try http.send(method: "POST", url: cluster.directory.url + "/ids", headers: secret, body: .data(ids)).body)
        }
        #expect(blocks.allSatisfy { $0.count == 10 && $0.first > existing.version! })
        #expect(blocks[1].first >= blocks[0].first + 10 || blocks[0].first >= blocks[1].first + 10)

        let batch = { (items: String) in Data(#"{"commits":["# .utf8) + Data(items.utf8) + Data("]}".utf8) }
        let item = { (path: String, id: Int64, receipt: String) in
            #"{"client_id":1,"commit":{"path":"\#(path)","file_id":\#(id),"version":\#(id),"size":1,"sha256":"\#(String(repeating: "a", count: 64))","receipts":[{"file_server_id":1,"receipt":"\#(receipt)"}]}}"#
        }
        let one = batch(item("/x", blocks[0].first, "1.00"))
        #expect(try http.send(method: "POST", url: cluster.directory.url + "/commits/batch", headers: json, body: .data(one)).status == 401)
        let answered = try http.send(
            method: "POST", url: cluster.directory.url + "/commits/batch", headers: secret,
            body: .data(batch([item("/x", blocks[0].first, "1.00"), item("bad", blocks[0].first + 1, "1.00")].joined(separator: ","))))
        #expect(answered.status == 200)
        let outcomes = try WireJSON.decode(BatchCommitResponse.self, from: answered.body).outcomes
        #expect(outcomes.map { $0.status } == [409, 400], "a forged receipt, then a bad path")
        #expect(outcomes.map { $0.error?.code } == ["conflict", "invalid_path"])
        let tooMany = batch(Array(repeating: item("/y", 5, "1.00"), count: 1025).joined(separator: ","))
        #expect(
            try http.send(method: "POST", url: cluster.directory.url + "/commits/batch", headers: secret, body: .data(tooMany))
                .status == 400)
        #expect(throws: DFSClientError.self) { try cluster.client().stat("/x") }
    }

    @Test func aCreateWhileTheDirectoryIsDownFailsClearlyAndCommitsNothing() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let (auth, fileServer) = try Self.creator(cluster)
        let http = HTTPClient(connectTimeout: 5, timeout: 60)
        func create(_ path: String) throws -> (Int, String?) {
            let response = try http.send(
                method: "PUT", url: fileServer + "/creates?path=" + path, headers: auth, body: .data(Data(path.utf8)))
            return (response.status, try? WireJSON.decode(ErrorBody.self, from: response.body).error.code)
        }
        #expect(try create("/before").0 == 201)
        cluster.directory.kill9()
        #expect(try create("/during") == (503, "unavailable"))
        // The file server goes on (its id block and its connection to the directory outlive the outage).
        try cluster.restartDirectory(kill: false)
        #expect(try create("/after").0 == 201)
        let reader = cluster.client(home: cluster.tempPath("reader"))
        #expect(try reader.read("/before") == Data("/before".utf8))
        #expect(try reader.read("/after") == Data("/after".utf8))
        #expect(throws: DFSClientError.self) { try reader.stat("/during") }
    }

    @Test func concurrentCreatesThroughTwoCopiesAllLand() throws {
        let cluster = try TestCluster(fileServers: 3)
        defer { cluster.shutdown() }
        try cluster.client().mkdir("/many")
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let dfs = cluster.client(home: cluster.tempPath("w\(worker)"))
            for index in 0..<40 {
                do {
                    try dfs.write("/many/\(worker)-\(index)", data: Data("\(worker) \(index)".utf8))
                } catch {
                    failures.add("\(worker)-\(index): \(error)")
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        let reader = cluster.client(home: cluster.tempPath("reader"))
        let names = try reader.list("/many").map(\.name)
        #expect(names.count == 320)
        for worker in [0, 7] {
            for index in [0, 39] {
                let entry = try reader.stat("/many/\(worker)-\(index)")
                #expect(entry.replicas?.count == 2 && entry.fileId == entry.version)
                #expect(try reader.read("/many/\(worker)-\(index)") == Data("\(worker) \(index)".utf8))
            }
        }
        let counts = try reader.fileServers().map(\.files)
        #expect(counts.reduce(0, +) == 640, "two copies of each file")
    }

    /// Creates are answered before the file server's flush (`inline_flush_ms`): every one acknowledged before the
    /// file server is killed (SIGKILL, mid-stream of creates) reads back whole afterwards, from the directory and
    /// from the file server's own copy. (A killed process leaves its writes in the page cache; a power cut would
    /// need a disk to cut.)
    @Test func createsAcknowledgedBeforeTheFileServerIsKilledAllReadBack() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        try cluster.client().mkdir("/k")
        let acknowledged = Mutex<[String: Data]>([:])
        let writers = DispatchGroup()
        for worker in 0..<4 {
            DispatchQueue.global().async(group: writers) {
                let dfs = cluster.client(home: cluster.tempPath("w\(worker)"))
                for index in 0..<150 {
                    let path = "/k/\(worker)-\(index)"
                    let data = Data("created by \(worker), number \(index)\n".utf8)
                    guard (try? dfs.write(path, data: data)) != nil else { break }
                    acknowledged.withLock { $0[path] = data }
                }
            }
        }
        try waitUntil(timeout: 30) { acknowledged.withLock { $0.count } >= 60 }
        try cluster.restartFileServer(0, kill: true)
        #expect(writers.wait(timeout: .now() + 120) == .success)
        try cluster.waitForLiveFileServers(1)
        let files = acknowledged.withLock { $0 }
        #expect(files.count >= 60)
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 0)
        let http = HTTPClient()
        for (path, data) in files {
            #expect(try reader.read(path) == data, "\(path)")
            let entry = try reader.stat(path)
            let blob = try http.send(
                method: "GET", url: cluster.fileServers[0].url + "/files/\(entry.fileId!)?version=\(entry.version!)")
            #expect(blob.status == 200 && blob.body == data, "\(path): the file server's copy")
        }
    }

    /// Creates committed in the same batches land in their own directories, while the creates of the same moment
    /// into a missing directory, or under a file, are refused one by one (a batch looks each parent up once).
    @Test func concurrentCreatesIntoManyDirectoriesEachLandOrFailOnTheirOwn() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let setup = cluster.client()
        for dir in 0..<4 { try setup.mkdir("/p\(dir)") }
        try setup.write("/p0/plain", data: Data("a file".utf8))
        let failures = Failures()
        let refusals = Failures()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let dfs = cluster.client(home: cluster.tempPath("w\(worker)"))
            for index in 0..<24 {
                let path: String
                switch index % 6 {
                case 4: path = "/missing/\(worker)-\(index)"
                case 5: path = "/p0/plain/\(worker)-\(index)"
                default: path = "/p\((worker + index) % 4)/\(worker)-\(index)"
                }
                do {
                    try dfs.write(path, data: Data(path.utf8))
                    if index % 6 >= 4 { failures.add("\(path) was created") }
                } catch let error as DFSClientError where index % 6 >= 4 {
                    refusals.add("\(error.status ?? 0) \(error.code)")
                } catch {
                    failures.add("\(path): \(error)")
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        #expect(refusals.all.filter { $0 == "404 not_found" }.count == 32)
        #expect(refusals.all.filter { $0 == "409 not_a_directory" }.count == 32)
        let reader = cluster.client(home: cluster.tempPath("reader"))
        var landed = 0
        for dir in 0..<4 {
            for entry in try reader.list("/p\(dir)") where entry.name != "plain" {
                landed += 1
                #expect(try reader.read("/p\(dir)/\(entry.name)") == Data("/p\(dir)/\(entry.name)".utf8))
            }
        }
        #expect(landed == 8 * 16)
        #expect(try reader.read("/p0/plain") == Data("a file".utf8))
    }
}
