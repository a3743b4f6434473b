import Curl
import Foundation
import Testing

@Suite("Curl: HTTPClient against a python http.server on 127.0.0.1")
struct CurlTests {
    /// Bytes of the pattern `i % 256` starting at `offset`, as both the server and these tests generate it.
    static let reference = Data((0..<((1 << 20) + 256)).map { UInt8(truncatingIfNeeded: $0) })

    static func pattern(offset: Int64, count: Int) -> Data {
        let start = Int(offset % 256)
        return reference[start..<(start + count)]
    }

    static func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    struct Stop: Error {}

    @Test func smallGetReturnsBodyAndLowercasedHeaders() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let response = try HTTPClient().send(method: "GET", url: server.url("/hello"))
        #expect(response.status == 200)
        #expect(response.body == Data("hello".utf8))
        #expect(response.headers["x-test"] == "yes")
        #expect(response.headers["x-multi"] == "a, b")
        #expect(response.headers["content-type"] == "text/plain")
        #expect(response.headers["content-length"] == "5")
    }

    @Test func headReadsHeadersOnly() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let response = try HTTPClient().send(method: "HEAD", url: server.url("/big?size=1000"))
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(response.headers["content-length"] == "1000")
    }

    @Test func oneConnectionIsReusedAcrossSends() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let client = HTTPClient()
        for round in 0..<10 {
            _ = try client.send(method: "GET", url: server.url("/hello"))
            _ = try client.send(method: "GET", url: server.url("/missing"))
            _ = try client.send(method: "HEAD", url: server.url("/hello"))
            let body = Data(repeating: UInt8(round), count: 1000)
            _ = try client.send(method: "PUT", url: server.url("/echo"), body: .data(body))
            _ = try client.send(
                method: "POST", url: server.url("/echo"), body: .stream(length: nil, read: { _ in Data() }))
        }
        let stats = try Self.json(try client.send(method: "GET", url: server.url("/stats")).body)
        #expect(stats["connections"] as? Int == 1)
    }

    @Test func successBodyStreamsIntoOnBodyInChunks() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let size: Int64 = 64 << 20
        var received: Int64 = 0
        var chunks = 0
        var largestChunk = 0
        var sizes: [Int] = []
        var intact = true
        let response = try HTTPClient().send(method: "GET", url: server.url("/big?size=\(size)")) { chunk in
            intact = intact && chunk == Self.pattern(offset: received, count: chunk.count)
            received += Int64(chunk.count)
            chunks += 1
            largestChunk = max(largestChunk, chunk.count)
            sizes.append(chunk.count)
        }
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(received == size)
        #expect(intact)
        #expect(chunks > 100)
        #expect(largestChunk <= 1 << 20)
        // Not curl's 16 KiB pieces: at least 256 KiB each but the last.
        #expect(sizes.dropLast().allSatisfy { $0 >= 256 << 10 }, "\(Set(sizes.dropLast()).sorted().prefix(5))")
    }

    /// A body shorter than a piece reaches `onBody` once the transfer is done, in one piece; an error `onBody` throws
    /// then is rethrown, and the client stays usable.
    @Test func aShortBodyReachesOnBodyWhole() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let client = HTTPClient()
        var pieces: [Data] = []
        let response = try client.send(method: "GET", url: server.url("/hello")) { pieces.append($0) }
        #expect(response.status == 200 && response.body.isEmpty && pieces == [Data("hello".utf8)])
        #expect(throws: Stop.self) {
            try client.send(method: "GET", url: server.url("/hello")) { _ in throw Stop() }
        }
        #expect(try client.send(method: "GET", url: server.url("/hello")).body == Data("hello".utf8))
    }

    @Test func errorStatusGoesToBodyNotOnBody() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let client = HTTPClient()
        var calls = 0
        let missing = try client.send(method: "GET", url: server.url("/nothing-here")) { _ in calls += 1 }
        #expect(missing.status == 404)
        #expect(calls == 0)
        let error = try #require(try Self.json(missing.body)["error"] as? [String: Any])
        #expect(error["code"] as? String == "not_found")

        let failed = try client.send(method: "GET", url: server.url("/fail?size=100000"), bodyLimit: 1000) { _ in
            calls += 1
        }
        #expect(failed.status == 500)
        #expect(calls == 0)
        #expect(failed.body == Data(repeating: UInt8(ascii: "e"), count: 1000))

        let after = try client.send(method: "GET", url: server.url("/hello"))
        #expect(after.body == Data("hello".utf8))
    }

    @Test func successBodyOverLimitWithoutOnBodyFails() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let error = try #require(throws: CurlError.self) {
            try HTTPClient().send(method: "GET", url: server.url("/big?size=100000"), bodyLimit: 4096)
        }
        #expect(error.code == 63)
    }

    @Test(arguments: ["PUT", "POST"], [true, false])
    func streamedUpload(method: String, withLength: Bool) throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let size: Int64 = (8 << 20) + 12345
        var offset: Int64 = 0
        var largestRequest = 0
        let read: (Int) throws -> Data = { wanted in
            largestRequest = max(largestRequest, wanted)
            let count = Int(min(Int64(wanted), size - offset))
            defer { offset += Int64(count) }
            return Self.pattern(offset: offset, count: count)
        }
        let response = try HTTPClient().send(
            method: method, url: server.url("/echo"), body: .stream(length: withLength ? size : nil, read: read))
        #expect(response.status == 200)
        let echo = try Self.json(response.body)
        #expect(echo["method"] as? String == method)
        #expect(echo["length"] as? Int == Int(size))
        #expect(echo["sha256"] as? String == "17f64fc82482867fc83f3d94747a6e1ea785aae9d6010fadd66ecaa81a987f0a")
        #expect(echo["pattern"] as? Bool == true)
        #expect(echo["chunked"] as? Bool == !withLength)
        #expect(echo["content_length"] as? String == (withLength ? String(size) : nil))
        #expect(echo["expect"] is NSNull)
        #expect(largestRequest <= 1 << 20)
    }

    @Test func dataBodiesAndHeadersAreSent() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let client = HTTPClient()
        let headers = [HTTPHeader("X-Custom", "42"), HTTPHeader("X-Empty", "")]
        let posted = try Self.json(
            try client.send(
                method: "POST", url: server.url("/echo"), headers: headers, body: .data(Data("hi\0there".utf8))
            ).body)
        #expect(posted["method"] as? String == "POST")
        #expect(posted["text"] as? String == "hi\0there")
        #expect(posted["content_type"] is NSNull)
        #expect(posted["expect"] is NSNull)
        #expect(posted["x_custom"] as? String == "42")
        #expect(posted["x_empty"] as? String == "")

        let typed = try Self.json(
            try client.send(
                method: "PUT", url: server.url("/echo"), headers: [HTTPHeader("Content-Type", "application/json")],
                body: .data(Data("{}".utf8))
            ).body)
        #expect(typed["method"] as? String == "PUT")
        #expect(typed["content_type"] as? String == "application/json")

        let empty = try Self.json(try client.send(method: "PUT", url: server.url("/echo"), body: .data(Data())).body)
        #expect(empty["length"] as? Int == 0)
        #expect(empty["content_length"] as? String == "0")

        let none = try Self.json(try client.send(method: "POST", url: server.url("/echo")).body)
        #expect(none["content_length"] as? String == "0")

        let deleted = try Self.json(try client.send(method: "DELETE", url: server.url("/echo")).body)
        #expect(deleted["method"] as? String == "DELETE")
    }

    @Test func errorThrownInOnBodyIsRethrownAndClientStaysUsable() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let client = HTTPClient()
        var chunks = 0
        #expect(throws: Stop.self) {
            try client.send(method: "GET", url: server.url("/big?size=\(64 << 20)")) { _ in
                chunks += 1
                if chunks == 3 { throw Stop() }
            }
        }
        #expect(chunks == 3)
        let after = try client.send(method: "GET", url: server.url("/hello"))
        #expect(after.body == Data("hello".utf8))
    }

    @Test func errorThrownInReadIsRethrown() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        var calls = 0
        #expect(throws: Stop.self) {
            try HTTPClient().send(
                method: "PUT", url: server.url("/echo"),
                body: .stream(length: nil) { wanted in
                    calls += 1
                    if calls == 3 { throw Stop() }
                    return Data(repeating: 1, count: wanted)
                })
        }
        #expect(calls == 3)
    }

    @Test func streamShorterThanItsLengthFails() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        var sent = false
        let error = try #require(throws: CurlError.self) {
            try HTTPClient(timeout: 10).send(
                method: "PUT", url: server.url("/echo"),
                body: .stream(length: 100) { _ in
                    defer { sent = true }
                    return sent ? Data() : Data(repeating: 1, count: 10)
                })
        }
        #expect(error.code == 26)
    }

    @Test func connectionRefusedThrowsCurlError() throws {
        let server = try CurlTestServer.start()
        let url = server.url("/hello")
        server.stop()
        let error = try #require(throws: CurlError.self) {
            try HTTPClient(connectTimeout: 2).send(method: "GET", url: url)
        }
        #expect(error.code == 7)
        #expect(error.isConnectFailure)
        #expect(error.message.contains("onnect"))
    }

    @Test func overallTimeoutThrowsCurlError() throws {
        let server = try CurlTestServer.start()
        defer { server.stop() }
        let started = Date()
        let error = try #require(throws: CurlError.self) {
            try HTTPClient(timeout: 0.5).send(method: "GET", url: server.url("/slow?seconds=5"))
        }
        #expect(error.code == 28)
        #expect(error.isTimeout)
        #expect(Date().timeIntervalSince(started) < 4)
    }

    @Test func invalidRequestsAreRefusedBeforeSending() throws {
        let client = HTTPClient()
        let badHeader = try #require(throws: CurlError.self) {
            try client.send(
                method: "GET", url: "http://127.0.0.1:9/", headers: [HTTPHeader("X-Bad", "a\r\nInjected: 1")])
        }
        #expect(badHeader.code == 43)
        let badScheme = try #require(throws: CurlError.self) {
            try client.send(method: "GET", url: "file:///etc/passwd")
        }
        #expect(badScheme.code == 1)
    }
}
