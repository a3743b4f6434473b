import Curl
import DFSProtocol
import Foundation
import Testing

/// The file server's half of replication, on real processes: pipelined uploads (`X-DFS-Forward`), `POST /replicate`,
/// `GET /inventory` and the scrubber (`GET /scrub`).
///
/// Tickets are not bound to a server, so the one ticket the directory hands out for a write works on every file
/// server of the cluster: the tests build pipelines from it.
@Suite(.serialized) struct FileServerReplicationTests {
    /// A write begun at the directory, and the file servers in pipeline order (the directory's target first).
    struct Pipeline {
        let ticket: WriteTicket
        let servers: [ServerProcess]
        var head: ServerProcess { servers[0] }
        var token: String { ticket.targets[0].ticket }

        func uploadURL(_ server: ServerProcess) -> String {
            "\(server.url)/files/\(ticket.fileId)?version=\(ticket.version)&ticket=\(token)"
        }
        func blobURL(_ server: ServerProcess) -> String {
            "\(server.url)/files/\(ticket.fileId)?version=\(ticket.version)"
        }
        /// `X-DFS-Forward` naming `urls`, each with this write's ticket.
        func forward(_ urls: [String]) -> [HTTPHeader] {
            [HTTPHeader(PipelineHeader.name, PipelineHeader.value(urls.map { ($0, token) }))]
        }
    }

    /// Asks the directory for a write of `path` and orders the cluster's file servers with its target first.
    static func begin(_ cluster: TestCluster, _ path: String) throws -> Pipeline {
        try waitForIdentities(cluster)
        let client = try cluster.rawClient()
        let response = try HTTPClient().send(
            method: "POST", url: cluster.directory.url + "/writes", headers: client.headers,
            body: .data(try WireJSON.encode(WriteRequest(path: path))))
        try #require(response.status == 201 || response.status == 200, "POST /writes answered \(response.status)")
        let ticket = try WireJSON.decode(WriteTicket.self, from: response.body)
        let target = try #require(ticket.targets.first)
        let head = try #require(cluster.fileServers.first { sameServer($0.url, target.url) })
        return Pipeline(ticket: ticket, servers: [head] + cluster.fileServers.filter { $0 !== head })
    }

    /// Waits (bounded) until every file server has received its id: the directory lists a server as live as soon
    /// as it registered it, a moment before the server itself has the answer (and can sign receipts).
    static func waitForIdentities(_ cluster: TestCluster) throws {
        let http = HTTPClient()
        try waitUntil {
            try cluster.fileServers.allSatisfy { server in
                let stats = try http.send(method: "GET", url: server.url + "/stats")
                return (try? WireJSON.decode(FileServerStats.self, from: stats.body))?.fileServerId != nil
            }
        }
    }

    static func sameServer(_ a: String, _ b: String) -> Bool {
        a == b || (a.split(separator: ":").last == b.split(separator: ":").last && a.hasPrefix("http://127.0.0.1"))
    }

    static func errorCode(_ response: HTTPResponse) -> String? {
        (try? WireJSON.decode(ErrorBody.self, from: response.body))?.error.code
    }

    static func errorMessage(_ response: HTTPResponse) -> String {
        (try? WireJSON.decode(ErrorBody.self, from: response.body))?.error.message ?? ""
    }

    static func randomData(_ count: Int) throws -> Data {
        let handle = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? handle.close() }
        return handle.readData(ofLength: count)
    }

    /// A file server's uploads in progress: named temp files in `tmp/`, and the unnamed (O_TMPFILE) files it holds
    /// open, which `/proc` shows as `(deleted)`.
    static func tempFiles(_ cluster: TestCluster, _ index: Int) -> [String] {
        let named = (try? FileManager.default.contentsOfDirectory(atPath: cluster.root + "/fs\(index)/tmp")) ?? []
        let fds = "/proc/\(cluster.fileServers[index].pid)/fd"
        let unnamed = ((try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? []).compactMap { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: fds + "/" + fd)).flatMap {
                $0.hasSuffix("(deleted)") ? $0 : nil
            }
        }
        return named + unnamed
    }

    /// Waits (bounded) until no file server of the cluster has a temp file left; names the leftovers if not.
    static func expectNoTempFiles(_ cluster: TestCluster, _ label: String) {
        let count = cluster.fileServers.count
        if (try? waitUntil { (0..<count).allSatisfy { tempFiles(cluster, $0).isEmpty } }) == nil {
            Issue.record("\(label): temp files left: \((0..<count).map { tempFiles(cluster, $0) })")
        }
    }

    /// A URL where nothing listens (port 1 on loopback: connections are refused).
    static let deadURL = "http://127.0.0.1:1"

    // MARK: (a) pipelined writes

    @Test func pipelinedUploadStoresIdenticalCopiesOnEveryServer() throws {
        let cluster = try TestCluster(fileServers: 3)
        defer { cluster.shutdown() }
        let http = HTTPClient()

        // With Content-Length.
        let sized = try Self.begin(cluster, "/pipe-sized.bin")
        let data = try Self.randomData(3 << 20 + 17)
        let response = try http.send(
            method: "PUT", url: sized.uploadURL(sized.head), headers: sized.forward(sized.servers.dropFirst().map(\.url)),
            body: .data(data))
        #expect(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
        let result = try WireJSON.decode(PipelineResult.self, from: response.body)
        let copies = result.all
        #expect(copies.count == 3)
        #expect(Set(copies.map(\.fileServerId)).count == 3, "three distinct servers")
        #expect(Set(copies.map(\.sha256)).count == 1 && copies.allSatisfy { $0.size == Int64(data.count) })
        #expect(copies.allSatisfy { !$0.receipt.isEmpty && $0.fileId == sized.ticket.fileId })
        // An old client decodes the same answer as a plain UploadResult.
        #expect(try WireJSON.decode(UploadResult.self, from: response.body).fileServerId == result.fileServerId)
        for server in sized.servers {
            let copy = try http.send(method: "GET", url: sized.blobURL(server))
            #expect(copy.status == 200 && copy.body == data, "copy on \(server.url)")
        }

        // Chunked (no Content-Length), through a body that arrives in pieces.
        let chunked = try Self.begin(cluster, "/pipe-chunked.bin")
        var offset = 0
        let streamed = try http.send(
            method: "PUT", url: chunked.uploadURL(chunked.head),
            headers: chunked.forward(chunked.servers.dropFirst().map(\.url)),
            body: .stream(length: nil) { max in
                let end = min(offset + min(max, 100_000), data.count)
                defer { offset = end }
                return data.subdata(in: offset..<end)
            })
        #expect(streamed.status == 201, "\(String(decoding: streamed.body, as: UTF8.self))")
        let chunkedResult = try WireJSON.decode(PipelineResult.self, from: streamed.body)
        #expect(chunkedResult.all.count == 3 && chunkedResult.sha256 == result.sha256)
        for server in chunked.servers {
            #expect(try http.send(method: "GET", url: chunked.blobURL(server)).body == data)
        }

        // A plain upload answers as before: no replicas.
        let plain = try Self.begin(cluster, "/pipe-plain.txt")
        let single = try http.send(method: "PUT", url: plain.uploadURL(plain.head), body: .data(Data("one".utf8)))
        #expect(single.status == 201)
        #expect(try WireJSON.decode(PipelineResult.self, from: single.body).replicas == nil)
    }

    // MARK: (b) a failed downstream fails the whole write

    @Test func failedDownstreamFailsTheWriteAndLeavesNoCopy() throws {
        // A client hang-up mid-body is noticed at the latest after connection_timeout_s (as for plain uploads).
        let cluster = try TestCluster(fileServers: 3, fileServerConf: "connection_timeout_s = 2")
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let data = try Self.randomData(2 << 20)
        let write = try Self.begin(cluster, "/pipe-fails.bin")
        let second = write.servers[1]

        // The head cannot reach its downstream; the second hop cannot reach its; the downstream refuses the ticket.
        let attempts: [(String, [HTTPHeader], String)] = [
            ("dead first hop", write.forward([Self.deadURL]), Self.deadURL),
            ("dead second hop", write.forward([second.url, Self.deadURL]), Self.deadURL),
            (
                "refused ticket",
                [HTTPHeader(PipelineHeader.name, "\(second.url) 99999999999999.\(String(repeating: "ab", count: 32))")],
                second.url
            ),
        ]
        for (label, headers, failedURL) in attempts {
            for length in [Int64(data.count), nil] as [Int64?] {
                var offset = 0
                let response = try http.send(
                    method: "PUT", url: write.uploadURL(write.head), headers: headers,
                    body: .stream(length: length) { max in
                        let end = min(offset + min(max, 256 << 10), data.count)
                        defer { offset = end }
                        return data.subdata(in: offset..<end)
                    })
                #expect(response.status == 502, "\(label): \(response.status)")
                #expect(Self.errorCode(response) == "unavailable", "\(label)")
                #expect(Self.errorMessage(response).contains(failedURL), "\(label): \(Self.errorMessage(response))")
                for server in write.servers {
                    #expect(try http.send(method: "GET", url: write.blobURL(server)).status == 404, "\(label): copy on \(server.url)")
                }
            }
        }
        Self.expectNoTempFiles(cluster, "after failed pipelines")

        // The client hangs up half-way through a three-server pipeline: every hop drops its temp file.
        struct HangUp: Error {}
        var pieces = 0
        #expect(throws: HangUp.self) {
            _ = try http.send(
                method: "PUT", url: write.uploadURL(write.head), headers: write.forward(write.servers.dropFirst().map(\.url)),
                body: .stream(length: Int64(data.count)) { max in
                    pieces += 1
                    if pieces > 4 { throw HangUp() }
                    return data.subdata(in: 0..<min(max, 100_000))
                })
        }
        Self.expectNoTempFiles(cluster, "after a hang-up")
        for server in write.servers {
            #expect(try http.send(method: "GET", url: write.blobURL(server)).status == 404, "copy on \(server.url)")
        }

        // Nothing was stored, so the same write still succeeds once the pipeline is healthy.
        let retry = try http.send(
            method: "PUT", url: write.uploadURL(write.head), headers: write.forward([second.url]), body: .data(data))
        #expect(retry.status == 201)
        #expect(try WireJSON.decode(PipelineResult.self, from: retry.body).all.count == 2)

        // A malformed header is refused before anything is stored.
        let bad = try Self.begin(cluster, "/pipe-bad-header")
        let malformed = try http.send(
            method: "PUT", url: bad.uploadURL(bad.head), headers: [HTTPHeader(PipelineHeader.name, "file:///etc/passwd x")],
            body: .data(data))
        #expect(malformed.status == 400)
        #expect(try http.send(method: "GET", url: bad.blobURL(bad.head)).status == 404)
    }

    // MARK: (c) memory stays constant

    @Test func largePipelinedUploadKeepsMemoryBounded() throws {
        let cluster = try TestCluster(fileServers: 3)
        defer { cluster.shutdown() }
        let http = HTTPClient(connectTimeout: 5, timeout: 300)
        let write = try Self.begin(cluster, "/pipe-big.bin")
        let block = try Self.randomData(1 << 20)
        let blocks = 50
        func chunk(_ index: Int) -> Data {
            var data = block
            withUnsafeBytes(of: Int64(index).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
            return data
        }
        var next = 0
        let response = try http.send(
            method: "PUT", url: write.uploadURL(write.head), headers: write.forward(write.servers.dropFirst().map(\.url)),
            body: .stream(length: Int64(blocks << 20)) { _ in
                guard next < blocks else { return Data() }
                defer { next += 1 }
                return chunk(next)
            })
        #expect(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
        let result = try WireJSON.decode(PipelineResult.self, from: response.body)
        #expect(result.all.count == 3 && Set(result.all.map(\.sha256)).count == 1)
        #expect(result.all.allSatisfy { $0.size == Int64(blocks << 20) })
        for server in write.servers {
            let peak = try #require(server.peakResidentBytes)
            #expect(peak < 100 << 20, "file server \(server.url) peaked at \(peak >> 20) MiB")
        }
        // The last copy reads back byte-exact.
        var received = Data()
        var index = 0
        var mismatch = false
        let last = try #require(write.servers.last)
        let copy = try http.send(method: "GET", url: write.blobURL(last)) { data in
            received.append(data)
            while received.count >= 1 << 20 {
                if received.prefix(1 << 20) != chunk(index) { mismatch = true }
                received.removeFirst(1 << 20)
                index += 1
            }
        }
        #expect(copy.status == 200 && index == blocks && received.isEmpty && !mismatch)
    }

    // MARK: (d) POST /replicate

    @Test func replicateCopiesAndVerifiesABlob() throws {
        let cluster = try TestCluster(fileServers: 3)
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let write = try Self.begin(cluster, "/rep-a.bin")
        let data = try Self.randomData(1 << 20 + 5)
        let put = try http.send(method: "PUT", url: write.uploadURL(write.head), body: .data(data))
        try #require(put.status == 201)
        let stored = try WireJSON.decode(UploadResult.self, from: put.body)
        let (source, target, other) = (write.servers[0], write.servers[1], write.servers[2])
        let headers = [HTTPHeader("Content-Type", "application/json"), HTTPHeader("X-DFS-Cluster-Token", cluster.secret)]
        func replicate(_ server: ServerProcess, sha256: String, size: Int64, from: String, version: Int64? = nil) throws
            -> HTTPResponse
        {
            let order = ReplicateRequest(
                fileId: stored.fileId, version: version ?? stored.version, sha256: sha256, size: size, sourceUrl: from)
            return try http.send(
                method: "POST", url: server.url + "/replicate", headers: headers, body: .data(try WireJSON.encode(order)))
        }

        let copied = try replicate(target, sha256: stored.sha256, size: stored.size, from: source.url)
        #expect(copied.status == 201, "\(String(decoding: copied.body, as: UTF8.self))")
        let result = try WireJSON.decode(UploadResult.self, from: copied.body)
        #expect(result.sha256 == stored.sha256 && result.size == stored.size && !result.receipt.isEmpty)
        #expect(result.fileServerId != stored.fileServerId)
        #expect(try http.send(method: "GET", url: write.blobURL(target)).body == data)
        // Idempotent.
        let again = try replicate(target, sha256: stored.sha256, size: stored.size, from: source.url)
        #expect(again.status == 200)
        #expect(try WireJSON.decode(UploadResult.self, from: again.body).sha256 == stored.sha256)

        // A wrong checksum or size is refused and nothing is stored.
        let wrongSHA = try replicate(other, sha256: String(repeating: "0", count: 64), size: stored.size, from: source.url)
        #expect(wrongSHA.status == 422 && Self.errorCode(wrongSHA) == "checksum_mismatch")
        let wrongSize = try replicate(other, sha256: stored.sha256, size: stored.size - 1, from: source.url)
        #expect(wrongSize.status == 422 && Self.errorCode(wrongSize) == "checksum_mismatch")
        #expect(try http.send(method: "GET", url: write.blobURL(other)).status == 404)
        // A source that does not have the blob, or does not answer: 502.
        let missing = try replicate(other, sha256: stored.sha256, size: stored.size, from: source.url, version: stored.version + 1000)
        #expect(missing.status == 502 && Self.errorCode(missing) == "unavailable")
        let dead = try replicate(other, sha256: stored.sha256, size: stored.size, from: Self.deadURL)
        #expect(dead.status == 502 && Self.errorCode(dead) == "unavailable")
        #expect(try http.send(method: "GET", url: write.blobURL(other)).status == 404)
        Self.expectNoTempFiles(cluster, "after refused copies")
        // Once copied from a good replica, the third server serves it too.
        #expect(try replicate(other, sha256: stored.sha256, size: stored.size, from: target.url).status == 201)
        #expect(try http.send(method: "GET", url: write.blobURL(other)).body == data)
    }

    // MARK: (e) cluster token

    @Test func inventoryAndReplicateNeedTheClusterToken() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let server = cluster.fileServers[0]
        let write = try Self.begin(cluster, "/inv-a.txt")
        let put = try http.send(method: "PUT", url: write.uploadURL(write.head), body: .data(Data("inventory".utf8)))
        let stored = try WireJSON.decode(UploadResult.self, from: put.body)
        let order = try WireJSON.encode(
            ReplicateRequest(fileId: 99, version: 1, sha256: stored.sha256, size: 9, sourceUrl: server.url))

        for token in [nil, "wrong", cluster.secret + "x"] as [String?] {
            let headers = token.map { [HTTPHeader("X-DFS-Cluster-Token", $0)] } ?? []
            #expect(try http.send(method: "GET", url: server.url + "/inventory", headers: headers).status == 401)
            let digests = try http.send(method: "GET", url: server.url + "/inventory/digests?buckets=4", headers: headers)
            #expect(digests.status == 401)
            let replicate = try http.send(
                method: "POST", url: server.url + "/replicate", headers: headers, body: .data(order))
            #expect(replicate.status == 401 && Self.errorCode(replicate) == "unauthorized")
            let garbage = try http.send(
                method: "POST", url: server.url + "/replicate", headers: headers, body: .data(Data("{".utf8)))
            #expect(garbage.status == 401)
        }
        #expect(try http.send(method: "GET", url: server.url + "/files/99?version=1").status == 404)

        let inventory = try http.send(
            method: "GET", url: server.url + "/inventory", headers: [HTTPHeader("X-DFS-Cluster-Token", cluster.secret)])
        #expect(inventory.status == 200)
        let answer = try WireJSON.decode(InventoryResponse.self, from: inventory.body)
        #expect(answer.fileServerId == stored.fileServerId)
        #expect(
            answer.blobs == [InventoryBlob(fileId: stored.fileId, version: stored.version, sha256: stored.sha256, size: 9)])
        // The scrubber's counters are open, like /stats.
        #expect(try http.send(method: "GET", url: server.url + "/scrub").status == 200)
    }

    /// Inventory buckets partition the inventory, and each bucket's digest is the one `InventoryDigest` gives for
    /// its blobs (the directory computes the same from its metadata and compares).
    @Test func inventoryBucketsAndDigestsDescribeTheSameBlobs() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        for index in 0..<12 { try dfs.write("/d\(index)", data: Data("blob \(index)".utf8)) }
        let http = HTTPClient()
        let url = cluster.fileServers[0].url
        let token = [HTTPHeader("X-DFS-Cluster-Token", cluster.secret)]
        func get<T: Decodable>(_ path: String, _ type: T.Type) throws -> T {
            let response = try http.send(method: "GET", url: url + path, headers: token)
            #expect(response.status == 200, "\(path): \(String(decoding: response.body, as: UTF8.self))")
            return try WireJSON.decode(type, from: response.body)
        }
        let all = try get("/inventory", InventoryResponse.self).blobs
        #expect(all.count == 12)
        let buckets = 4
        var union: [InventoryBlob] = []
        for bucket in 0..<buckets {
            let blobs = try get("/inventory?buckets=\(buckets)&bucket=\(bucket)", InventoryResponse.self).blobs
            #expect(blobs.allSatisfy { InventoryDigest.bucket(version: $0.version, of: buckets) == bucket })
            union += blobs
        }
        #expect(union.sorted { ($0.fileId, $0.version) < ($1.fileId, $1.version) } == all)
        var expected = [UInt64](repeating: 0, count: buckets)
        for blob in all {
            InventoryDigest.add(fileId: blob.fileId, version: blob.version, sha256: blob.sha256, to: &expected)
        }
        let digests = try get("/inventory/digests?buckets=\(buckets)", InventoryDigestsResponse.self)
        #expect(digests.buckets == buckets && digests.digests == expected.map(InventoryDigest.hex))
        #expect(digests.digests.contains { $0 != InventoryDigest.hex(0) })

        for bad in [
            "/inventory?buckets=4", "/inventory?bucket=1", "/inventory?buckets=4&bucket=4", "/inventory?buckets=0&bucket=0",
            "/inventory/digests", "/inventory/digests?buckets=x", "/inventory/digests?buckets=65537",
        ] {
            let response = try http.send(method: "GET", url: url + bad, headers: token)
            #expect(response.status == 400 && Self.errorCode(response) == "bad_request", "\(bad)")
        }
    }

    // MARK: (f) scrubber

    @Test func scrubberQuarantinesAFlippedBlob() throws {
        let cluster = try TestCluster(fileServers: 1, fileServerConf: "scrub_interval_ms = 100")
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let server = cluster.fileServers[0]
        let bad = try Self.begin(cluster, "/scrub-bad.bin")
        let good = try Self.begin(cluster, "/scrub-good.bin")
        let data = try Self.randomData(200_000)
        #expect(try http.send(method: "PUT", url: bad.uploadURL(server), body: .data(data)).status == 201)
        #expect(try http.send(method: "PUT", url: good.uploadURL(server), body: .data(data)).status == 201)

        let blobs = cluster.root + "/fs0/blobs"
        let prefix = "\(bad.ticket.fileId).\(bad.ticket.version)."
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: blobs).first { $0.hasPrefix(prefix) })
        let handle = try #require(FileHandle(forUpdatingAtPath: blobs + "/" + file))
        try handle.seek(toOffset: 1000)
        try handle.write(contentsOf: Data([data[1000] ^ 0xFF]))
        try handle.synchronize()
        try handle.close()

        var status: ScrubStatus?
        try waitUntil(timeout: 15) {
            status = try WireJSON.decode(ScrubStatus.self, from: try http.send(method: "GET", url: server.url + "/scrub").body)
            // The pass that found it has ended (counters are updated as blobs are checked).
            return (status?.corruptFound ?? 0) >= 1 && (status?.passes ?? 0) >= 1
        }
        let final = try #require(status)
        #expect(final.corruptFound == 1 && final.passes >= 1 && final.blobsChecked >= 2 && final.lastPassMsAgo != nil)
        #expect(try http.send(method: "GET", url: bad.blobURL(server)).status == 404, "the corrupt copy is not served")
        #expect(FileManager.default.fileExists(atPath: cluster.root + "/fs0/corrupt/" + file))
        #expect(try http.send(method: "GET", url: good.blobURL(server)).body == data)
        // Later passes find nothing new.
        try waitUntil(timeout: 10) {
            (try WireJSON.decode(ScrubStatus.self, from: try http.send(method: "GET", url: server.url + "/scrub").body))
                .passes >= final.passes + 2
        }
        let later = try WireJSON.decode(ScrubStatus.self, from: try http.send(method: "GET", url: server.url + "/scrub").body)
        #expect(later.corruptFound == 1)
    }
}
