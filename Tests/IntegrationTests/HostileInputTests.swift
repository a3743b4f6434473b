import Curl
import DFSClient
import DFSProtocol
import Foundation
import Testing

/// Hostile input: traversal spellings, junk ids and ranges, truncated bodies, disconnects, duplicates, limits.
/// After each, the stored data must be exactly as it was.
@Suite(.serialized) struct HostileInputTests {
    func status(_ response: HTTPResponse) -> Int { response.status }

    /// Files every test starts with, and a check that they are untouched.
    struct Baseline {
        let files: [String: Data]
        func verify(_ dfs: DFSClient, sourceLocation: SourceLocation = #_sourceLocation) throws {
            for (path, data) in files {
                #expect(try dfs.read(path) == data, "\(path) changed", sourceLocation: sourceLocation)
            }
        }
    }

    func baseline(_ dfs: DFSClient) throws -> Baseline {
        let files = ["/keep/a.txt": Data("alpha".utf8), "/keep/b.bin": Data(repeating: 7, count: 10_000)]
        try dfs.mkdir("/keep", parents: true)
        for (path, data) in files { try dfs.write(path, data: data) }
        return Baseline(files: files)
    }

    @Test func traversalInEverySpellingIsRefusedOrHarmless() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let base = try baseline(dfs)
        let http = HTTPClient()
        let url = cluster.directory.url
        let auth = try cluster.rawClient().headers
        for spelling in [
            "/keep/..", "/keep/../keep/a.txt", "/keep/%2e%2e/x", "/keep/%2E%2E", "/keep/.%2e/a.txt", "/%c0%ae%c0%ae/x",
            "/keep/%c0%af..%c0%afx", "keep/a.txt", "/keep/a%00.txt", "/keep/%ff",
        ] {
            let stat = try http.send(method: "GET", url: url + "/stat?path=" + spelling)
            #expect(stat.status == 400 || stat.status == 404, "stat \(spelling) answered \(stat.status)")
            let rm = try http.send(method: "DELETE", url: url + "/entries?recursive=true&path=" + spelling, headers: auth)
            #expect(rm.status == 400 || rm.status == 404, "rm \(spelling) answered \(rm.status)")
        }
        // Backslashes are plain characters in a name: they create an entry, escape nothing.
        let weird = #"/keep/..\..\etc"#
        try dfs.write(weird, data: Data("inside".utf8))
        #expect(try dfs.list("/keep").map(\.name).contains(#"..\..\etc"#))
        try dfs.remove(weird)

        // File-server ids are numbers, never paths.
        let server = try #require(try dfs.fileServers().first?.url)
        for id in ["..%2f..%2fetc%2fpasswd", "-1", "0", "1.5", "99999999999999999999", "%00", "abc"] {
            let get = try http.send(method: "GET", url: server + "/files/\(id)?version=1")
            #expect(get.status == 400 || get.status == 404, "GET /files/\(id) answered \(get.status)")
            let put = try http.send(method: "PUT", url: server + "/files/\(id)?version=1&ticket=1.00", body: .data(Data("x".utf8)))
            #expect((400...404).contains(put.status), "PUT /files/\(id) answered \(put.status)")
        }
        try base.verify(dfs)
    }

    @Test func junkRangesAndVersionsGetClearAnswers() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let base = try baseline(dfs)
        let entry = try dfs.stat("/keep/b.bin")
        let blob = "\(entry.replicas![0].url)/files/\(entry.fileId!)?version=\(entry.version!)"
        let http = HTTPClient()
        for range in ["bytes=-5-10", "bytes=99999999999999999999-", "bytes=-99999999999999", "bytes=5-2", "bytes=x-y", "bytes=0-0,2-3"] {
            let response = try http.send(method: "GET", url: blob, headers: [HTTPHeader("Range", range)])
            #expect([200, 206, 416].contains(response.status), "Range \(range) answered \(response.status)")
            if response.status == 200 { #expect(response.body.count == 10_000) }
        }
        let huge = try http.send(method: "GET", url: blob, headers: [HTTPHeader("Range", "bytes=10000-20000")])
        #expect(huge.status == 416)
        let tail = try http.send(method: "GET", url: blob, headers: [HTTPHeader("Range", "bytes=-99999999999999")])
        #expect(tail.status == 206 && tail.body.count == 10_000)
        for version in ["-1", "0", "abc", "1e3", ""] {
            let response = try http.send(method: "GET", url: blob.replacingOccurrences(of: "version=\(entry.version!)", with: "version=\(version)"))
            #expect(response.status == 400, "version=\(version) answered \(response.status)")
        }
        try base.verify(dfs)
    }

    @Test func truncatedAndAbortedUploadsLeaveNothingBehind() throws {
        let cluster = try TestCluster(fileServers: 1, fileServerConf: "connection_timeout_s = 2")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let base = try baseline(dfs)
        let client = try cluster.rawClient()
        let http = HTTPClient()
        let ticket = try WireJSON.decode(
            WriteTicket.self,
            from: try http.send(
                method: "POST", url: cluster.directory.url + "/writes", headers: client.headers,
                body: .data(Data(#"{"path":"/keep/partial"}"#.utf8))
            ).body)
        let target = try #require(ticket.targets.first)
        let upload = "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)&ticket=\(target.ticket)"
        let tmpDir = cluster.root + "/fs0/tmp"
        let before = try FileManager.default.contentsOfDirectory(atPath: tmpDir).count

        // The client promises 1 MiB, sends 1000 bytes and hangs up.
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = [
            "-s", "-o", "/dev/null", "--max-time", "1", "-X", "PUT", "-H", "Content-Length: 1048576", "-H", "Expect:",
            "--data-binary", String(repeating: "x", count: 1000), upload,
        ]
        try curl.run()
        curl.waitUntilExit()
        // A stream that fails half-way through is aborted by the client library.
        struct Boom: Error {}
        var sent = 0
        #expect(throws: Boom.self) {
            _ = try http.send(method: "PUT", url: upload, body: .stream(length: 100_000) { max in
                sent += 1
                if sent > 2 { throw Boom() }
                return Data(repeating: 1, count: min(max, 1000))
            })
        }
        // The server notices the hang-up on its next read, or at the latest after connection_timeout_s (2 s here),
        // and then removes the temp file.
        let settled: Void? = try? waitUntil { try FileManager.default.contentsOfDirectory(atPath: tmpDir).count == before }
        let left = try FileManager.default.contentsOfDirectory(atPath: tmpDir)
        #expect(settled != nil, "temp files left: \(left), curl exit \(curl.terminationStatus)")
        let blob = try http.send(method: "GET", url: "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)")
        #expect(blob.status == 404, "a partial upload became visible")
        #expect(throws: DFSClientError.self) { try dfs.stat("/keep/partial") }

        // The ticket still works for one complete upload; a duplicate is refused and changes nothing.
        let complete = try http.send(method: "PUT", url: upload, body: .data(Data("whole".utf8)))
        #expect(complete.status == 201)
        let duplicate = try http.send(method: "PUT", url: upload, body: .data(Data("other".utf8)))
        #expect(duplicate.status == 409)
        #expect(try http.send(method: "GET", url: "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)").body == Data("whole".utf8))
        try base.verify(dfs)
    }

    @Test func duplicateAndConflictingRequests() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let base = try baseline(dfs)
        let http = HTTPClient()
        let client = try cluster.rawClient()
        let ticket = try WireJSON.decode(
            WriteTicket.self,
            from: try http.send(
                method: "POST", url: cluster.directory.url + "/writes", headers: client.headers,
                body: .data(Data(#"{"path":"/keep/a.txt"}"#.utf8))
            ).body)
        let target = try #require(ticket.targets.first)
        let stored = try WireJSON.decode(
            UploadResult.self,
            from: try http.send(
                method: "PUT",
                url: "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)&ticket=\(target.ticket)",
                body: .data(Data("beta".utf8))
            ).body)
        let commit = CommitRequest(
            path: "/keep/a.txt", fileId: ticket.fileId, version: ticket.version, size: stored.size,
            sha256: stored.sha256, receipts: [StoredReceipt(fileServerId: stored.fileServerId, receipt: stored.receipt)])
        // Committed under another path: refused.
        var moved = commit
        moved.path = "/keep/b.bin"
        let wrongPath = try http.send(
            method: "POST", url: cluster.directory.url + "/commits", headers: client.headers,
            body: .data(try WireJSON.encode(moved)))
        #expect(wrongPath.status == 404)
        // A receipt for other bytes: refused.
        var lying = commit
        lying.size += 1
        let lie = try http.send(
            method: "POST", url: cluster.directory.url + "/commits", headers: client.headers,
            body: .data(try WireJSON.encode(lying)))
        #expect(lie.status == 409)
        try base.verify(dfs)
        // The real commit once, then the same commit again.
        let first = try http.send(
            method: "POST", url: cluster.directory.url + "/commits", headers: client.headers,
            body: .data(try WireJSON.encode(commit)))
        #expect(first.status == 200)
        let again = try http.send(
            method: "POST", url: cluster.directory.url + "/commits", headers: client.headers,
            body: .data(try WireJSON.encode(commit)))
        #expect(again.status == 404)
        #expect(try dfs.read("/keep/a.txt") == Data("beta".utf8))
        #expect(try dfs.read("/keep/b.bin") == base.files["/keep/b.bin"])
        // Conflicting namespace changes.
        #expect(throws: DFSClientError.self) { try dfs.mkdir("/keep") }
        #expect(throws: DFSClientError.self) { try dfs.move("/keep/a.txt", to: "/keep/b.bin") }
        #expect(throws: DFSClientError.self) { try dfs.mkdir("/keep/a.txt/sub") }
        #expect(try dfs.read("/keep/b.bin") == base.files["/keep/b.bin"])
    }

    @Test func limitsAnswerWithClear4xx() throws {
        let cluster = try TestCluster(fileServers: 1, directoryConf: "max_file_bytes = 100000")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let base = try baseline(dfs)
        let http = HTTPClient()
        let url = cluster.directory.url
        // Header size.
        let bigHeader = try http.send(
            method: "GET", url: url + "/stat?path=/keep", headers: [HTTPHeader("X-Padding", String(repeating: "p", count: 20_000))])
        #expect(bigHeader.status == 431)
        // Path length and depth, name characters.
        let auth = try cluster.rawClient().headers
        for path in [
            "/" + String(repeating: "n", count: 256), String(repeating: "/d", count: 129),
            String(repeating: "/abcdefgh", count: 600),
        ] {
            let response = try http.send(
                method: "POST", url: url + "/mkdir", headers: auth,
                body: .data(try WireJSON.encode(MkdirRequest(path: path, parents: true))))
            #expect(response.status == 400, "mkdir of a \(path.count)-byte path answered \(response.status)")
        }
        // File size: refused before any byte moves, and while streaming when the size was not announced.
        let tooBig = #expect(throws: DFSClientError.self) {
            try dfs.write("/keep/big", data: Data(repeating: 0, count: 100_001))
        }
        #expect(tooBig?.status == 413)
        // JSON body size.
        let hugeJSON = try http.send(
            method: "POST", url: url + "/mkdir", headers: auth, body: .data(Data(repeating: 0x20, count: 2 << 20)))
        #expect(hugeJSON.status == 413)
        try base.verify(dfs)
        #expect(throws: DFSClientError.self) { try dfs.stat("/keep/big") }
    }
}
