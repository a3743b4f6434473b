import DFSClient
import Foundation
import Testing

/// A whole cluster over HTTPS: servers with `tls_cert`/`tls_key`/`tls_ca`, a client verifying with its CA file.
@Suite(.serialized) struct TLSClusterTests {
    /// Makes a throwaway CA and a certificate for 127.0.0.1 with the openssl command line.
    static func makeCertificates(in directory: String) throws {
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
              -days 2 -subj /CN=dfs-test-ca 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
              -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
              -extfile ext.cnf 2>/dev/null
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other.key \
              -out other-ca.pem -days 2 -subj /CN=someone-else 2>/dev/null
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FixtureError("openssl failed") }
    }

    @Test func clusterServesOverTLSAndClientsVerifyTheServers() throws {
        let certificates = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        try Self.makeCertificates(in: certificates)
        let tls = """
            tls_cert = \(certificates)/server.pem
            tls_key = \(certificates)/server.key
            tls_ca = \(certificates)/ca.pem
            """
        let cluster = try TestCluster(fileServers: 2, directoryConf: tls, fileServerConf: tls, clientCAFile: certificates + "/ca.pem")
        defer { cluster.shutdown() }
        #expect(cluster.directory.url.hasPrefix("https://127.0.0.1:"))

        let dfs = cluster.client()
        let servers = try dfs.fileServers()
        #expect(servers.count == 2 && servers.allSatisfy { $0.url.hasPrefix("https://") && $0.state == "live" })
        let payload = Data((0..<300_000).map { UInt8($0 % 199) })
        try dfs.write("/secure.bin", data: payload)
        let reader = cluster.client(home: cluster.tempPath("reader"))
        #expect(try reader.read("/secure.bin") == payload)

        // A client that does not trust the cluster's CA refuses to talk to it.
        var untrusting = ClientSettings(directory: cluster.directory.url, home: cluster.tempPath("untrusting"), environment: [:])
        untrusting.caFile = certificates + "/other-ca.pem"
        let refused = #expect(throws: DFSClientError.self) { try DFSClient(settings: untrusting).list("/") }
        #expect(refused?.code == "unreachable")
    }
}
