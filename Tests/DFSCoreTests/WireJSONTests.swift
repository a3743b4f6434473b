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
            let decoded = try WireJSON.decodeCodable(ListResponse.self, from: data)
            #expect(decoded.path == page.path && decoded.entries == page.entries && decoded.next == page.next)
            // And any JSON parser agrees (no invalid escapes, no raw control characters).
            #expect(try JSONSerialization.jsonObject(with: data) is [String: Any])
        }
        for var entry in entries {
            entry.writeLockedBy = 42
            #expect(try WireJSON.decodeCodable(EntryInfo.self, from: entry.encodedJSON()) == entry)
            #expect(try WireJSON.decode(EntryInfo.self, from: WireJSON.encodeCodable(entry)) == entry)
        }
    }

    @Test func writeTicketsAndUploadResultsRoundTrip() throws {
        let lock = LockInfo(lockId: 9, path: "/a \"b\"", clientId: 3, mode: "write", token: 1 << 40, expiresInMs: 30000)
        let targets = [
            UploadTarget(fileServerId: 1, url: "http://127.0.0.1:5001", ticket: "123.abc"),
            UploadTarget(fileServerId: 2, url: "https://[::1]:5002", ticket: "456.def"),
        ]
        for ticket in [
            WriteTicket(
                path: "/d/é", fileId: 18, version: 19, baseVersion: 7, targets: targets, lockToken: 5, lock: lock,
                inlineMaxBytes: 4096),
            WriteTicket(path: "/x", fileId: 1, version: 2, baseVersion: nil, targets: []),
        ] {
            let decoded = try WireJSON.decodeCodable(WriteTicket.self, from: ticket.encodedJSON())
            #expect(decoded.path == ticket.path && decoded.fileId == ticket.fileId && decoded.version == ticket.version)
            #expect(decoded.baseVersion == ticket.baseVersion && decoded.targets == ticket.targets)
            #expect(decoded.lockToken == ticket.lockToken && decoded.lock == ticket.lock)
            #expect(decoded.inlineMaxBytes == ticket.inlineMaxBytes)
        }
        let commit = CommitRequest(
            path: "/d/f", fileId: 18, version: 19, size: 3, sha256: "ab", receipts: [], data: Data("a\"b".utf8))
        #expect(try WireJSON.decodeCodable(CommitRequest.self, from: commit.encodedJSON()).data == commit.data)
        let downstream = UploadResult(fileServerId: 2, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r2")
        for result in [
            UploadResult(fileServerId: 1, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r1"),
            UploadResult(
                fileServerId: 1, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r1", replicas: [downstream]),
        ] {
            let decoded = try WireJSON.decodeCodable(UploadResult.self, from: result.encodedJSON())
            #expect(decoded.all.map(\.receipt) == result.all.map(\.receipt))
            #expect(decoded.all.map(\.fileServerId) == result.all.map(\.fileServerId))
            #expect(decoded.size == result.size && decoded.sha256 == result.sha256 && decoded.version == result.version)
        }
    }

    @Test func batchCommitsRoundTripThroughTheFastEncoders() throws {
        let lock = LockInfo(lockId: 9, path: "/a", clientId: 3, mode: "read", token: 7, expiresInMs: 100)
        let request = BatchCommitRequest(commits: [
            BatchCommitItem(clientId: 4, commit: CommitRequest(
                path: "/d/\"é\"", fileId: 20, version: 20, size: 1, sha256: "cd", baseVersion: 19,
                receipts: [StoredReceipt(fileServerId: 1, receipt: "r1"), StoredReceipt(fileServerId: 2, receipt: "r2")])),
            BatchCommitItem(
                clientId: 5, commit: CommitRequest(path: "/x", fileId: 21, version: 21, size: 2, sha256: "ef", receipts: []),
                data: Data([0, 0xff])),
        ])
        let decoded = try WireJSON.decodeCodable(BatchCommitRequest.self, from: request.encodedJSON())
        #expect(try WireJSON.encodeCodable(decoded) == WireJSON.encodeCodable(request))
        for outcomes in [
            [BatchCommitOutcome(status: 201, entry: EntryInfo(path: "/x", name: "x", type: "file", mtimeMs: 3, fileId: 21,
                version: 21, size: 0, sha256: "ef", replicas: [])),
             BatchCommitOutcome(status: 404, error: ErrorBody.Detail(code: "not_found", message: "/d does not exist"))],
            [BatchCommitOutcome(status: 409, error: ErrorBody.Detail(code: "lock_busy", message: "held", holders: [lock]))],
        ] {
            let response = BatchCommitResponse(outcomes: outcomes)
            let back = try WireJSON.decodeCodable(BatchCommitResponse.self, from: response.encodedJSON())
            #expect(try WireJSON.encodeCodable(back) == WireJSON.encodeCodable(response))
        }
    }

    @Test func batchesOfCreatesAreCutByTheBytesTheyCarry() {
        func item(_ id: Int64, _ bytes: Int?) -> BatchCommitItem {
            BatchCommitItem(
                clientId: 1, commit: CommitRequest(path: "/f\(id)", fileId: id, version: id, size: 0, sha256: "", receipts: []),
                data: bytes.map { Data(count: $0) })
        }
        let items = [item(1, 300), item(2, nil), item(3, 300), item(4, 500), item(5, 2000), item(6, 10), item(7, nil)]
        let batches = BatchCommitRequest.batches(items, maxDataBytes: 1000)
        #expect(batches.map { $0.map(\.commit.fileId) } == [[1, 2, 3], [4], [5], [6, 7]])
        #expect(batches.flatMap { $0 }.map(\.commit.fileId) == items.map(\.commit.fileId), "in order, none lost")
        #expect(BatchCommitRequest.batches([]).isEmpty)
        // The default keeps a full batch of the biggest inline files under the directory's 1 MiB body limit.
        let full = (0..<256).map { item(Int64($0), 4096) }
        for batch in BatchCommitRequest.batches(full) {
            #expect(BatchCommitRequest(commits: batch).encodedJSON().count < 1 << 20)
        }
    }

    // The hand-written decoders (JSONReader) against JSONDecoder: for every document, both give the same value or
    // both fail the same way. The documents are valid bodies of each fast type, then every field removed, nulled
    // or given a value of each other JSON type, then every prefix of the text, then hand-picked corner cases.

    @Test func fastDecodersAgreeWithJSONDecoder() throws {
        let lock = LockInfo(lockId: 9, path: "/a \"b\"", clientId: 3, mode: "write", token: 1 << 40, expiresInMs: 30000)
        let target = UploadTarget(fileServerId: 1, url: "http://127.0.0.1:5001", ticket: "123.abc")
        let replica = UploadResult(fileServerId: 2, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r2")
        let samples: [(String, Data)] = [
            try ("write", WireJSON.encodeCodable(WriteRequest(path: "/d/é", clientId: 4, sizeHint: 4096, lockToken: 5, lock: true))),
            try ("write", WireJSON.encodeCodable(WriteRequest(path: "/x"))),
            try ("commit", WireJSON.encodeCodable(CommitRequest(
                path: "/d/f", fileId: 18, version: 19, size: 4096, sha256: "ab", baseVersion: 7,
                receipts: [StoredReceipt(fileServerId: 1, receipt: "r1"), StoredReceipt(fileServerId: 2, receipt: "r2")],
                releaseLock: true, data: Data([0, 1, 0xfe, 0xff])))),
            try ("ticket", WireJSON.encodeCodable(WriteTicket(
                path: "/d/f", fileId: 18, version: 19, baseVersion: 7, targets: [target, target], lockToken: 5, lock: lock,
                inlineMaxBytes: 4096))),
            try ("upload", WireJSON.encodeCodable(UploadResult(
                fileServerId: 1, fileId: 18, version: 19, size: 4096, sha256: "ab", receipt: "r1", replicas: [replica]))),
            try ("entry", WireJSON.encodeCodable(EntryInfo(
                path: "/d/f", name: "f", type: "file", mtimeMs: 1, fileId: 18, version: 19, size: 4096, sha256: "ab",
                replicas: [Replica(fileServerId: 1, url: "http://h:1")]))),
            try ("batch", WireJSON.encodeCodable(BatchCommitRequest(commits: [
                BatchCommitItem(clientId: 4, commit: CommitRequest(
                    path: "/d/é", fileId: 20, version: 20, size: 1, sha256: "cd", baseVersion: 19,
                    receipts: [StoredReceipt(fileServerId: 1, receipt: "r1")]), data: Data("kept".utf8)),
            ]))),
            try ("outcomes", WireJSON.encodeCodable(BatchCommitResponse(outcomes: [
                BatchCommitOutcome(status: 201, entry: EntryInfo(
                    path: "/d/f", name: "f", type: "file", mtimeMs: 1, fileId: 20, version: 20, size: 1, sha256: "cd",
                    replicas: [Replica(fileServerId: 1, url: "http://h:1")])),
                BatchCommitOutcome(status: 409, error: ErrorBody.Detail(code: "lock_busy", message: "held", holders: [lock])),
            ]))),
            try ("list", WireJSON.encodeCodable(ListResponse(
                path: "/d", entries: [EntryInfo(path: "/d/e", name: "e", type: "dir", mtimeMs: 2)], next: "e"))),
        ]
        var checked = 0
        for (type, sample) in samples {
            for document in Self.variants(of: sample) {
                try Self.expectSameDecoding(type, document)
                checked += 1
            }
        }
        let corners = [
            #"{"path":"/x","path":"/y"}"#, #"{"path":"\ud83d\ude00 \u00e9 \/ \b\f\n\r\t \" \\"}"#,
            #"{"path":"\ud83d"}"#, #"{"path":"\ude00"}"#, #"{"path":"\x"}"#, #"{"path":"\u00zz"}"#,
            #"{"path":"/x","size_hint":1.0}"#, #"{"path":"/x","size_hint":1e2}"#, #"{"path":"/x","size_hint":1.5}"#,
            #"{"path":"/x","size_hint":-0}"#, #"{"path":"/x","size_hint":01}"#, #"{"path":"/x","size_hint":1.}"#,
            #"{"path":"/x","size_hint":99999999999999999999}"#, #"{"path":"/x","size_hint":9223372036854775807}"#,
            #"{"path":"/x","size_hint":-9223372036854775808}"#, #"{"path":"/x","size_hint":1e400}"#,
            #"{"path":"/x","size_hint":-}"#, #"{"path":"/x","size_hint":0.0000001e7}"#, #"{"path":"/x","lock":1}"#,
            #"{"path":"/x",}"#, #"{"path":"/x",,}"#, #"{,}"#, #"{}"#, #"[]"#, #"[{"path":"/x"}]"#, #""/x""#, "null",
            " {\"path\" : \"/x\" } \n", "\u{FEFF}{\"path\":\"/x\"}", "{\"path\":\"tab\there\"}",
            #"{"path":"/x","other":[1,[2,{"a":[]}],{"b":null}],"more":{"c":true,"d":false}}"#,
            #"{"path":"/x","other":[1,]}"#, #"{"path":"/x","other":[,]}"#, #"{"path":"/x"} x"#, "",
            #"{"path":"/x","other":tru}"#, #"{"path":"/x","other":nul}"#, #"{"path":"/x","other":"unterminated}"#,
            "{\"path\":\"/x\",\"deep\":" + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}",
            "{\"path\":\"/x\",\"deep\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}",
        ]
        for corner in corners {
            try Self.expectSameDecoding("write", Data(corner.utf8))
        }
        var invalidUTF8 = Data(#"{"path":""#.utf8)
        invalidUTF8.append(contentsOf: [0xFF, 0x22, 0x7D])
        try Self.expectSameDecoding("write", invalidUTF8)
        #expect(checked > 1000)
    }

    /// What a decoding came to, comparable across the two decoders: the value re-encoded, or the kind of failure.
    static func outcome<T: Codable>(_ type: T.Type, _ data: Data, fast: Bool) -> String {
        do {
            let value = fast ? try WireJSON.decode(type, from: data) : try WireJSON.decodeCodable(type, from: data)
            return "ok " + String(decoding: try WireJSON.encodeCodable(value), as: UTF8.self)
        } catch DecodingError.keyNotFound(let key, let context) {
            return "missing \((context.codingPath + [key]).map(\.stringValue))"
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            return "wrong type \(context.codingPath.map(\.stringValue))"
        } catch DecodingError.dataCorrupted {
            return "corrupted"
        } catch {
            return "other \(error)"
        }
    }

    static func expectSameDecoding(_ type: String, _ data: Data) throws {
        let text = String(decoding: data.prefix(200), as: UTF8.self)
        func same<T: Codable & FastDecodable>(_ type: T.Type) {
            let fast = outcome(type, data, fast: true)
            let codable = outcome(type, data, fast: false)
            #expect(fast == codable, "\(T.self) from \(text)")
        }
        switch type {
        case "write": same(WriteRequest.self)
        case "commit": same(CommitRequest.self)
        case "ticket": same(WriteTicket.self)
        case "upload": same(UploadResult.self)
        case "entry": same(EntryInfo.self)
        case "batch": same(BatchCommitRequest.self)
        case "outcomes": same(BatchCommitResponse.self)
        default: same(ListResponse.self)
        }
    }

    /// The sample, every member of it (and of the objects nested in it) removed, nulled or retyped, and every
    /// prefix of its text.
    static func variants(of sample: Data) -> [Data] {
        var documents = [sample]
        let others: [Any] = [NSNull(), "text", 7, 1.5, true, [Any](), [String: Any]()]
        func mutations(of object: [String: Any]) -> [[String: Any]] {
            var result: [[String: Any]] = []
            for key in object.keys {
                var removed = object
                removed[key] = nil
                result.append(removed)
                for other in others {
                    var changed = object
                    changed[key] = other
                    result.append(changed)
                }
                if let nested = object[key] as? [String: Any] {
                    for inner in mutations(of: nested) {
                        var changed = object
                        changed[key] = inner
                        result.append(changed)
                    }
                }
                if let list = object[key] as? [Any], let first = list.first as? [String: Any] {
                    for inner in mutations(of: first) {
                        var changed = object
                        changed[key] = [inner] + list.dropFirst()
                        result.append(changed)
                    }
                }
            }
            return result
        }
        if let object = try? JSONSerialization.jsonObject(with: sample) as? [String: Any] {
            var extra = object
            extra["unknown_field"] = ["nested": [1, 2]]
            documents.append(contentsOf: ([extra] + mutations(of: object)).compactMap {
                try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])
            })
        }
        documents.append(contentsOf: (0..<sample.count).map { sample.prefix($0) })
        return documents
    }

    /// The inventory digest is FNV-1a of `<file id>.<version>.<sha256>` (computed without building the text), summed per
    /// bucket: the same on a file server and in the directory, and independent of order.
    @Test func inventoryDigestsAreFNVSumsPerBucket() {
        func reference(_ text: String) -> UInt64 {
            text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
        }
        #expect(InventoryDigest.hash(fileId: 18, version: 7, sha256: "ab") == 0x7cd1_8bcf_4763_ed80)
        for (fileId, version) in [(0, 0), (1, 10), (99, 100), (123_456_789, 9_876_543_210), (-5, 3), (Int64.max, 1)]
            as [(Int64, Int64)]
        {
            let sha = String(repeating: "c0", count: 32)
            #expect(InventoryDigest.hash(fileId: fileId, version: version, sha256: sha) == reference("\(fileId).\(version).\(sha)"))
        }
        let blobs = (1...50).map { (fileId: Int64($0), version: Int64($0 * 7), sha: String($0, radix: 16)) }
        var forward = [UInt64](repeating: 0, count: 8)
        var backward = forward
        for blob in blobs { InventoryDigest.add(fileId: blob.fileId, version: blob.version, sha256: blob.sha, to: &forward) }
        for blob in blobs.reversed() {
            InventoryDigest.add(fileId: blob.fileId, version: blob.version, sha256: blob.sha, to: &backward)
        }
        #expect(forward == backward && Set(forward).count == 8)
        #expect(InventoryDigest.hex(0x1f) == "000000000000001f" && InventoryDigest.hex(.max) == "ffffffffffffffff")
    }
}
