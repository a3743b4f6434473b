import DFSClient
import DFSProtocol
import Foundation
import Testing

/// The client disk cache against real servers: close-to-open consistency, zero-transfer hits, bounds, integrity.
@Suite(.serialized) struct CacheTests {
    @Test(arguments: [4096, 200_000])  // inline in the cache index, and a file in it
    func secondReadOfAnUnchangedFileTransfersNothing(size: Int) throws {
        // Bytes counted at the file servers: the directory keeps none (ContentTests covers the files it keeps).
        let cluster = try TestCluster(fileServers: 1, directoryConf: "inline_max_bytes = 0")
        defer { cluster.shutdown() }
        let payload = Data((0..<size).map { UInt8($0 % 251) })
        try cluster.client(home: cluster.tempPath("writer")).write("/data.bin", data: payload)
        let reader = cluster.client(home: cluster.tempPath("reader"))
        let before = try cluster.bytesServed()
        #expect(try reader.read("/data.bin") == payload)
        let afterFirst = try cluster.bytesServed()
        #expect(afterFirst - before == Int64(payload.count))
        #expect(try reader.read("/data.bin") == payload)
        #expect(try cluster.bytesServed() == afterFirst, "a cached read moved bytes from a file server")
        let stats = try reader.cacheStats()
        #expect(stats.hits == 1 && stats.misses == 1 && stats.bytesSaved == Int64(payload.count))

        // Range reads are served from the cached copy too.
        var part = Data()
        try reader.read("/data.bin", range: 1000...1009) { part.append($0) }
        #expect(part == payload.subdata(in: 1000..<1010))
        #expect(try cluster.bytesServed() == afterFirst)
    }

    @Test func readingYourOwnWriteTransfersNothing() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let client = cluster.client()
        try client.write("/mine", data: Data("my own bytes".utf8))
        let before = try cluster.bytesServed()
        #expect(try client.read("/mine") == Data("my own bytes".utf8))
        #expect(try cluster.bytesServed() == before)
        // Nor did the directory, which keeps this small file: the read named the version the cache has (a hit).
        let stats = try client.cacheStats()
        #expect(stats.hits == 1 && stats.misses == 0)
    }

    @Test func anotherClientsWriteIsSeenAtTheNextOpen() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let alice = cluster.client(home: cluster.tempPath("alice"))
        let bob = cluster.client(home: cluster.tempPath("bob"))
        try alice.write("/shared", data: Data("one".utf8))
        #expect(try bob.read("/shared") == Data("one".utf8))
        try alice.write("/shared", data: Data("two".utf8))
        #expect(try bob.read("/shared") == Data("two".utf8))

        // With an attribute cache time, bob trusts what he saw for that long (the documented trade-off).
        let lazyBob = cluster.client(home: cluster.tempPath("bob"), attrCacheMs: 60_000)
        #expect(try lazyBob.read("/shared") == Data("two".utf8))
        try alice.write("/shared", data: Data("three".utf8))
        #expect(try lazyBob.read("/shared") == Data("two".utf8))
        #expect(try bob.read("/shared") == Data("three".utf8), "attr-cache 0 always revalidates")
    }

    @Test func evictionKeepsTheSizeBound() throws {
        let cluster = try TestCluster(fileServers: 1, directoryConf: "inline_max_bytes = 0")
        defer { cluster.shutdown() }
        let writer = cluster.client(home: cluster.tempPath("writer"), cacheMaxBytes: 0)
        for index in 0..<6 { try writer.write("/f\(index)", data: Data(repeating: UInt8(index), count: 2000)) }
        let reader = cluster.client(home: cluster.tempPath("reader"), cacheMaxBytes: 10_000)
        for index in 0..<6 { #expect(try reader.read("/f\(index)") == Data(repeating: UInt8(index), count: 2000)) }
        let stats = try reader.cacheStats()
        #expect(stats.bytes <= 10_000 && stats.entries == 5)
        let before = try cluster.bytesServed()
        #expect(try reader.read("/f5").count == 2000)
        #expect(try cluster.bytesServed() == before, "the most recent file is still cached")
        #expect(try reader.read("/f0").count == 2000)
        #expect(try cluster.bytesServed() == before + 2000, "the oldest was evicted and fetched again")
    }

    @Test func filesLargerThanAQuarterOfTheCacheAreNotCached() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let client = cluster.client(cacheMaxBytes: 10_000)
        try client.write("/big", data: Data(repeating: 1, count: 3000))
        #expect(try client.read("/big").count == 3000)
        #expect(try client.cacheStats().entries == 0)
    }

    /// A big entry, kept as a file (a corrupted small one, inline in the index, is a ClientCacheTests case).
    @Test func corruptedEntryIsRefetched() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let home = cluster.tempPath("reader")
        let payload = Data(repeating: 0x61, count: 100_000)
        try cluster.client(home: cluster.tempPath("writer")).write("/f", data: payload)
        let reader = cluster.client(home: home)
        #expect(try reader.read("/f") == payload)
        let entry = try reader.stat("/f")
        let blob = home + "/cache/blobs/\(entry.fileId!).\(entry.version!)"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: blob))
        bytes[100] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: blob))
        let before = try cluster.bytesServed()
        #expect(try reader.read("/f") == payload)
        #expect(try cluster.bytesServed() == before + 100_000)
        #expect(try reader.read("/f") == payload)
        #expect(try cluster.bytesServed() == before + 100_000, "the refetched copy is cached again")
    }

    @Test func lostUpdateIsRefusedWithConflict() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let alice = cluster.client(home: cluster.tempPath("alice"))
        let bob = cluster.client(home: cluster.tempPath("bob"))
        try alice.write("/doc", data: Data("v1".utf8))
        let file = try alice.open("/doc", mode: .write)  // based on v1
        try file.write(Data("alice's edit".utf8))
        try bob.write("/doc", data: Data("bob's edit".utf8))
        let conflict = #expect(throws: DFSClientError.self) { try file.close() }
        #expect(conflict?.status == 409 && conflict?.code == "conflict")
        #expect(try alice.read("/doc") == Data("bob's edit".utf8), "nothing was overwritten")
    }

    @Test func twoProcessesShareOneCache() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let writer = cluster.client(home: cluster.tempPath("writer"), cacheMaxBytes: 0)
        for index in 0..<10 { try writer.write("/s\(index)", data: Data("shared \(index)\n".utf8)) }
        let home = cluster.tempPath("shared-home")
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            for round in 0..<3 {
                for index in 0..<10 {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: Binaries.dfs)
                    process.arguments = ["cat", "/s\(index)"]
                    process.environment = ["DFS_DIRECTORY": cluster.directory.url, "DFS_HOME": home, "HOME": home]
                    let out = Pipe()
                    process.standardOutput = out
                    do {
                        try process.run()
                        let data = out.fileHandleForReading.readDataToEndOfFile()
                        process.waitUntilExit()
                        if process.terminationStatus != 0 || data != Data("shared \(index)\n".utf8) {
                            failures.add("worker \(worker) round \(round) file \(index): \(String(decoding: data, as: UTF8.self))")
                        }
                    } catch {
                        failures.add("\(error)")
                    }
                }
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        let shared = cluster.client(home: home)
        let stats = try shared.cacheStats()
        #expect(stats.entries == 10)
        #expect(stats.hits + stats.misses == 60)
        #expect(stats.misses <= 20, "each file fetched at most once per process race")
    }
}
