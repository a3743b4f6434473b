import Curl
import Foundation
import MicroHTTPD
import Synchronization
import Testing

/// HTTPS: the MicroHTTPD wrapper serving TLS with a throwaway CA, and the Curl wrapper verifying it.
@Suite(.serialized)
struct TLSTests {
    @Test func getAndStreamedPutOverTLS() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let received = Received()
        let server = try HTTPServer(options: pki.serverOptions()) { request in
            if request.method == "PUT" {
                return .streamBody(CollectingConsumer(into: received))
            }
            return .respond(Response(status: 200, body: .data(Data("hello \(request.path)".utf8))))
        }
        defer { server.stop() }
        let base = "https://127.0.0.1:\(server.port)"
        let client = HTTPClient(connectTimeout: 5, timeout: 30, caFile: pki.caFile)

        let get = try client.send(method: "GET", url: "\(base)/file")
        #expect(get.status == 200)
        #expect(get.body == Data("hello /file".utf8))

        let upload = Data((0..<(3 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        var offset = 0
        let put = try client.send(
            method: "PUT", url: "\(base)/upload",
            body: .stream(length: Int64(upload.count)) { wanted in
                let chunk = upload[offset..<min(upload.count, offset + wanted)]
                offset += chunk.count
                return Data(chunk)
            })
        #expect(put.status == 201)
        #expect(put.body == Data("\(upload.count)".utf8))
        #expect(received.data.withLock { $0 } == upload)

        // The same client (and connection) keeps working.
        #expect(try client.send(method: "GET", url: "\(base)/again").status == 200)
    }

    @Test func untrustedCertificateFailsWithCurlError() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try HTTPServer(options: pki.serverOptions()) { _ in .respond(Response(status: 200)) }
        defer { server.stop() }
        let url = "https://127.0.0.1:\(server.port)/"

        for client in [HTTPClient(caFile: pki.otherCAFile), HTTPClient()] {
            let error = #expect(throws: CurlError.self) { try client.send(method: "GET", url: url) }
            #expect(error?.code == 60)  // CURLE_PEER_FAILED_VERIFICATION
        }
        let missing = #expect(throws: CurlError.self) {
            try HTTPClient(caFile: pki.directory + "/missing.pem").send(method: "GET", url: url)
        }
        #expect(missing?.code == 77)  // CURLE_SSL_CACERT_BADFILE
        #expect(try HTTPClient(caFile: pki.caFile).send(method: "GET", url: url).status == 200)
    }

    @Test func certificateForAnotherAddressFailsHostVerification() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        var options = ServerOptions()
        options.tlsCertificatePEM = try String(contentsOfFile: pki.wrongHostCertificateFile, encoding: .utf8)
        options.tlsKeyPEM = try String(contentsOfFile: pki.wrongHostKeyFile, encoding: .utf8)
        let server = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        defer { server.stop() }
        let error = #expect(throws: CurlError.self) {
            try HTTPClient(caFile: pki.caFile).send(method: "GET", url: "https://127.0.0.1:\(server.port)/")
        }
        #expect(error?.code == 60)
    }

    @Test func plainHTTPToTheTLSPortFailsCleanly() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try HTTPServer(options: pki.serverOptions()) { _ in
            .respond(Response(status: 200, body: .data(Data("secure".utf8))))
        }
        defer { server.stop() }
        let plain = HTTPClient(connectTimeout: 2, timeout: 5)
        for _ in 0..<3 {
            #expect(throws: CurlError.self) { try plain.send(method: "GET", url: "http://127.0.0.1:\(server.port)/") }
        }
        let secure = try HTTPClient(caFile: pki.caFile).send(method: "GET", url: "https://127.0.0.1:\(server.port)/")
        #expect(secure.body == Data("secure".utf8))
    }

    @Test func certificateAndKeyComeTogether() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        var options = try pki.serverOptions()
        options.tlsKeyPEM = nil
        #expect(throws: HTTPServerError.self) {
            _ = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        }
        options = try pki.serverOptions()
        options.tlsCertificatePEM = nil
        #expect(throws: HTTPServerError.self) {
            _ = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
        }
    }

    @Test func badCertificateOrKeyThrows() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let good = try pki.serverOptions()
        var cases: [(String, ServerOptions)] = []
        var garbage = good
        garbage.tlsCertificatePEM = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
        cases.append(("garbage certificate", garbage))
        var empty = good
        empty.tlsKeyPEM = ""
        cases.append(("empty key", empty))
        var mismatched = good
        mismatched.tlsKeyPEM = try String(contentsOfFile: pki.wrongHostKeyFile, encoding: .utf8)
        cases.append(("key of another certificate", mismatched))
        for (name, options) in cases {
            let error = #expect(throws: HTTPServerError.self, "\(name)") {
                _ = try HTTPServer(options: options) { _ in .respond(Response(status: 200)) }
            }
            // libmicrohttpd's own explanation is passed on ("GnuTLS failed to setup x509 certificate/key: ...").
            #expect(error?.message.contains("x509 certificate/key") == true, "\(name): \(error?.message ?? "")")
        }
        // The good pair still starts.
        let server = try HTTPServer(options: good) { _ in .respond(Response(status: 204)) }
        server.stop()
    }
}

// MARK: - Fixtures

/// A throwaway CA, a server certificate for IP 127.0.0.1 signed by it, a certificate for 127.0.0.2 signed by it,
/// and an unrelated second CA; made with the openssl CLI in a temp directory.
private struct TestPKI {
    let directory: String
    var caFile: String { directory + "/ca.pem" }
    var otherCAFile: String { directory + "/other-ca.pem" }
    var certificateFile: String { directory + "/server.pem" }
    var keyFile: String { directory + "/server.key" }
    var wrongHostCertificateFile: String { directory + "/wrong.pem" }
    var wrongHostKeyFile: String { directory + "/wrong.key" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "other-ca"] {
            try openssl(
                ["req", "-x509"] + curve + [
                    "-keyout", "\(name).key", "-out", "\(name).pem", "-days", "2", "-subj", "/CN=dfs test \(name)",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ])
        }
        for (name, ip) in [("server", "127.0.0.1"), ("wrong", "127.0.0.2")] {
            try openssl(
                ["req", "-new"] + curve + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(ip)"])
            let extensions = """
                basicConstraints=CA:FALSE
                keyUsage=critical,digitalSignature
                extendedKeyUsage=serverAuth
                subjectAltName=IP:\(ip)

                """
            try Data(extensions.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(name).ext"))
            try openssl([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "\(name).pem", "-days", "2", "-extfile", "\(name).ext",
            ])
        }
    }

    /// Options for a TLS server on 127.0.0.1:0 with the 127.0.0.1 certificate.
    func serverOptions() throws -> ServerOptions {
        var options = ServerOptions()
        options.threads = 2
        options.tlsCertificatePEM = try String(contentsOfFile: certificateFile, encoding: .utf8)
        options.tlsKeyPEM = try String(contentsOfFile: keyFile, encoding: .utf8)
        return options
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PKIError(message: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: "
                + String(decoding: message, as: UTF8.self))
        }
    }
}

private struct PKIError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The last body a ``CollectingConsumer`` finished, shared between the server's threads and the test.
private final class Received: Sendable {
    let data = Mutex(Data())
}

/// Collects a streamed body in memory; answers 201 with the byte count.
private final class CollectingConsumer: BodyConsumer {
    private let target: Received
    private var body = Data()

    init(into target: Received) {
        self.target = target
    }

    func consume(_ chunk: Data) -> Response? {
        body.append(chunk)
        return nil
    }

    func finish() -> Response {
        let count = body.count
        target.data.withLock { [body] in $0 = body }
        return Response(status: 201, body: .data(Data("\(count)".utf8)))
    }

    func cancel() {}
}
