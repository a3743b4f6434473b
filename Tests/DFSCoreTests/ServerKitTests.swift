import Crypto
import DFSProtocol
import DirectoryServer
import FileServer
import Foundation
import ServerKit
import Synchronization
import Testing

@Suite struct ConfigFileTests {
    let keys: Set<String> = ["listen", "data_dir", "threads"]

    @Test func requestBodiesTakeIntegersOnly() throws {
        for text in [#"{"path":"/x","size_hint":0.0}"#, #"{"path":"/x","size_hint":1e2}"#, #"{"n":[1,2.5]}"#, "{\"n\":-3E1}"] {
            #expect(Route.hasNonIntegerNumber(Data(text.utf8)), "\(text)")
            #expect(throws: DFSError.self) { try Route.decodeBody(WriteRequest.self, Data(text.utf8)) }
        }
        for text in [
            #"{"path":"/a.b e1.5 \" 2.0","size_hint":10,"lock":true}"#, #"{"path":"/x","lock":false,"n":-0}"#,
            #"{"path":"\\","size_hint":7}"#, #"{"path":"1e5"}"#,
        ] {
            #expect(!Route.hasNonIntegerNumber(Data(text.utf8)), "\(text)")
            #expect(throws: Never.self) { try Route.decodeBody(WriteRequest.self, Data(text.utf8)) }
        }
    }

    @Test func parsesValuesCommentsAndDefaults() throws {
        let text = """
            # a comment
            listen = 127.0.0.1:6000   # trailing comment

            threads=8
            """
        let file = try ConfigFile(path: "x.conf", text: text, allowedKeys: keys)
        #expect(try file.listenAddress("listen", default: "127.0.0.1:5000") == ListenAddress(host: "127.0.0.1", port: 6000))
        #expect(try file.integer("threads", default: 4, range: 1...64) == 8)
        #expect(try file.string("data_dir", default: "var/d") == "var/d")
    }

    @Test func unknownKeyNamesFileAndLine() {
        do {
            _ = try ConfigFile(path: "etc/d.conf", text: "listen = 127.0.0.1:1\n\nbogus = 1\n", allowedKeys: keys)
            Issue.record("an unknown key was accepted")
        } catch {
            #expect(error.description.hasPrefix("etc/d.conf:3: unknown key 'bogus'"))
        }
    }

    @Test func badValuesNameTheLine() throws {
        let file = try ConfigFile(path: "f.conf", text: "threads = many\nlisten = nowhere\n", allowedKeys: keys)
        #expect(throws: ConfigError.self) { try file.integer("threads", default: 4, range: 1...64) }
        do {
            _ = try file.integer("threads", default: 4, range: 1...64)
        } catch {
            #expect(error.description.hasPrefix("f.conf:1:"))
        }
        do {
            _ = try file.listenAddress("listen", default: "127.0.0.1:5000")
            Issue.record("a bad listen address was accepted")
        } catch {
            #expect(error.description.hasPrefix("f.conf:2:"))
        }
    }

    @Test func rejectsLinesWithoutEqualsAndRepeats() {
        #expect(throws: ConfigError.self) { try ConfigFile(path: "f", text: "listen\n", allowedKeys: keys) }
        #expect(throws: ConfigError.self) {
            try ConfigFile(path: "f", text: "threads = 1\nthreads = 2\n", allowedKeys: keys)
        }
    }

    @Test func listenAddressForms() {
        #expect(ListenAddress("[::1]:5000") == ListenAddress(host: "::1", port: 5000))
        #expect(ListenAddress("localhost:0")?.port == 0)
        #expect(ListenAddress("127.0.0.1") == nil)
        #expect(ListenAddress("127.0.0.1:70000") == nil)
    }
}

@Suite struct TicketTests {
    let signer = ClusterSecret("s3cret").tickets
    let future: Int64 = 2_000_000_000_000

    @Test func signsAndVerifiesPerOperationAndBlob() {
        let ticket = signer.sign(.put, fileId: 18, version: 3, expiresAtMs: future)
        #expect(signer.verify(ticket, .put, fileId: 18, version: 3, nowMs: 0))
        #expect(!signer.verify(ticket, .delete, fileId: 18, version: 3, nowMs: 0))
        #expect(!signer.verify(ticket, .put, fileId: 18, version: 4, nowMs: 0))
        #expect(!signer.verify(ticket, .put, fileId: 19, version: 3, nowMs: 0))
        #expect(!signer.verify("zz", .put, fileId: 18, version: 3, nowMs: 0))
        #expect(!ClusterSecret("other").tickets.verify(ticket, .put, fileId: 18, version: 3, nowMs: 0))
    }

    @Test func expiresAndCannotBeExtended() {
        let ticket = signer.sign(.put, fileId: 1, version: 1, expiresAtMs: 1000)
        #expect(signer.verify(ticket, .put, fileId: 1, version: 1, nowMs: 1000))
        #expect(!signer.verify(ticket, .put, fileId: 1, version: 1, nowMs: 1001))
        let stretched = "9999999999999" + ticket.drop { $0 != "." }
        #expect(!signer.verify(stretched, .put, fileId: 1, version: 1, nowMs: 1001))
    }

    @Test func receiptsBindDetail() {
        let receipt = signer.sign(.stored, fileId: 1, version: 2, detail: "3:5:abc", expiresAtMs: future)
        #expect(signer.verify(receipt, .stored, fileId: 1, version: 2, detail: "3:5:abc", nowMs: 0))
        #expect(!signer.verify(receipt, .stored, fileId: 1, version: 2, detail: "3:6:abc", nowMs: 0))
    }

    @Test func clientTokensProveTheirIdOnly() {
        let tokens = ClusterSecret("s3cret").clientTokens
        let token = tokens.token(for: 42)
        #expect(tokens.clientId(from: token) == 42)
        #expect(tokens.clientId(from: "43" + token.drop { $0 != "." }) == nil)
        #expect(ClusterSecret("other").clientTokens.clientId(from: token) == nil)
        #expect(tokens.clientId(from: "garbage") == nil)
        // Verified once, remembered: a token one digit off is still refused, and the real one still accepted.
        let forged = String(token.dropLast()) + (token.last == "0" ? "1" : "0")
        #expect(tokens.clientId(from: forged) == nil)
        #expect(tokens.clientId(from: token) == 42)
    }

    /// Tokens and tickets are plain HMAC-SHA256 under keys derived from the secret, as before the keyed state was
    /// kept: clients keep their tokens across server upgrades.
    @Test func codesAreStandardHMACUnderTheDerivedKeys() {
        func hmac(_ key: Data, _ message: String) -> Data {
            Data(HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: SymmetricKey(data: key)))
        }
        let secret = Data("s3cret".utf8)
        let tokenKey = hmac(secret, "dfs-client-tokens")
        #expect(ClusterSecret("s3cret").clientTokens.token(for: 42) == "42." + hmac(tokenKey, "client:42").hexString)
        let ticketKey = hmac(secret, "dfs-tickets")
        #expect(
            signer.sign(.put, fileId: 18, version: 3, detail: "fence=7", expiresAtMs: future)
                == "\(future)." + hmac(ticketKey, "put:18:3:fence=7:\(future)").hexString)
    }

    @Test func clusterSecretComparison() {
        let secret = ClusterSecret("abc")
        #expect(secret.matches("abc") && !secret.matches("abd") && !secret.matches(nil) && !secret.matches("ab"))
        #expect(ClusterSecret(ClusterSecret.placeholder).isPlaceholder)
    }
}

@Suite struct ByteRangeTests {
    @Test func parsesForms() {
        #expect(ByteRange.parse("bytes=0-9", size: 100) == .part(start: 0, end: 9))
        #expect(ByteRange.parse("bytes=90-", size: 100) == .part(start: 90, end: 99))
        #expect(ByteRange.parse("bytes=-10", size: 100) == .part(start: 90, end: 99))
        #expect(ByteRange.parse("bytes=50-500", size: 100) == .part(start: 50, end: 99))
        #expect(ByteRange.parse("bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=0-1,5-6", size: 100) == .whole)
        #expect(ByteRange.parse("items=0-1", size: 100) == .whole)
        #expect(ByteRange.parse("bytes=5-2", size: 100) == .whole)
    }
}

@Suite struct WireTests {
    @Test func errorShapeIsStable() throws {
        let data = try WireJSON.encode(ErrorBody(code: .notFound, message: "no such file"))
        #expect(String(decoding: data, as: UTF8.self) == #"{"error":{"code":"not_found","message":"no such file"}}"#)
    }

    @Test func snakeCaseKeys() throws {
        let data = try WireJSON.encode(RegisterClientResponse(clientId: 7, token: "7.ab"))
        #expect(String(decoding: data, as: UTF8.self) == #"{"client_id":7,"token":"7.ab"}"#)
        let decoded = try WireJSON.decode(
            RegisterFileServerRequest.self, from: Data(#"{"url":"http://h:1","capacity_bytes":5}"#.utf8))
        #expect(decoded.capacityBytes == 5 && decoded.fileServerId == nil)
    }
}

/// The shipped configuration files list every key the servers know, and parse into their config types.
@Suite struct ShippedConfigTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    func keys(in path: String) throws -> Set<String> {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return Set(
            text.split(separator: "\n").compactMap { line -> String? in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { return nil }
                return trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            })
    }

    @Test func directoryConf() throws {
        let path = Self.root + "/etc/directory.conf"
        #expect(try keys(in: path) == DirectoryConfig.keys)
        let config = try DirectoryConfig(try ConfigFile(contentsOf: path, allowedKeys: DirectoryConfig.keys))
        #expect(config.listen.description == "127.0.0.1:5000")
    }

    @Test(arguments: [1, 2, 3])
    func fileServerConf(index: Int) throws {
        let path = Self.root + "/etc/fileserver-\(index).conf"
        #expect(try keys(in: path) == FileServerConfig.keys)
        let config = try FileServerConfig(try ConfigFile(contentsOf: path, allowedKeys: FileServerConfig.keys))
        #expect(config.listen.port == UInt16(5000 + index))
        #expect(config.directory == "http://127.0.0.1:5000" && config.publicURL.isEmpty)
        #expect(config.blobSync == .syncfs && config.inlineFlushMs == 20)
    }

    @Test func blobSyncTakesItsTwoValuesAndNamesThemOtherwise() throws {
        func parse(_ value: String) throws -> FileServerConfig {
            try FileServerConfig(
                try ConfigFile(path: "t.conf", text: "blob_sync = \(value)\n", allowedKeys: FileServerConfig.keys))
        }
        #expect(try parse("fsync").blobSync == .fsync)
        #expect(try parse("syncfs").blobSync == .syncfs)
        #expect {
            try parse("sometimes")
        } throws: { error in
            "\(error)".contains("t.conf:1: 'blob_sync' must be syncfs or fsync, got 'sometimes'")
        }
    }

    @Test func inlineFlushMsIsMillisecondsUpToTenSeconds() throws {
        func parse(_ value: String) throws -> FileServerConfig {
            try FileServerConfig(
                try ConfigFile(path: "t.conf", text: "inline_flush_ms = \(value)\n", allowedKeys: FileServerConfig.keys))
        }
        #expect(try parse("0").inlineFlushMs == 0)
        #expect(try parse("10000").inlineFlushMs == 10_000)
        for bad in ["-1", "10001", "soon"] {
            #expect(throws: ConfigError.self, "\(bad)") { try parse(bad) }
        }
    }
}

/// Group commit: every waiter returns only after a flush that began after its change, and waiters share flushes.
@Suite struct GroupFlushTests {
    @Test(arguments: [GroupFlush.Kind.fdatasync, .fsync, .syncfs])
    func concurrentChangesShareFlushesAndAllBecomeDurable(kind: GroupFlush.Kind) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-flush-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let flush = GroupFlush(path: path, kind: kind)
        let threads = 16
        let rounds = 10
        for round in 1...rounds {
            // Sixteen changes, then sixteen waiters at once: the first waiter's flush covers every change noted
            // before it began, so each round costs exactly one flush.
            let tickets = (0..<threads).map { _ in flush.changed() }
            let group = DispatchGroup()
            let failures = Mutex(0)
            for ticket in tickets {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    do { try flush.waitDurable(ticket) } catch { failures.withLock { $0 += 1 } }
                }
            }
            #expect(group.wait(timeout: .now() + 30) == .success)
            #expect(failures.withLock { $0 } == 0)
            #expect(flush.flushCount == UInt64(round), "round \(round): one flush for \(threads) waiters")
        }
        // A change noted after the last flush is not durable until another flush runs.
        try flush.waitDurable(flush.changed())
        #expect(flush.flushCount == UInt64(rounds + 1))
    }

    @Test func aPathThatCannotBeOpenedFailsEveryWaiter() {
        let flush = GroupFlush(path: "/nonexistent/dfs-\(UUID().uuidString)", kind: .fsync)
        #expect(throws: GroupFlush.FlushError.self) { try flush.waitDurable(flush.changed()) }
        #expect(throws: GroupFlush.FlushError.self) { try flush.waitDurable(flush.changed()) }
    }
}

/// The directory's memory of small files' bytes (`inline_cache_bytes`): by version, bounded, oldest out first.
@Suite struct InlineCacheTests {
    static func bytes(_ count: Int, _ seed: UInt8) -> Data { Data(repeating: seed, count: count) }

    @Test func keepsByVersionAndStaysWithinItsBound() {
        let entry = 4096 + InlineCache.entryOverhead
        let cache = InlineCache(maxBytes: 10 * entry)
        for version in 1...25 {
            cache.keep(fileId: 7, version: Int64(version), Self.bytes(4096, UInt8(version)))
            #expect(cache.usage.bytes <= cache.maxBytes)
        }
        #expect(cache.usage.entries == 10 && cache.usage.bytes == 10 * entry)
        // The oldest went first; the newest ten are there, each with its own bytes.
        #expect(cache.bytes(fileId: 7, version: 15) == nil)
        for version in 16...25 {
            #expect(cache.bytes(fileId: 7, version: Int64(version)) == Self.bytes(4096, UInt8(version)))
        }
        // A version is known with its file id only.
        #expect(cache.bytes(fileId: 8, version: 25) == nil)
        // Keeping a version again changes nothing (its bytes never change).
        cache.keep(fileId: 7, version: 25, Self.bytes(4096, 25))
        #expect(cache.usage.entries == 10 && cache.usage.bytes == 10 * entry)
    }

    @Test func keepsNothingTooBigOrWhenDisabled() {
        let small = InlineCache(maxBytes: 4 * 1024)
        small.keep(fileId: 1, version: 1, Self.bytes(1024, 1))  // more than a quarter with its overhead
        #expect(small.usage.entries == 0 && small.bytes(fileId: 1, version: 1) == nil)
        small.keep(fileId: 1, version: 2, Self.bytes(100, 2))
        #expect(small.bytes(fileId: 1, version: 2) == Self.bytes(100, 2))
        let off = InlineCache(maxBytes: 0)
        off.keep(fileId: 1, version: 1, Self.bytes(10, 1))
        #expect(off.usage.entries == 0 && off.bytes(fileId: 1, version: 1) == nil)
    }

    @Test func manyThreadsKeepAndReadAtOnce() {
        let cache = InlineCache(maxBytes: 64 * (256 + InlineCache.entryOverhead))
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for round in 0..<2000 {
                let version = Int64(thread * 10_000 + round)
                cache.keep(fileId: 1, version: version, Self.bytes(256, UInt8(truncatingIfNeeded: version)))
                if let data = cache.bytes(fileId: 1, version: version) {
                    #expect(data == Self.bytes(256, UInt8(truncatingIfNeeded: version)))
                }
            }
        }
        #expect(cache.usage.entries == 64 && cache.usage.bytes == cache.maxBytes)
    }

    @Test func theConfKeyDefaultsTo16MiB() throws {
        func parse(_ text: String) throws -> DirectoryConfig {
            try DirectoryConfig(try ConfigFile(path: "d.conf", text: text, allowedKeys: DirectoryConfig.keys))
        }
        #expect(try parse("").inlineCacheBytes == 16 << 20)
        #expect(try parse("inline_cache_bytes = 0\n").inlineCacheBytes == 0)
        #expect(throws: ConfigError.self) { try parse("inline_cache_bytes = -1\n") }
    }
}
