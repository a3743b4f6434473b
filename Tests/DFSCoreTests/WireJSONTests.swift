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

    @Test func writeTicketsAndUploadResultsRoundTrip() throws {
        let lock = LockInfo(lockId: 9, path: "/a \"b\"", clientId: 3, mode: "write", token: 1 << 40, expiresInMs: 30000)
        let targets = [
            UploadTarget(fileServerId: 1, url: "http://127.0.0.1:5001", ticket: "123.abc"),
            UploadTarget(fileServerId: 2, url: "https://[::1]:5002", ticket: "456.def"),
        ]
        for ticket in [
            WriteTicket(path: "/d/é", fileId: 18, version: 19, baseVersion: 7, targets: targets, lockToken: 5, lock: lock),
            WriteTicket(path: "/x", fileId: 1, version: 2, baseVersion: nil, targets: []),
        ] {
            let decoded = try WireJSON.decode(WriteTicket.self, from: ticket.encodedJSON())
            #expect(decoded.path == ticket.path && decoded.fileId == ticket.fileId && decoded.version == ticket.version)
            #expect(decoded.baseVersion == ticket.baseVersion && decoded.targets == ticket.targets)
            #expect(decoded.lockToken == ticket.lockToken && decoded.lock == ticket.lock)
        }
        let downstream = UploadResult(fileServerId: 2, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r2")
        for result in [
            UploadResult(fileServerId: 1, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r1"),
            UploadResult(
                fileServerId: 1, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r1", replicas: [downstream]),
        ] {
            let decoded = try WireJSON.decode(UploadResult.self, from: result.encodedJSON())
            #expect(decoded.all.map(\.receipt) == result.all.map(\.receipt))
            #expect(decoded.all.map(\.fileServerId) == result.all.map(\.fileServerId))
            #expect(decoded.size == result.size && decoded.sha256 == result.sha256 && decoded.version == result.version)
        }
    }
}
