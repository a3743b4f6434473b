import Crypto
import Curl
import DFSClient
import DFSProtocol
import Foundation
import Testing

/// Whole-file reads through the directory (`GET /content`): a small created file's bytes come from the directory in
/// one round trip; anything else is a redirect to a file server with the entry; `If-None-Match` saves the bytes.
@Suite struct ContentTests {
    static func content(_ cluster: TestCluster, _ path: String, ifNoneMatch: String? = nil) throws -> HTTPResponse {
        let headers = ifNoneMatch.map { [HTTPHeader("If-None-Match", $0)] } ?? []
        return try HTTPClient().send(
            method: "GET", url: cluster.directory.url + "/content?path=" + path, headers: headers)
    }

    static func errorCode(_ response: HTTPResponse) -> String? {
        try? WireJSON.decode(ErrorBody.self, from: response.body).error.code
    }

    @Test func aSmallCreatedFileIsReadFromTheDirectoryAlone() throws {
        let cluster = try TestCluster(fileServers: 2)
        defer { cluster.shutdown() }
        let data = Data("kept beside its entry\n".utf8)
        try cluster.client().mkdir("/docs")
        let entry = try cluster.client().write("/docs/small.txt", data: data)
        let (fileId, version) = (try #require(entry.fileId), try #require(entry.version))
        #expect(fileId == version, "written through a create")

        let answer = try Self.content(cluster, "/docs/small.txt")
        #expect(answer.status == 200 && answer.body == data)
        let etag = "\"\(fileId).\(version)\""
        #expect(answer.headers["etag"] == etag)
        #expect(answer.headers["x-dfs-file-id"] == String(fileId) && answer.headers["x-dfs-version"] == String(version))
        #expect(answer.headers["x-dfs-sha256"] == Data(SHA256.hash(data: data)).hexString)
        #expect(answer.headers["x-dfs-size"] == String(data.count))
        #expect(answer.headers["content-type"] == "application/octet-stream")

        // Conditional: the current version (alone, in a list, weak, or `*`) is 304 without a body; another is 200.
        for tag in [etag, "\"1.1\", \(etag)", "W/\(etag)", "*"] {
            let same = try Self.content(cluster, "/docs/small.txt", ifNoneMatch: tag)
            #expect(same.status == 304 && same.body.isEmpty && same.headers["etag"] == etag, "If-None-Match: \(tag)")
        }
        #expect(try Self.content(cluster, "/docs/small.txt", ifNoneMatch: "\"\(fileId).\(version + 1)\"").body == data)

        // The client reads it without a file server: none served a byte, on the first read or the second.
        let reader = cluster.client(home: cluster.tempPath("reader"))
        #expect(try reader.read("/docs/small.txt") == data)
        #expect(try reader.read("/docs/small.txt") == data)
        #expect(try cluster.bytesServed() == 0)
        let stats = try reader.cacheStats()
        #expect(stats.misses == 1 && stats.hits == 1, "the second read was a 304 served from the cache")
    }

    @Test func biggerFilesRedirectToAFileServerWithTheEntry() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        // Above inline_max_bytes (4096 by default): created in one request, and through a ticket (under a lock).
        let big = Data((0..<4097).map { UInt8(truncatingIfNeeded: $0) })
        try dfs.write("/big", data: big)
        let lock = try dfs.lock("/ticket")
        try dfs.write("/ticket", data: Data(big.reversed()))
        try lock.release()
        for (path, data) in [("/big", big), ("/ticket", Data(big.reversed()))] {
            let answer = try Self.content(cluster, path)
            #expect(answer.status == 307, "\(path)")
            let entry = try WireJSON.decode(EntryInfo.self, from: answer.body)
            let replica = try #require(entry.replicas?.first)
            let location = "\(replica.url)/files/\(entry.fileId!)?version=\(entry.version!)"
            #expect(answer.headers["location"] == location && entry.path == path)
            #expect(try HTTPClient().send(method: "GET", url: location).body == data, "curl -L reads \(path)")
            #expect(try cluster.client(home: cluster.tempPath("r\(path.count)")).read(path) == data)
        }

        #expect(Self.errorCode(try Self.content(cluster, "/nothing")) == "not_found")
        try dfs.mkdir("/dir")
        let directory = try Self.content(cluster, "/dir")
        #expect(directory.status == 409 && Self.errorCode(directory) == "is_a_directory")
        let noPath = try HTTPClient().send(method: "GET", url: cluster.directory.url + "/content")
        #expect(noPath.status == 400 && Self.errorCode(noPath) == "bad_request")
        #expect(Self.errorCode(try Self.content(cluster, "relative")) == "invalid_path")
    }

    @Test func aWriteLockSendsReadersToTheFileServersAndTheNewVersionWins() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let writer = cluster.client()
        let first = try writer.write("/f", data: Data("one".utf8))
        let reader = cluster.client(home: cluster.tempPath("reader"))
        #expect(try reader.read("/f") == Data("one".utf8))

        let lock = try writer.lock("/f")
        let locked = try Self.content(cluster, "/f", ifNoneMatch: "*")
        #expect(locked.status == 307, "no 304 and no bytes while a writer holds the lock")
        #expect(try WireJSON.decode(EntryInfo.self, from: locked.body).writeLockedBy == (try writer.clientId()))
        let second = try writer.write("/f", data: Data("two, through a ticket".utf8))
        #expect(second.fileId == first.fileId, "written through a ticket (POST /writes), not a create")
        try lock.release()

        // The ticket's commit brought its bytes too; the reader's cached "one" is not served.
        let after = try Self.content(cluster, "/f", ifNoneMatch: "\"\(first.fileId!).\(first.version!)\"")
        #expect(after.status == 200 && after.body == Data("two, through a ticket".utf8))
        #expect(after.headers["etag"] == "\"\(second.fileId!).\(second.version!)\"")
        #expect(try reader.read("/f") == Data("two, through a ticket".utf8))
        #expect(try cluster.bytesServed() == 0, "every read came from the directory")

        // An overwrite through a create is kept again; rm drops it.
        let third = try writer.write("/f", data: Data("three".utf8))
        let kept = try Self.content(cluster, "/f")
        #expect(kept.status == 200 && kept.body == Data("three".utf8))
        #expect(kept.headers["etag"] == "\"\(third.fileId!).\(third.version!)\"")
        #expect(try reader.read("/f") == Data("three".utf8))
        try writer.remove("/f")
        #expect(Self.errorCode(try Self.content(cluster, "/f")) == "not_found")
    }

    /// The directory remembers directories' ids by path: `mv` and `rm` must make it forget them.
    @Test func lookupsFollowMovedRemovedAndRecreatedDirectories() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        try dfs.mkdir("/a/b", parents: true)
        try dfs.write("/a/b/f", data: Data("one".utf8))
        #expect(try Self.content(cluster, "/a/b/f").body == Data("one".utf8))
        #expect(try dfs.stat("/a/b/f").size == 3)

        try dfs.move("/a", to: "/c")
        #expect(Self.errorCode(try Self.content(cluster, "/a/b/f")) == "not_found")
        #expect(throws: DFSClientError.self) { try dfs.stat("/a/b/f") }
        #expect(try Self.content(cluster, "/c/b/f").body == Data("one".utf8))

        try dfs.mkdir("/a/b", parents: true)
        try dfs.write("/a/b/f", data: Data("two!".utf8))
        #expect(try Self.content(cluster, "/a/b/f").body == Data("two!".utf8))
        #expect(try dfs.stat("/a/b/f").size == 4)

        try dfs.remove("/c", recursive: true)
        try dfs.mkdir("/c/b", parents: true)
        #expect(Self.errorCode(try Self.content(cluster, "/c/b/f")) == "not_found")
    }

    /// Repeated reads are answered from the directory's memory (`inline_cache_bytes`) and the `stat` cache: every
    /// change is still seen at once, and a `stat` after a read still names the copies. The same with the memory off.
    @Test(arguments: ["", "inline_cache_bytes = 0"])
    func repeatedReadsFollowEveryChange(conf: String) throws {
        let cluster = try TestCluster(fileServers: 1, directoryConf: conf)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        try dfs.mkdir("/r")
        let one = try dfs.write("/r/f", data: Data("one".utf8))
        for _ in 0..<3 { #expect(try Self.content(cluster, "/r/f").body == Data("one".utf8)) }
        let stat = try dfs.stat("/r/f")
        #expect(stat.version == one.version && stat.replicas?.count == 1 && stat.sha256 == one.sha256)

        // A client registering (a change to the metadata, not to the namespace) changes no answer.
        let reader = cluster.client(home: cluster.tempPath("reader"))
        #expect(try reader.read("/r/f") == Data("one".utf8))
        #expect(try Self.content(cluster, "/r/f").body == Data("one".utf8))
        // Nor does a change elsewhere (the path's row is looked up again, its bytes may come from memory).
        try dfs.write("/elsewhere", data: Data("other".utf8))
        #expect(try Self.content(cluster, "/r/f").body == Data("one".utf8))
        #expect(try dfs.stat("/r/f").replicas?.count == 1)

        let two = try dfs.write("/r/f", data: Data("two!".utf8))
        #expect(two.version != one.version)
        for _ in 0..<2 {
            let answer = try Self.content(cluster, "/r/f")
            #expect(answer.body == Data("two!".utf8) && answer.headers["x-dfs-version"] == two.version.map(String.init))
        }
        #expect(try reader.read("/r/f") == Data("two!".utf8))

        try dfs.move("/r/f", to: "/r/g")
        #expect(Self.errorCode(try Self.content(cluster, "/r/f")) == "not_found")
        #expect(try Self.content(cluster, "/r/g").body == Data("two!".utf8))
        try dfs.remove("/r/g")
        #expect(Self.errorCode(try Self.content(cluster, "/r/g")) == "not_found")
        #expect(throws: DFSClientError.self) { try reader.read("/r/g") }
    }

    @Test func inlineMaxBytesZeroKeepsNothing() throws {
        let cluster = try TestCluster(fileServers: 1, directoryConf: "inline_max_bytes = 0")
        defer { cluster.shutdown() }
        let entry = try cluster.client().write("/s", data: Data("small".utf8))
        #expect(entry.fileId == entry.version, "still a create")
        #expect(try Self.content(cluster, "/s").status == 307)
        #expect(try cluster.client(home: cluster.tempPath("reader")).read("/s") == Data("small".utf8))
    }

    @Test func aBatchWhoseBytesAreNotTheCommitsIsRefused() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let headers = [HTTPHeader("Content-Type", "application/json"), HTTPHeader("X-DFS-Cluster-Token", cluster.secret)]
        let ids = try WireJSON.decode(
            IdBlockResponse.self,
            from: try HTTPClient().send(
                method: "POST", url: cluster.directory.url + "/ids", headers: headers,
                body: .data(try WireJSON.encode(IdBlockRequest(count: 1)))
            ).body)
        #expect(ids.inlineMaxBytes == 4096)
        let data = Data("these bytes".utf8)
        let commit = CommitRequest(
            path: "/forged", fileId: ids.first, version: ids.first, size: Int64(data.count),
            sha256: Data(SHA256.hash(data: Data("other bytes".utf8))).hexString, receipts: [])
        let batch = BatchCommitRequest(commits: [BatchCommitItem(clientId: 1, commit: commit, data: data)])
        let response = try HTTPClient().send(
            method: "POST", url: cluster.directory.url + "/commits/batch", headers: headers,
            body: .data(try WireJSON.encode(batch)))
        let outcome = try #require(try WireJSON.decode(BatchCommitResponse.self, from: response.body).outcomes.first)
        #expect(outcome.status == 400 && outcome.error?.code == "bad_request")
        #expect(Self.errorCode(try Self.content(cluster, "/forged")) == "not_found")

        // A client's commit (POST /commits) is checked the same way, before anything else.
        let (_, auth) = try cluster.rawClient()
        var clientCommit = commit
        clientCommit.data = data
        let refusedCommit = try HTTPClient().send(
            method: "POST", url: cluster.directory.url + "/commits", headers: auth,
            body: .data(try WireJSON.encode(clientCommit)))
        #expect(refusedCommit.status == 400 && Self.errorCode(refusedCommit) == "bad_request")

        // A create whose blob is not yet durable must bring its bytes (at most 64 KiB): they make it durable.
        for (data, what) in [(nil, "no bytes"), (Data(count: (1 << 16) + 1), "more than 64 KiB")] as [(Data?, String)] {
            let size = Int64(data?.count ?? 1)
            let unflushed = CommitRequest(
                path: "/unflushed", fileId: ids.first, version: ids.first, size: size,
                sha256: Data(SHA256.hash(data: data ?? Data("x".utf8))).hexString, receipts: [])
            let body = BatchCommitRequest(
                commits: [BatchCommitItem(clientId: 1, commit: unflushed, data: data, blobDurable: false)])
            let answer = try HTTPClient().send(
                method: "POST", url: cluster.directory.url + "/commits/batch", headers: headers,
                body: .data(try WireJSON.encode(body)))
            let refusal = try #require(try WireJSON.decode(BatchCommitResponse.self, from: answer.body).outcomes.first)
            #expect(refusal.status == 400 && refusal.error?.code == "bad_request", "\(what)")
            #expect(refusal.error?.message.contains("not yet durable") == true, "\(what)")
        }
        // Beyond inline_max_bytes (4096 here): 412, for the file server to commit it once its blob is durable.
        let big = Data(repeating: 7, count: 5000)
        let beyond = BatchCommitRequest(commits: [
            BatchCommitItem(
                clientId: 1,
                commit: CommitRequest(
                    path: "/unflushed", fileId: ids.first, version: ids.first, size: Int64(big.count),
                    sha256: Data(SHA256.hash(data: big)).hexString, receipts: []),
                data: big, blobDurable: false)
        ])
        let answer = try WireJSON.decode(
            BatchCommitResponse.self,
            from: try HTTPClient().send(
                method: "POST", url: cluster.directory.url + "/commits/batch", headers: headers,
                body: .data(try WireJSON.encode(beyond))
            ).body)
        #expect(answer.outcomes.map(\.status) == [412] && answer.inlineMaxBytes == 4096)
        #expect(Self.errorCode(try Self.content(cluster, "/unflushed")) == "not_found")

        let notBase64 = Data(#"{"commits":[{"client_id":1,"commit":{"path":"/x","file_id":1,"version":1,"size":1,"sha256":"00","receipts":[]},"data_base64":"%%%"}]}"#.utf8)
        let refused = try HTTPClient().send(
            method: "POST", url: cluster.directory.url + "/commits/batch", headers: headers, body: .data(notBase64))
        #expect(refused.status == 400)
    }
}
