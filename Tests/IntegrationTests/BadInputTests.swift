import Curl
import DFSProtocol
import Foundation
import Testing

/// Hostile and malformed requests get the one JSON error shape with the right status, and break nothing.
@Suite(.serialized) struct BadInputTests {
    func expectError(
        _ response: HTTPResponse, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(response.status == status, sourceLocation: sourceLocation)
        let body = try? WireJSON.decode(ErrorBody.self, from: response.body)
        #expect(body?.error.code == code, "body: \(String(decoding: response.body, as: UTF8.self))", sourceLocation: sourceLocation)
        #expect(body?.error.message.isEmpty == false, sourceLocation: sourceLocation)
    }

    @Test func directoryRejectsBadRequests() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let url = cluster.directory.url
        let http = HTTPClient()
        let json = try cluster.rawClient().headers

        expectError(try http.send(method: "POST", url: url + "/mkdir", headers: json, body: .data(Data("{".utf8))), 400, "bad_request")
        expectError(try http.send(method: "POST", url: url + "/mkdir", headers: json, body: .data(Data("{}".utf8))), 400, "bad_request")
        expectError(try http.send(method: "POST", url: url + "/mkdir", headers: json, body: .none), 400, "bad_request")
        expectError(
            try http.send(method: "POST", url: url + "/mkdir", headers: json, body: .data(Data(#"{"path": 5}"#.utf8))), 400,
            "bad_request")
        expectError(try http.send(method: "GET", url: url + "/stat?path=relative/x"), 400, "invalid_path")
        expectError(try http.send(method: "GET", url: url + "/stat?path=/a/../b"), 400, "invalid_path")
        expectError(try http.send(method: "GET", url: url + "/stat?path=/a%00b"), 400, "invalid_path")
        expectError(try http.send(method: "GET", url: url + "/stat"), 400, "bad_request")
        expectError(try http.send(method: "GET", url: url + "/stat?path=/missing"), 404, "not_found")
        expectError(try http.send(method: "GET", url: url + "/no/such/route"), 404, "not_found")
        let wrongMethod = try http.send(method: "PUT", url: url + "/stat?path=/")
        expectError(wrongMethod, 405, "method_not_allowed")
        #expect(wrongMethod.headers["allow"]?.contains("GET") == true)
        let huge = Data(repeating: UInt8(ascii: " "), count: 2 << 20)
        expectError(try http.send(method: "POST", url: url + "/mkdir", headers: json, body: .data(huge)), 413, "too_large")
        expectError(
            try http.send(
                method: "POST", url: url + "/commits", headers: json,
                body: .data(Data(#"{"path":"/x","file_id":1,"version":1,"size":1,"sha256":"zz","receipts":[]}"#.utf8))), 400,
            "bad_request")
        expectError(
            try http.send(
                method: "POST", url: url + "/commits", headers: json,
                body: .data(
                    Data(
                        #"{"path":"/x","file_id":1,"version":99,"size":1,"sha256":"\#(String(repeating: "a", count: 64))","receipts":[]}"#
                            .utf8))), 404, "not_found")
        expectError(
            try http.send(
                method: "POST", url: url + "/writes", headers: json, body: .data(Data(#"{"path":"/"}"#.utf8))), 409,
            "is_a_directory")
        expectError(try http.send(method: "DELETE", url: url + "/entries?path=/", headers: json), 400, "bad_request")
        expectError(
            try http.send(method: "DELETE", url: url + "/entries?path=/x&recursive=maybe", headers: json), 400,
            "bad_request")

        // A commit without the file server's receipt is refused: nobody can point a name at bytes never stored.
        let ticket = try WireJSON.decode(
            WriteTicket.self,
            from: try http.send(
                method: "POST", url: url + "/writes", headers: json, body: .data(Data(#"{"path":"/forged"}"#.utf8))
            ).body)
        let forged = CommitRequest(
            path: "/forged", fileId: ticket.fileId, version: ticket.version, size: 1,
            sha256: String(repeating: "b", count: 64), receipts: [StoredReceipt(fileServerId: 1, receipt: "00")])
        expectError(
            try http.send(method: "POST", url: url + "/commits", headers: json, body: .data(try WireJSON.encode(forged))),
            409, "conflict")

        #expect(try http.send(method: "GET", url: url + "/health").status == 200)
    }

    @Test func fileServerAcceptsOnlyAssignedIds() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let dfs = cluster.client()
        let entry = try dfs.write("/real", data: Data("real bytes".utf8))
        let server = try #require(entry.replicas?.first?.url)
        let http = HTTPClient()

        expectError(
            try http.send(method: "PUT", url: server + "/files/999?version=1", body: .data(Data("x".utf8))), 403, "forbidden")
        expectError(
            try http.send(method: "PUT", url: server + "/files/999?version=1&ticket=abcd", body: .data(Data("x".utf8))), 403,
            "forbidden")
        // Overwriting a stored blob with a stolen-looking request fails too.
        expectError(
            try http.send(
                method: "PUT", url: server + "/files/\(entry.fileId!)?version=\(entry.version!)&ticket=00",
                body: .data(Data("evil".utf8))), 403, "forbidden")
        expectError(
            try http.send(method: "DELETE", url: server + "/files/\(entry.fileId!)?version=\(entry.version!)"), 401,
            "unauthorized")
        expectError(
            try http.send(
                method: "DELETE", url: server + "/files/\(entry.fileId!)?version=\(entry.version!)",
                headers: [HTTPHeader("X-DFS-Cluster-Token", cluster.secret)]), 403, "forbidden")
        expectError(try http.send(method: "GET", url: server + "/files/abc?version=1"), 400, "bad_request")
        expectError(try http.send(method: "GET", url: server + "/files/1"), 400, "bad_request")
        expectError(try http.send(method: "GET", url: server + "/files/424242?version=1"), 404, "not_found")
        expectError(try http.send(method: "POST", url: server + "/files/1?version=1"), 405, "method_not_allowed")
        expectError(try http.send(method: "GET", url: server + "/files/424243?version=1", headers: [HTTPHeader("Range", "bytes=100-")]), 404, "not_found")

        let blob = "\(server)/files/\(entry.fileId!)?version=\(entry.version!)"
        let range = try http.send(method: "GET", url: blob, headers: [HTTPHeader("Range", "bytes=5-")])
        #expect(range.status == 206 && range.body == Data("bytes".utf8))
        #expect(range.headers["content-range"] == "bytes 5-9/10")
        let outside = try http.send(method: "GET", url: blob, headers: [HTTPHeader("Range", "bytes=50-")])
        #expect(outside.status == 416)
        let etag = try #require(range.headers["etag"])
        #expect(try http.send(method: "GET", url: blob, headers: [HTTPHeader("If-None-Match", etag)]).status == 304)
        #expect(try dfs.read("/real") == Data("real bytes".utf8), "stored data is untouched")
    }
}
