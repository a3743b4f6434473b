import ClientCache
import Crypto
import Foundation
import SQLite
import Testing

/// Small entries kept in packs, the running size total, and the index's layout version.
@Suite struct InlineEntryTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-cache-\(UUID().uuidString)").path

    func sha(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    func bytes(_ hit: ClientCache.Hit?) -> Data? {
        guard case .bytes(let data) = hit else { return nil }
        return data
    }

    /// A second connection to the index, as another process would have.
    func index() throws -> Database { try Database(path: root + "/index.sqlite3") }

    func blobFiles() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: root + "/blobs")) ?? [] }

    @Test func smallEntriesAreServedFromTheIndex() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = Data("hello, inline".utf8)
        try cache.store(fileId: 7, version: 3, sha256: sha(data), data: data)
        let edge = Data(repeating: 9, count: Int(ClientCache.inlineLimit))
        let writer = try cache.beginEntry()
        try writer.write(edge.prefix(1000))
        try writer.write(edge.dropFirst(1000))
        try writer.commit(fileId: 8, version: 1, sha256: sha(edge))
        #expect(blobFiles().isEmpty, "entries up to the inline limit are no files of their own")

        #expect(bytes(cache.lookup(fileId: 7, version: 3, sha256: sha(data))) == data)
        #expect(bytes(cache.lookup(fileId: 8, version: 1, sha256: sha(edge))) == edge)
        #expect(cache.lookup(fileId: 7, version: 4, sha256: sha(data)) == nil, "another version is a miss")
        #expect(cache.lookup(fileId: 7, version: 3, sha256: sha(Data("x".utf8))) == nil, "another checksum is a miss")
        #expect(bytes(cache.lookup(fileId: 7, version: 3, sha256: sha(data), range: 7...12)) == Data("inline".utf8))
        #expect(bytes(cache.lookup(fileId: 7, version: 3, sha256: sha(data), range: 7...1000)) == Data("inline".utf8))
        #expect(bytes(cache.lookup(fileId: 7, version: 3, sha256: sha(data), range: 50...60)) == Data())

        let stats = try cache.stats()
        #expect(stats.entries == 2 && stats.bytes == Int64(data.count) + ClientCache.inlineLimit)
        #expect(stats.hits == 5 && stats.misses == 0)
        #expect(stats.bytesSaved == Int64(data.count) + ClientCache.inlineLimit + 6 + 6 + 0)
    }

    /// Small entries share pack files, which go whole when evicted; the size bound holds for what is on disk.
    @Test func packsAreSharedEvictedWholeAndCountedExactly() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let maxBytes: Int64 = 512 << 10  // packs of up to 64 KiB: 16 entries of 4 KiB
        let cache = try ClientCache(directory: root, maxBytes: maxBytes)
        let entries = (0..<200).map { index in Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &+ index) }) }
        for (index, data) in entries.enumerated() {
            try cache.store(fileId: Int64(index), version: 1, sha256: sha(data), data: data)
        }
        let stats = try cache.stats()
        func onDisk(_ folder: String) -> Int64 {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + folder)) ?? []
            return names.reduce(0) { total, name in
                let size = (try? FileManager.default.attributesOfItem(atPath: root + "/\(folder)/\(name)")[.size]) as? Int
                return total + Int64(size ?? 0)
            }
        }
        #expect(stats.bytes == onDisk("packs") + onDisk("blobs"), "the total is what the files hold")
        #expect(stats.bytes <= maxBytes && stats.bytes > maxBytes / 2)
        let perPack = try index().query("SELECT COUNT(*) FROM entries GROUP BY pack ORDER BY pack").compactMap {
            $0.int(0)
        }
        #expect(perPack.dropLast().allSatisfy { $0 == 16 } && perPack.last == 200 % 16, "16 entries a pack")
        #expect(perPack.count == (try FileManager.default.contentsOfDirectory(atPath: root + "/packs").count))
        // The oldest went, a pack at a time; what is indexed reads back whole.
        #expect(cache.lookup(fileId: 0, version: 1, sha256: sha(entries[0])) == nil)
        let kept = try index().query("SELECT file_id FROM entries ORDER BY file_id").compactMap { $0.int(0) }
        #expect(kept.count == Int(stats.entries) && kept.last == 199 && kept.first.map { $0 % 16 } == 0)
        for id in kept { #expect(bytes(cache.lookup(fileId: id, version: 1, sha256: sha(entries[Int(id)]))) == entries[Int(id)]) }
    }

    /// Two users of one cache directory (two processes, say) fill it at the same time: each pack gets its own id,
    /// and every entry reads back whole through either.
    @Test func twoCachesSharingADirectoryNeverShareAPack() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try ClientCache(directory: root, maxBytes: 1 << 30)
        let second = try ClientCache(directory: root, maxBytes: 1 << 30)
        @Sendable func entry(_ index: Int) -> Data {
            Data("entry \(index) ".utf8) + Data(repeating: UInt8(index % 251), count: 3000)
        }
        let group = DispatchGroup()
        for (offset, cache) in [(0, first), (1, second)] {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for index in stride(from: offset, to: 600, by: 2) {
                    try? cache.store(fileId: Int64(index), version: 1, sha256: sha(entry(index)), data: entry(index))
                }
                try? cache.flush()
            }
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(try index().query("SELECT COUNT(*) FROM entries").first?.int(0) == 600)
        let packs = try index().query("SELECT COUNT(*) FROM packs").first?.int(0) ?? 0
        let packFiles = try FileManager.default.contentsOfDirectory(atPath: root + "/packs").count
        #expect(packs >= 10 && Int(packs) == packFiles)
        for index in 0..<600 {
            let reader = index % 3 == 0 ? first : second
            #expect(bytes(reader.lookup(fileId: Int64(index), version: 1, sha256: sha(entry(index)))) == entry(index))
        }
    }

    @Test func emptyFilesAreEntriesToo() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        try cache.store(fileId: 1, version: 1, sha256: sha(Data()), data: Data())
        #expect(bytes(cache.lookup(fileId: 1, version: 1, sha256: sha(Data()))) == Data())
    }

    @Test func bigEntriesStayFiles() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = Data((0..<Int(ClientCache.inlineLimit) + 1).map { UInt8($0 % 251) })
        try cache.store(fileId: 2, version: 5, sha256: sha(data), data: data)
        #expect(blobFiles() == ["2.5"])
        #expect(try index().query("SELECT pack IS NULL FROM entries").first?.int(0) == 1)
        guard case .file(let handle, let count) = cache.lookup(fileId: 2, version: 5, sha256: sha(data), range: 10...19)
        else {
            Issue.record("a big entry is served from its file")
            return
        }
        defer { try? handle.close() }
        #expect(count == 10)
        #expect(try handle.read(upToCount: Int(count)) == data.subdata(in: 10..<20))
    }

    @Test func corruptedInlineEntryIsDropped() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = Data(repeating: 0x41, count: 1000)
        try cache.store(fileId: 1, version: 1, sha256: sha(data), data: data)
        try cache.flush()  // into a pack, where the bytes get damaged
        let pack = try #require(try index().query("SELECT pack FROM entries WHERE file_id = 1").first?.int(0))
        var flipped = data
        flipped[10] = 0x42
        try flipped.write(to: URL(fileURLWithPath: root + "/packs/\(pack)"))
        #expect(cache.lookup(fileId: 1, version: 1, sha256: sha(data)) == nil)
        let stats = try cache.stats()
        #expect(stats.entries == 0 && stats.bytes == 0 && stats.hits == 0)
        #expect(!FileManager.default.fileExists(atPath: root + "/packs/\(pack)"), "the emptied pack went")
    }

    @Test func lookupsAndFillsCountHitsAndMissesOnce() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let data = Data("counted".utf8)
        try cache.store(fileId: 1, version: 1, sha256: sha(data), data: data, countingMiss: true)
        _ = cache.lookup(fileId: 1, version: 1, sha256: sha(data), counting: false)
        _ = cache.lookup(fileId: 1, version: 1, sha256: sha(data))
        let stats = try cache.stats()
        #expect(stats.misses == 1 && stats.hits == 1 && stats.bytesSaved == Int64(data.count))
    }

    @Test func sizeTotalFollowsInsertsReplacementsEvictionsAndClear() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try ClientCache(directory: root, maxBytes: 250_000)
        func expectTotal(_ expected: Int64, _ note: Comment) throws {
            try cache.flush()
            let summed = try index().query("SELECT COALESCE(SUM(size), 0) FROM entries").first?.int(0)
            #expect(try cache.stats().bytes == expected, note)
            #expect(summed == expected, note)
        }
        let small = Data(repeating: 1, count: 30_000)
        let large = Data(repeating: 2, count: 100_000)
        try cache.store(fileId: 1, version: 1, sha256: sha(small), data: small)
        try cache.store(fileId: 2, version: 1, sha256: sha(large), data: large)
        try expectTotal(130_000, "after inserts")
        try cache.store(fileId: 1, version: 1, sha256: sha(small), data: small)
        try expectTotal(130_000, "a replaced entry counts once")
        try cache.store(fileId: 3, version: 1, sha256: sha(large), data: large)
        try cache.store(fileId: 4, version: 1, sha256: sha(large), data: large)
        try expectTotal(230_000, "after evicting the least recently used")
        #expect(cache.lookup(fileId: 2, version: 1, sha256: sha(large)) == nil, "the entry unused the longest went")
        #expect(blobFiles().sorted() == ["3.1", "4.1"])
        #expect(bytes(cache.lookup(fileId: 1, version: 1, sha256: sha(small))) == small)
        try cache.store(fileId: 5, version: 1, sha256: sha(small), data: small)
        try expectTotal(160_000, "an inline entry evicted a file")
        #expect(blobFiles() == ["4.1"])
        try cache.clear()
        try expectTotal(0, "after clear")
        try cache.store(fileId: 6, version: 1, sha256: sha(small), data: small)
        try expectTotal(30_000, "counting goes on after clear")
    }

    @Test func anOlderIndexIsReset() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["blobs", "tmp"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        // The layout before inline entries, with no user_version.
        try index().execute(
            """
            CREATE TABLE entries(
                file_id INTEGER NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                last_used INTEGER NOT NULL, stat TEXT NOT NULL, PRIMARY KEY(file_id, version));
            CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO entries VALUES (1, 1, 'abc', 3, 0, '');
            INSERT INTO counters VALUES ('hits', 9);
            """)
        try Data("abc".utf8).write(to: URL(fileURLWithPath: root + "/blobs/1.1"))
        try Data("half".utf8).write(to: URL(fileURLWithPath: root + "/tmp/partial"))

        let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
        let empty = CacheStats(entries: 0, bytes: 0, maxBytes: 1 << 20, hits: 0, misses: 0, bytesSaved: 0)
        #expect(try cache.stats() == empty)
        #expect(blobFiles().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/tmp").isEmpty)
        let data = Data("works".utf8)
        try cache.store(fileId: 1, version: 1, sha256: sha(data), data: data)
        #expect(bytes(cache.lookup(fileId: 1, version: 1, sha256: sha(data))) == data)
        #expect(try index().query("PRAGMA user_version").first?.int(0) ?? 0 > 0)

        // Reopening the current layout keeps what is there.
        try cache.flush()
        let reopened = try ClientCache(directory: root, maxBytes: 1 << 20)
        #expect(bytes(reopened.lookup(fileId: 1, version: 1, sha256: sha(data))) == data)
    }

    @Test func smallFillsAreWrittenBehindAndFlushedTogether() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = (0..<10).map { Data("entry \($0)".utf8) }
        do {
            let cache = try ClientCache(directory: root, maxBytes: 1 << 20)
            for (index, entry) in data.enumerated() {
                try cache.store(fileId: Int64(index), version: 1, sha256: sha(entry), data: entry, countingMiss: true)
            }
            // Its own lookups see queued entries at once; another user of the directory only after a flush.
            #expect(bytes(cache.lookup(fileId: 3, version: 1, sha256: sha(data[3]))) == data[3])
            let other = try ClientCache(directory: root, maxBytes: 1 << 20)
            #expect(other.lookup(fileId: 3, version: 1, sha256: sha(data[3])) == nil)
            #expect(try index().query("SELECT COUNT(*) FROM entries").first?.int(0) == 0, "nothing written yet")
        }  // released: the queue is flushed
        #expect(try index().query("SELECT COUNT(*) FROM entries").first?.int(0) == 10)
        let reopened = try ClientCache(directory: root, maxBytes: 1 << 20)
        for (index, expected) in data.enumerated() {
            #expect(bytes(reopened.lookup(fileId: Int64(index), version: 1, sha256: sha(expected))) == expected)
        }
        let stats = try reopened.stats()
        #expect(stats.entries == 10 && stats.misses == 10 && stats.hits == 11)

        // A full queue is written without waiting for anything else.
        for index in 0..<ClientCache.pendingEntries {
            let entry = Data("more \(index)".utf8)
            try reopened.store(fileId: 100 + Int64(index), version: 1, sha256: sha(entry), data: entry)
        }
        #expect(try index().query("SELECT COUNT(*) FROM entries").first?.int(0) == 10 + Int64(ClientCache.pendingEntries))
    }
}
