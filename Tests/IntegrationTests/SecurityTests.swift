import Curl
import DFSClient
import DFSProtocol
import Foundation
import Testing

/// Access control: strangers get 401 and change nothing; clients act only as themselves; file servers take
/// orders only from the directory.
@Suite(.serialized) struct SecurityTests {
    func code(_ response: HTTPResponse) -> String? {
        (try? WireJSON.decode(ErrorBody.self, from: response.body))?.error.code
    }

    @Test func stateChangingRequestsNeedAValidClientToken() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let url = cluster.directory.url
        let json = [HTTPHeader("Content-Type", "application/json")]
        let forged = TestCluster.headers(token: "1.00112233")
        let mkdir = Data(#"{"path":"/nope","parents":true}"#.utf8)
        for headers in [json, forged, TestCluster.headers(token: "garbage")] {
            let response = try http.send(method: "POST", url: url + "/mkdir", headers: headers, body: .data(mkdir))
            #expect(response.status == 401 && code(response) == "unauthorized")
        }
        for (method, route, body) in [
            ("POST", "/writes", #"{"path":"/x"}"#), ("POST", "/mv", #"{"from":"/a","to":"/b"}"#),
            ("POST", "/locks", #"{"path":"/x","mode":"write"}"#), ("DELETE", "/entries?path=/x", ""),
            ("DELETE", "/locks?path=/x", ""),
        ] {
            let response = try http.send(
                method: method, url: url + route, headers: json, body: body.isEmpty ? .none : .data(Data(body.utf8)))
            #expect(response.status == 401, "\(method) \(route) answered \(response.status)")
        }
        #expect(try cluster.client().list("/").isEmpty, "nothing changed")

        // A token from another cluster (other secret) is refused too.
        let other = try TestCluster(fileServers: 0)
        defer { other.shutdown() }
        let stranger = try other.rawClient()
        let response = try http.send(method: "POST", url: url + "/mkdir", headers: stranger.headers, body: .data(mkdir))
        #expect(response.status == 401)
    }

    @Test func serverRoutesNeedTheClusterSecret() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let http = HTTPClient()
        let url = cluster.directory.url
        let before = try cluster.client().fileServers()
        let register = try WireJSON.encode(
            RegisterFileServerRequest(url: "http://127.0.0.1:9", capacityBytes: 1 << 40, fileServerId: before[0].id))
        for secret in [nil, "wrong", ""] {
            var headers = [HTTPHeader("Content-Type", "application/json")]
            if let secret { headers.append(HTTPHeader("X-DFS-Cluster-Token", secret)) }
            let hijack = try http.send(method: "POST", url: url + "/register_fileserver", headers: headers, body: .data(register))
            #expect(hijack.status == 401 && code(hijack) == "unauthorized")
            let beat = try http.send(
                method: "POST", url: url + "/heartbeat", headers: headers,
                body: .data(try WireJSON.encode(HeartbeatRequest(fileServerId: before[0].id, usedBytes: 0, fileCount: 0))))
            #expect(beat.status == 401)
        }
        #expect(try cluster.client().fileServers() .map(\.url) == before.map(\.url), "the server was not re-pointed")
    }

    @Test func fileServersTakeOrdersOnlyFromTheDirectory() throws {
        let cluster = try TestCluster(fileServers: 1, directoryConf: "ticket_ttl_ms = 1000")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let entry = try dfs.write("/kept", data: Data("kept".utf8))
        let server = try #require(entry.replicas?.first?.url)
        let http = HTTPClient()
        let blob = "\(server)/files/\(entry.fileId!)?version=\(entry.version!)"

        // Deleting needs the cluster secret and a delete ticket; neither alone is enough.
        #expect(try http.send(method: "DELETE", url: blob).status == 401)
        let withSecret = [HTTPHeader("X-DFS-Cluster-Token", cluster.secret)]
        #expect(try http.send(method: "DELETE", url: blob, headers: withSecret).status == 403)
        #expect(try dfs.read("/kept") == Data("kept".utf8))

        // An upload grant is for one file id and version, and it expires.
        let client = try cluster.rawClient()
        let ticket = try WireJSON.decode(
            WriteTicket.self,
            from: try http.send(
                method: "POST", url: cluster.directory.url + "/writes", headers: client.headers,
                body: .data(Data(#"{"path":"/late"}"#.utf8))
            ).body)
        let target = try #require(ticket.targets.first)
        let otherId = try http.send(
            method: "PUT", url: "\(target.url)/files/\(ticket.fileId + 1)?version=\(ticket.version)&ticket=\(target.ticket)",
            body: .data(Data("x".utf8)))
        #expect(otherId.status == 403, "a grant for one id does not open another")
        Thread.sleep(forTimeInterval: 1.2)  // let the 1 s grant expire
        let late = try http.send(
            method: "PUT", url: "\(target.url)/files/\(ticket.fileId)?version=\(ticket.version)&ticket=\(target.ticket)",
            body: .data(Data("x".utf8)))
        #expect(late.status == 403 && code(late) == "forbidden")

        // Reads are open by design (see docs/security.md): no ticket needed.
        #expect(try http.send(method: "GET", url: blob).body == Data("kept".utf8))
    }

    @Test func falseReportsCannotMakeTheDirectoryForgetGoodCopies() throws {
        let cluster = try TestCluster(fileServers: 3, directoryConf: "inventory_interval_ms = 300\norphan_grace_ms = 500")
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let entry = try dfs.write("/precious", data: Data("precious bytes".utf8))
        let liar = try cluster.rawClient()
        let http = HTTPClient()
        for replica in try #require(entry.replicas) {
            for problem in ["corrupt", "missing"] {
                let report = ProblemReport(
                    fileId: entry.fileId!, version: entry.version!, fileServerId: replica.fileServerId, problem: problem)
                let response = try http.send(
                    method: "POST", url: cluster.directory.url + "/reports", headers: liar.headers,
                    body: .data(try WireJSON.encode(report)))
                #expect(response.status == 200)
            }
        }
        // Several inventory rounds later, both copies are still listed and readable.
        Thread.sleep(forTimeInterval: 1.5)
        let after = try dfs.stat("/precious")
        #expect(Set(after.replicas?.map(\.fileServerId) ?? []) == Set(entry.replicas?.map(\.fileServerId) ?? []))
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 0)
        #expect(try reader.read("/precious") == Data("precious bytes".utf8))
    }

    @Test func clientTokenIsStoredOwnerOnly() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let home = cluster.tempPath("private-home")
        let dfs = cluster.client(home: home)
        try dfs.mkdir("/mine")
        let attributes = try FileManager.default.attributesOfItem(atPath: home + "/client.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let text = try String(contentsOfFile: home + "/client.json", encoding: .utf8)
        #expect(text.contains("\"token\""))
    }
}
