import ClientCache
import Crypto
import Foundation
import Testing

/// The cache index, LRU policy and on-disk entries, on a temp directory; no network.
@Suite struct ClientCacheTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-cache-\(UUID().uuidString)").path

    func sha(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    func put(_ cache: ClientCache, _ fileId: Int64, _ version: Int64, _ data: Data) throws {
        let writer = try cache.beginEntry()
        try writer.write(data)
        try writer.commit(fileId: fileId, version: version, sha256: sha(data))
    }

    func contents(_ cache: ClientCache, _ fileId: Int64, _ version: Int64, _ data: Data) -> Data? {
        switch cache.lookup(fileId: fileId, version: version, sha256: sha(data), counting: false) {
        case .bytes(let bytes):
            return bytes
        case .file(let handle, let count):
            defer { try? handle.close() }
            return (try? handle.read(upToCount: Int(count))) ?? Data()
        case nil:
            return nil
        }
    }

    /// Bigger than `ClientCache.inlineLimit`: kept as a file in `blobs/`.
    func big(_ byte: UInt8, _ count: Int = 100_000) -> Data { Data(repeating: byte, count: count) }

    @Test func storesAndServesByIdVersionAndChecksum() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = Data("hello".utf8)
        try put(cache, 7, 3, data)
        #expect(contents(cache, 7, 3, data) == data)
        #expect(cache.lookup(fileId: 7, version: 4, sha256: sha(data)) == nil, "another version is a miss")
        #expect(
            cache.lookup(fileId: 7, version: 3, sha256: sha(Data("other".utf8))) == nil, "another checksum is a miss")
        let stats = try cache.stats()
        #expect(stats.entries == 1 && stats.bytes == 5)
    }

    @Test func refusesBytesThatDoNotMatchTheirChecksum() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let writer = try cache.beginEntry()
        try writer.write(Data("abc".utf8))
        #expect(throws: CacheError.self) { try writer.commit(fileId: 1, version: 1, sha256: sha(Data("abd".utf8))) }
        #expect(try cache.stats().entries == 0)
    }

    @Test func corruptedFileEntryIsDropped() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = big(0x41)
        try put(cache, 1, 1, data)
        let blob = root + "/blobs/1.1"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: blob))
        bytes[10] = 0x42
        try bytes.write(to: URL(fileURLWithPath: blob))
        #expect(contents(cache, 1, 1, data) == nil)
        #expect(try cache.stats().entries == 0)
        #expect(!FileManager.default.fileExists(atPath: blob))
    }

    @Test func touchedButIntactFileEntryIsKept() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = big(0x73)
        try put(cache, 1, 1, data)
        try data.write(to: URL(fileURLWithPath: root + "/blobs/1.1"))  // rewritten: new mtime, same content
        #expect(contents(cache, 1, 1, data) == data)
    }

    @Test(arguments: [1000, 100_000])  // inline entries, and files
    func evictsLeastRecentlyUsedToStayInBound(size: Int) throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: Int64(3 * size))
        let blobs = (1...3).map { Data(repeating: UInt8($0), count: size) }
        for (index, data) in blobs.enumerated() { try put(cache, Int64(index + 1), 1, data) }
        #expect(contents(cache, 1, 1, blobs[0]) != nil)  // 1 is now more recent than 2
        try put(cache, 4, 1, Data(repeating: 4, count: size))
        #expect(contents(cache, 2, 1, blobs[1]) == nil, "the least recently used entry went")
        #expect(contents(cache, 1, 1, blobs[0]) != nil && contents(cache, 3, 1, blobs[2]) != nil)
        let stats = try cache.stats()
        #expect(stats.bytes == Int64(3 * size) && stats.entries == 3)
        #expect(!FileManager.default.fileExists(atPath: root + "/blobs/2.1"))
    }

    @Test func entriesLargerThanTheBoundAreNotKept() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 100)
        try put(cache, 1, 1, Data(repeating: 1, count: 101))
        #expect(try cache.stats().entries == 0)
    }

    @Test func survivesReopenAndClears() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = Data("persist".utf8)
        try put(try ClientCache(directory: root, maxBytes: 1 << 20), 5, 2, data)
        let reopened = try ClientCache(directory: root, maxBytes: 1 << 20)
        #expect(contents(reopened, 5, 2, data) == data)
        reopened.record(hit: true, bytes: 7)
        reopened.record(hit: false)
        let stats = try reopened.stats()
        #expect(stats.hits == 1 && stats.misses == 1 && stats.bytesSaved == 7)
        try reopened.clear()
        #expect(try reopened.stats() == CacheStats(entries: 0, bytes: 0, maxBytes: 1 << 20, hits: 0, misses: 0, bytesSaved: 0))
        #expect(contents(reopened, 5, 2, data) == nil)
    }

    /// The index is written without fsync, so a power loss may damage it: a damaged index is made anew, empty.
    @Test func aDamagedIndexIsReplacedByAnEmptyOne() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let small = Data("small".utf8)
        do {
            let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
            try put(cache, 1, 1, big(0x42))
            try cache.store(fileId: 2, version: 1, sha256: sha(small), data: small, path: "/s")
            try cache.flush()
        }
        #expect(FileManager.default.fileExists(atPath: root + "/blobs/1.1"))
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        for suffix in ["", "-wal", "-shm"] { unlink(root + "/index.sqlite3" + suffix) }
        try garbage.write(to: URL(fileURLWithPath: root + "/index.sqlite3"))

        let reopened = try ClientCache(directory: root, maxBytes: 1 << 20)
        #expect(try reopened.stats().entries == 0)
        #expect(!FileManager.default.fileExists(atPath: root + "/blobs/1.1"), "the old blobs went with the index")
        #expect(reopened.lastSeen("/s") == nil)
        try reopened.store(fileId: 2, version: 1, sha256: sha(small), data: small)
        #expect(contents(reopened, 2, 1, small) == small)
    }

    @Test func attributeCacheHonoursItsAge() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        cache.storeAttributes(path: "/a", fileId: 1, version: 2, sha256: "x", size: 3)
        #expect(cache.attributes(of: "/a", maxAgeMs: 0) == nil, "0 means always revalidate")
        #expect(cache.attributes(of: "/a", maxAgeMs: 60_000)?.version == 2)
        cache.forgetAttributes(path: "/a")
        #expect(cache.attributes(of: "/a", maxAgeMs: 60_000) == nil)
    }

    @Test func lruPolicyPicksOldestFirstAndSparesKept() {
        let entries = [
            LRUPolicy.Entry(key: "a", size: 50, lastUsed: 1), LRUPolicy.Entry(key: "b", size: 50, lastUsed: 3),
            LRUPolicy.Entry(key: "c", size: 50, lastUsed: 2),
        ]
        #expect(LRUPolicy.victims(entries, maxBytes: 150).isEmpty)
        #expect(LRUPolicy.victims(entries, maxBytes: 100) == ["a"])
        #expect(LRUPolicy.victims(entries, maxBytes: 50) == ["a", "c"])
        #expect(LRUPolicy.victims(entries, maxBytes: 50, keep: ["a"]) == ["c", "b"])
    }
}
