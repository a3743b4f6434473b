import DFSProtocol
import Foundation
import Testing

/// The hand-written listing encoder must produce what the Codable decoder reads back, for every kind of name.
@Suite struct WireJSONTests {
    @Test func listingPageRoundTripsThroughTheFastEncoder() throws {
        let names = ["plain", "é ü 日本", "quote\"back\\slash", "tab\tnew\nline", "\u{1}\u{1f}ctl", "slash/less", "😀"]
        let entries = names.enumerated().map { index, name in
            index % 2 == 0
                ? EntryInfo(path: "/d/" + name, name: name, type: "dir", mtimeMs: Int64(index))
                : EntryInfo(
                    path: "/d/" + name, name: name, type: "file", mtimeMs: 1_764_000_000_000, fileId: Int64(index),
                    version: Int64(index) << 33, size: 4096, sha256: String(repeating: "ab", count: 32),
                    replicas: [Replica(fileServerId: 3, url: "http://127.0.0.1:7000")])
        }
        for page in [
            ListResponse(path: "/d", entries: entries, next: "quote\"back\\slash"),
            ListResponse(path: "/", entries: [], next: nil),
        ] {
            let data = page.encodedJSON()
            let decoded = try WireJSON.decode(ListResponse.self, from: data)
            #expect(decoded.path == page.path && decoded.entries == page.entries && decoded.next == page.next)
            // And any JSON parser agrees (no invalid escapes, no raw control characters).
            #expect(try JSONSerialization.jsonObject(with: data) is [String: Any])
        }
        for var entry in entries {
            entry.writeLockedBy = 42
            #expect(try WireJSON.decode(EntryInfo.self, from: entry.encodedJSON()) == entry)
        }
    }
}
