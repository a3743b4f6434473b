import Foundation
import MicroHTTPD
import Synchronization
import Testing

/// The MicroHTTPD wrapper against the real curl CLI on 127.0.0.1, one server per test on an ephemeral port.
@Suite(.serialized)
struct MicroHTTPDTests {
    @Test func getSmallJSON() throws {
        try withServer { _ in
            .respond(
                Response(
                    status: 200, headers: [HTTPHeader("Content-Type", "application/json")],
                    body: .data(Data(#"{"ok":true}"#.utf8))))
        } body: { base in
            let result = try curl(["-D", "-", "\(base)/status"])
            #expect(result.exitCode == 0)
            #expect(result.output.hasPrefix("HTTP/1.1 200"))
            #expect(result.output.lowercased().contains("content-type: application/json"))
            #expect(result.output.hasSuffix(#"{"ok":true}"#))
        }
    }

    @Test func keepAliveReusesTheConnection() throws {
        try withServer { _ in
            .respond(Response(status: 200, body: .data(Data("hi".utf8))))
        } body: { base in
            let gets = try curl([
                "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n",
                "\(base)/a", "\(base)/b",
            ])
            #expect(gets.output == "1\n0\n")
            // A body sent to a `.respond` route is drained, so the connection stays usable.
            let upload = try TempFile(size: 1 << 20)
            let mixed = try curl([
                "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", "-X", "PUT",
                "--data-binary", "@\(upload.path)", "\(base)/ignored",
                "--next", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", "\(base)/b",
            ])
            #expect(mixed.output == "200 1\n200 0\n")
        }
    }

    @Test func collectBodyWithLimit() throws {
        let tooLarge = Response(status: 413, body: .data(Data("too large".utf8)))
        try withServer { request in
            .collectBody(limit: 1000, tooLarge: { tooLarge }) { body in
                Response(status: 200, body: .data(Data("\(request.method) \(body.count) ".utf8) + body))
            }
        } body: { base in
            let small = try TempFile(size: 500)
            let big = try TempFile(size: 2000)
            let ok = try fetch(["--data-binary", "@\(small.path)", "\(base)/c"])
            #expect(ok.status == 200)
            #expect(ok.body == Data("POST 500 ".utf8) + small.contents)

            let announced = try fetch(["--data-binary", "@\(big.path)", "\(base)/c"])
            #expect(announced.status == 413)
            #expect(announced.body == Data("too large".utf8))

            // Without `Expect: 100-continue` the client sends the body anyway; the 413 must still arrive.
            let huge = try TempFile(size: 8 << 20)
            for file in [big, huge] {
                let unasked = try fetch(["-H", "Expect:", "--data-binary", "@\(file.path)", "\(base)/c"])
                #expect(unasked.status == 413)
            }

            let chunked = try fetch(["-H", "Transfer-Encoding: chunked", "--data-binary", "@\(big.path)", "\(base)/c"])
            #expect(chunked.status == 413)

            let chunkedSmall = try fetch([
                "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(small.path)",
                "\(base)/c",
            ])
            #expect(chunkedSmall.status == 200)
            #expect(chunkedSmall.body == Data("POST 500 ".utf8) + small.contents)

            let empty = try fetch(["-d", "", "\(base)/c"])
            #expect(empty.status == 200)
            #expect(empty.body == Data("POST 0 ".utf8))

            let none = try fetch(["\(base)/c"])
            #expect(none.status == 200)
            #expect(none.body == Data("GET 0 ".utf8))
        }
    }

    @Test func streamBodyOf64MiBToAFile() throws {
        let upload = try TempFile(size: 64 << 20)
        let received = try TempFile(size: 0)
        let events = Locked<[String]>([])
        try withServer { _ in
            .streamBody(FileConsumer(path: received.path, events: events))
        } body: { base in
            let result = try fetch(["-T", upload.path, "\(base)/upload"])
            #expect(result.status == 201)
            #expect(result.body == Data("\(64 << 20)".utf8))
        }
        #expect(events.value == ["finish"])
        #expect(FileManager.default.contentsEqual(atPath: upload.path, andPath: received.path))
    }

    @Test func chunkedUploadIsStreamed() throws {
        let upload = try TempFile(size: 3 << 20 + 12345)
        let received = try TempFile(size: 0)
        let events = Locked<[String]>([])
        try withServer { _ in
            .streamBody(FileConsumer(path: received.path, events: events))
        } body: { base in
            let result = try fetch(["-H", "Transfer-Encoding: chunked", "-T", upload.path, "\(base)/upload"])
            #expect(result.status == 201)
        }
        #expect(events.value == ["finish"])
        #expect(FileManager.default.contentsEqual(atPath: upload.path, andPath: received.path))
    }

    @Test func consumerCanRejectMidStream() throws {
        let upload = try TempFile(size: 8 << 20)
        let events = Locked<[String]>([])
        try withServer { _ in
            .streamBody(RejectingConsumer(events: events))
        } body: { base in
            let result = try fetch(["-T", upload.path, "\(base)/upload"])
            #expect(result.status == 507)
            // The server must still answer afterwards.
            #expect(try fetch(["\(base)/again"]).status == 507)
        }
        #expect(events.value.allSatisfy { $0 == "consume" })
    }

    @Test func fileDescriptorResponseWithOffsetAndLength() throws {
        let file = try TempFile(size: 4096)
        try withServer { _ in
            let descriptor = open(file.path, O_RDONLY)
            return .respond(Response(status: 206, body: .file(descriptor: descriptor, offset: 1000, length: 2000)))
        } body: { base in
            for _ in 0..<3 {
                let result = try fetch(["\(base)/range"])
                #expect(result.status == 206)
                #expect(result.body == file.contents[1000..<3000])
            }
        }
    }

    @Test func headSendsHeadersOnly() throws {
        let methods = Locked<[String]>([])
        try withServer { request in
            methods.withLock { $0.append(request.method) }
            return .respond(
                Response(
                    status: 200, headers: [HTTPHeader("ETag", "\"v1\"")],
                    body: .data(Data("hello world".utf8))))
        } body: { base in
            let result = try curl(["-I", "\(base)/f"])
            let head = result.output.lowercased()
            #expect(head.hasPrefix("http/1.1 200"))
            #expect(head.contains("content-length: 11"))
            #expect(head.contains("etag: \"v1\""))
            #expect(!head.contains("hello world"))
        }
        #expect(methods.value == ["HEAD"])
    }

    @Test func suspendAndResumeFromAnotherThread() throws {
        try withServer { request in
            .suspend { suspension in
                let delayed = request.path == "/late"
                DispatchQueue.global().asyncAfter(deadline: .now() + (delayed ? 0.2 : 0)) {
                    suspension.resume(with: Response(status: 200, body: .data(Data("resumed \(request.path)".utf8))))
                    suspension.resume(with: Response(status: 500))  // ignored
                }
            }
        } body: { base in
            let start = Date()
            let late = try fetch(["\(base)/late"])
            #expect(late.status == 200)
            #expect(late.body == Data("resumed /late".utf8))
            #expect(Date().timeIntervalSince(start) >= 0.15)
            let now = try fetch(["\(base)/now"])
            #expect(now.body == Data("resumed /now".utf8))
        }
    }

    @Test func resumeInsideParkAnswers() throws {
        try withServer { _ in
            .suspend { suspension in suspension.resume(with: Response(status: 202)) }
        } body: { base in
            let result = try fetch(["-d", "some body", "\(base)/sync"])
            #expect(result.status == 202)
        }
    }

    @Test func stopAnswersParkedConnectionsWith503() throws {
        let parked = DispatchSemaphore(value: 0)
        let server = try HTTPServer(options: ServerOptions()) { _ in
            .suspend { _ in parked.signal() }
        }
        defer { server.stop() }
        let client = try CurlProcess(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(server.port)/wait"])
        #expect(parked.wait(timeout: .now() + 10) == .success)
        server.stop()
        server.stop()  // idempotent
        #expect(client.finish().output == "503")
    }

    @Test func queryAndHeaderParsing() throws {
        let seen = Locked<Request?>(nil)
        try withServer { request in
            seen.withLock { $0 = request }
            return .respond(Response(status: 204))
        } body: { base in
            let url = "\(base)/a%20b/c?x=1&y=two%20words&x=3&flag"
            let result = try fetch(["-H", "X-Custom: Hello", "-H", "X-Multi: a", "-H", "X-Multi: b", url])
            #expect(result.status == 204)
        }
        let request = try #require(seen.value)
        #expect(request.method == "GET")
        #expect(request.path == "/a b/c")
        #expect(request.query == ["x": "3", "y": "two words", "flag": ""])
        #expect(request.header("x-custom") == "Hello")
        #expect(request.header("X-CUSTOM") == "Hello")
        #expect(request.headers["x-custom"] == "Hello")
        #expect(request.headers["x-multi"] == "a, b")
        #expect(request.header("missing") == nil)
    }

    @Test func clientAbortDuringUploadCancels() throws {
        let upload = try TempFile(size: 64 << 20)
        let received = try TempFile(size: 0)
        let events = Locked<[String]>([])
        let cancelled = DispatchSemaphore(value: 0)
        try withServer { _ in
            .streamBody(FileConsumer(path: received.path, events: events, onCancel: { cancelled.signal() }))
        } body: { base in
            let result = try curl(["--limit-rate", "4M", "--max-time", "1", "-T", upload.path, "\(base)/upload"])
            #expect(result.exitCode == 28)  // curl's timeout
            #expect(cancelled.wait(timeout: .now() + 10) == .success)
        }
        #expect(events.value == ["cancel"])
        #expect(!FileManager.default.fileExists(atPath: received.path))
    }

    @Test func invalidHostThrows() {
        var options = ServerOptions()
        options.host = "not-an-address"
        #expect(throws: HTTPServerError.self) {
            _ = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        }
    }

    @Test func bindsLocalhostAndIPv6Loopback() throws {
        var options = ServerOptions()
        options.host = "localhost"
        let v4 = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        defer { v4.stop() }
        #expect(try fetch(["http://127.0.0.1:\(v4.port)/"]).status == 200)
        options.host = "::1"
        // Some containers have no IPv6 loopback; binding is then the only thing that can fail.
        guard let v6 = try? HTTPServer(options: options, handler: { _ in .respond(Response(status: 200)) }) else {
            return
        }
        defer { v6.stop() }
        #expect(try fetch(["-g", "http://[::1]:\(v6.port)/"]).status == 200)
    }

    @Test func outOfRangeStatusBecomes500() throws {
        try withServer { _ in
            .respond(Response(status: 42, headers: [HTTPHeader("Bad", "a\r\nb")]))
        } body: { base in
            let result = try fetch(["\(base)/x"])
            #expect(result.status == 500)
        }
    }
}

// MARK: - Fixtures

/// Starts a server on 127.0.0.1:0, runs `body` with its base URL, and stops it (also on failure).
private func withServer(
    _ handler: @escaping RequestHandler, body: (String) throws -> Void
) throws {
    var options = ServerOptions()
    options.threads = 2
    let server = try HTTPServer(options: options, handler: handler)
    defer { server.stop() }
    #expect(server.port != 0)
    try body("http://127.0.0.1:\(server.port)")
}

/// A value shared between the test and the server's threads.
private final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// A temporary file of deterministic pseudo-random bytes, removed on deinit.
private final class TempFile: Sendable {
    let path: String
    init(size: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mhd-test-\(UUID().uuidString)").path
        var words = [UInt64](repeating: 0, count: (size + 7) / 8)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(size)
        for index in words.indices {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            words[index] = state
        }
        let data = words.withUnsafeBytes { Data($0.prefix(size)) }
        try data.write(to: URL(fileURLWithPath: path))
    }
    var contents: Data { FileManager.default.contents(atPath: path) ?? Data() }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Writes the body to a file; answers 201 with the byte count.
private final class FileConsumer: BodyConsumer {
    private let path: String
    private let handle: FileHandle?
    private let events: Locked<[String]>
    private let onCancel: @Sendable () -> Void
    private var count = 0

    init(path: String, events: Locked<[String]>, onCancel: @escaping @Sendable () -> Void = {}) {
        self.path = path
        self.events = events
        self.onCancel = onCancel
        handle = FileHandle(forWritingAtPath: path)
    }

    func consume(_ chunk: Data) -> Response? {
        do {
            try handle?.write(contentsOf: chunk)
            count += chunk.count
            return nil
        } catch {
            return Response(status: 500)
        }
    }

    func finish() -> Response {
        try? handle?.close()
        events.withLock { $0.append("finish") }
        return Response(status: 201, body: .data(Data("\(count)".utf8)))
    }

    func cancel() {
        try? handle?.close()
        try? FileManager.default.removeItem(atPath: path)
        events.withLock { $0.append("cancel") }
        onCancel()
    }
}

/// Refuses every body at the first chunk (and empty bodies at finish).
private final class RejectingConsumer: BodyConsumer {
    private let events: Locked<[String]>
    init(events: Locked<[String]>) { self.events = events }
    func consume(_ chunk: Data) -> Response? {
        events.withLock { $0.append("consume") }
        return Response(status: 507)
    }
    func finish() -> Response { Response(status: 507) }
    func cancel() { events.withLock { $0.append("cancel") } }
}

/// A curl process running in the background; every call has a time limit.
private final class CurlProcess {
    private let process = Process()
    private let pipe = Pipe()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "60"] + arguments
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func finish() -> (exitCode: Int32, output: String) {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Runs curl to completion and returns its exit code and stdout.
private func curl(_ arguments: [String]) throws -> (exitCode: Int32, output: String) {
    try CurlProcess(arguments).finish()
}

/// Runs curl and returns the status and body of the (last) response.
private func fetch(_ arguments: [String]) throws -> (status: Int, body: Data) {
    let bodyFile = FileManager.default.temporaryDirectory.appendingPathComponent("mhd-body-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: bodyFile) }
    let result = try curl(["-o", bodyFile.path, "-w", "%{http_code}"] + arguments)
    let body = FileManager.default.contents(atPath: bodyFile.path) ?? Data()
    return (Int(result.output) ?? -1, body)
}
