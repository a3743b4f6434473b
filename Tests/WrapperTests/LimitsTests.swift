import Curl
import Foundation
import MicroHTTPD
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Connection limits and timeouts of the MicroHTTPD wrapper, probed with raw TCP sockets on 127.0.0.1.
@Suite(.serialized)
struct LimitsTests {
    /// Beyond `connectionLimit` a connection is not served (it waits in the listen backlog) until a slot frees.
    @Test func connectionLimitHoldsExtraConnectionsUntilASlotFrees() throws {
        var options = ServerOptions()
        options.threads = 1
        options.connectionLimit = 2
        let server = try HTTPServer(options: options) { request in
            .respond(Response(status: 200, body: .data(Data("ok \(request.path)".utf8))))
        }
        defer { server.stop() }

        // Two keep-alive connections that have been answered once: both slots are taken.
        let first = try RawConnection(port: server.port)
        let second = try RawConnection(port: server.port)
        for connection in [first, second] {
            try connection.send("GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(connection.readResponse(within: 5)?.hasPrefix("HTTP/1.1 200") == true)
        }

        // The third one connects (the kernel completes the handshake) but gets no answer while the others stay.
        let extra = try RawConnection(port: server.port)
        try extra.send("GET /extra HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(extra.readResponse(within: 1) == nil)
        #expect(try shortGet(server.port, "/meanwhile") == nil)

        // Once a slot frees, the waiting connection is accepted and served, and so are new ones.
        first.close()
        let late = extra.readResponse(within: 5)
        #expect(late?.hasPrefix("HTTP/1.1 200") == true)
        #expect(late?.hasSuffix("ok /extra") == true)
        second.close()
        #expect(try shortGet(server.port, "/after")?.status == 200)
    }

    /// Beyond `perIPConnectionLimit` a connection is closed at once, without an answer.
    @Test func perIPLimitClosesExtraConnections() throws {
        var options = ServerOptions()
        options.threads = 2
        options.perIPConnectionLimit = 2
        let server = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        defer { server.stop() }

        let held = try (0..<2).map { _ in try RawConnection(port: server.port) }
        for connection in held {
            try connection.send("GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(connection.readResponse(within: 5)?.hasPrefix("HTTP/1.1 200") == true)
        }
        let extra = try RawConnection(port: server.port)
        try? extra.send("GET /extra HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let start = Date()
        #expect(extra.waitForClose(within: 3) == .closed)
        #expect(Date().timeIntervalSince(start) < 1)

        held[0].close()
        // MHD frees the slot when it notices the close: retry a few times, bounded.
        var status: Int?
        for _ in 0..<20 where status == nil {
            status = (try? shortGet(server.port, "/after"))??.status
            if status == nil { usleep(100_000) }
        }
        #expect(status == 200)
    }

    /// A client that sends half a request and stops is disconnected after `connectionTimeoutSeconds`,
    /// while normal requests on the same (single) thread are served.
    @Test func idleHalfRequestIsDisconnected() throws {
        var options = ServerOptions()
        options.threads = 1
        options.connectionTimeoutSeconds = 1
        let server = try HTTPServer(options: options) { _ in
            .respond(Response(status: 200, body: .data(Data("ok".utf8))))
        }
        defer { server.stop() }

        let headers = try RawConnection(port: server.port)
        try headers.send("GET /slow HTTP/1.1\r\nHost: 127.")
        let body = try RawConnection(port: server.port)
        try body.send("PUT /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nonly a few bytes")
        let start = Date()

        let client = HTTPClient(connectTimeout: 2, timeout: 5)
        for index in 0..<5 {
            #expect(try client.send(method: "GET", url: "http://127.0.0.1:\(server.port)/n\(index)").status == 200)
        }
        #expect(headers.waitForClose(within: 5) == .closed)
        #expect(body.waitForClose(within: 5) == .closed)
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.5)
        #expect(elapsed < 3)
        #expect(try client.send(method: "GET", url: "http://127.0.0.1:\(server.port)/after").status == 200)
    }

    /// A client trickling its headers one byte at a time (never idle for the timeout) is disconnected too:
    /// the headers must all arrive within `connectionTimeoutSeconds`.
    @Test func tricklingHeadersAreDisconnected() throws {
        var options = ServerOptions()
        options.threads = 1
        options.connectionTimeoutSeconds = 1
        let server = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        defer { server.stop() }

        let slow = try RawConnection(port: server.port)
        let padding = String(repeating: "a", count: 200)
        let request = Array("GET /trickle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: \(padding)\r\n\r\n")
        let start = Date()
        var outcome = RawConnection.Outcome.timedOut
        // One byte every 300 ms: each gap is well under the 1 s idle timeout. Bounded: at most the whole request.
        for character in request {
            guard (try? slow.send(String(character))) != nil else {
                outcome = .closed
                break
            }
            outcome = slow.waitForClose(within: 0.3)
            if outcome == .closed || Date().timeIntervalSince(start) > 8 { break }
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .closed)
        #expect(elapsed < 6)
    }
}

// MARK: - Fixtures

/// One GET over a fresh connection with a 1 s budget; nil if no complete answer arrived.
private func shortGet(_ port: UInt16, _ path: String) throws -> (status: Int, body: Data)? {
    let client = HTTPClient(connectTimeout: 1, timeout: 1)
    do {
        let response = try client.send(method: "GET", url: "http://127.0.0.1:\(port)\(path)")
        return (response.status, response.body)
    } catch let error as CurlError where error.isTimeout {
        return nil
    }
}

/// A blocking TCP connection to 127.0.0.1 with bounded reads.
private final class RawConnection {
    enum Outcome: Equatable {
        /// The peer closed (EOF or reset).
        case closed
        /// Still open when the time ran out.
        case timedOut
    }

    private var descriptor: Int32

    init(port: UInt16) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    deinit { close() }

    func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            sent += count
        }
    }

    /// Reads until `within` seconds pass or the peer closes; nil if nothing complete came.
    /// A response is complete once its headers and `Content-Length` bytes of body are in.
    func readResponse(within seconds: Double) -> String? {
        var data = Data()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let text = String(data: data, encoding: .utf8), let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if text.utf8.count - text[..<end.upperBound].utf8.count >= length { return text }
            }
            guard let chunk = read(until: deadline), !chunk.isEmpty else { return nil }
            data.append(chunk)
        }
        return nil
    }

    /// Waits up to `within` seconds for the peer to close, discarding whatever it sends.
    func waitForClose(within seconds: Double) -> Outcome {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard let chunk = read(until: deadline) else { return .timedOut }
            if chunk.isEmpty { return .closed }
        }
        return .timedOut
    }

    /// One read: nil on timeout, empty on EOF or error, else the bytes.
    private func read(until deadline: Date) -> Data? {
        let remaining = max(0, deadline.timeIntervalSinceNow)
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32((remaining * 1000).rounded(.up)))
        guard ready > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        return count > 0 ? Data(buffer[..<count]) : Data()
    }
}
