import Foundation

/// A JSON writer for the hottest answers (a `stat` entry, a listing page, a write ticket, an upload's receipts): the same document `WireJSON.encode`
/// would produce (nil fields left out, `/` unescaped; members may come in another order), built straight into a
/// byte buffer.
/// Measured on a 10,000-entry page: Foundation's JSONEncoder took most of the 43 ms the directory spent answering.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// One document: `body` writes it into a fresh writer.
    static func document(capacity: Int = 512, _ body: (inout JSONWriter) -> Void) -> Data {
        var out = JSONWriter(capacity: capacity)
        body(&out)
        return Data(out.bytes)
    }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        bytes.append(0x22)
        for byte in value.utf8 {
            switch byte {
            case 0x22: raw("\\\"")
            case 0x5C: raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(Self.hex[Int(byte >> 4)])
                bytes.append(Self.hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(0x22)
    }

    mutating func number(_ value: Int64) { bytes.append(contentsOf: String(value).utf8) }

    /// `,"key":value`, or nothing for nil (a nil field is left out, as the Codable encoder does); a value that is
    /// always there is passed as is.
    mutating func member(_ key: StaticString, _ value: Int64?) {
        guard let value else { return }
        self.key(key)
        number(value)
    }

    /// `,"key":true|false`, or nothing for nil.
    mutating func member(_ key: StaticString, _ value: Bool?) {
        guard let value else { return }
        self.key(key)
        value ? raw("true") : raw("false")
    }

    /// `,"key":"value"`, or nothing for nil.
    mutating func member(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        self.key(key)
        string(value)
    }

    /// `,"key":"<base64 of value>"`, or nothing for nil. The base64 alphabet needs no escaping: written as is.
    mutating func member(_ key: StaticString, base64 value: Data?) {
        guard let value else { return }
        self.key(key)
        bytes.append(0x22)
        bytes.append(contentsOf: value.base64EncodedData())
        bytes.append(0x22)
    }

    /// `,"key":[…,…]`: `element` writes each whole element.
    mutating func array<T>(
        _ key: StaticString, _ items: [T], first: Bool = false, _ element: (inout JSONWriter, T) -> Void
    ) {
        self.key(key, first: first)
        raw("[")
        for (index, item) in items.enumerated() {
            if index > 0 { raw(",") }
            element(&self, item)
        }
        raw("]")
    }

    /// `,"key":[{…},{…}]`: `members` writes each object's members, the first with `first: true`.
    mutating func objects<T>(
        _ key: StaticString, _ items: [T], first: Bool = false, _ members: (inout JSONWriter, T) -> Void
    ) {
        array(key, items, first: first) { out, item in
            out.raw("{")
            members(&out, item)
            out.raw("}")
        }
    }

    /// `,"key":` (or without the comma for the first member).
    mutating func key(_ key: StaticString, first: Bool = false) {
        if !first { bytes.append(0x2C) }
        bytes.append(0x22)
        raw(key)
        raw("\":")
    }

    private static let hex = Array("0123456789abcdef".utf8)
}

/// A wire type with a hand-written encoder (`JSONWriter`): servers answer with it instead of `WireJSON.encode`.
public protocol FastEncodable {
    func encodedJSON() -> Data
}

extension ListResponse: FastEncodable {
    /// The wire JSON of this page (see `JSONWriter`).
    public func encodedJSON() -> Data {
        JSONWriter.document(capacity: 256 + entries.count * 160) { out in
            out.raw("{")
            out.key("path", first: true)
            out.string(path)
            out.array("entries", entries) { out, entry in entry.write(to: &out) }
            out.member("next", next)
            out.raw("}")
        }
    }
}

extension EntryInfo: FastEncodable {
    /// The wire JSON of this entry (see `JSONWriter`): `GET /stat` answers one on every read.
    public func encodedJSON() -> Data {
        JSONWriter.document { write(to: &$0) }
    }

    fileprivate func write(to out: inout JSONWriter) {
        out.raw("{")
        out.key("path", first: true)
        out.string(path)
        out.member("name", name)
        out.member("type", type)
        out.member("mtime_ms", mtimeMs)
        out.member("file_id", fileId)
        out.member("version", version)
        out.member("size", size)
        out.member("sha256", sha256)
        if let replicas {
            out.objects("replicas", replicas) { out, replica in
                out.key("file_server_id", first: true)
                out.number(replica.fileServerId)
                out.member("url", replica.url)
            }
        }
        out.member("write_locked_by", writeLockedBy)
        out.raw("}")
    }
}

extension WriteTicket: FastEncodable {
    /// The wire JSON of this ticket (see `JSONWriter`): `POST /writes` answers one per write.
    public func encodedJSON() -> Data {
        JSONWriter.document { write(to: &$0) }
    }

    private func write(to out: inout JSONWriter) {
        out.raw("{")
        out.key("path", first: true)
        out.string(path)
        out.member("file_id", fileId)
        out.member("version", version)
        out.member("base_version", baseVersion)
        out.objects("targets", targets) { out, target in
            out.key("file_server_id", first: true)
            out.number(target.fileServerId)
            out.member("url", target.url)
            out.member("ticket", target.ticket)
        }
        out.member("lock_token", lockToken)
        if let lock {
            out.key("lock")
            out.raw("{")
            out.key("lock_id", first: true)
            out.number(lock.lockId)
            out.member("path", lock.path)
            out.member("client_id", lock.clientId)
            out.member("mode", lock.mode)
            out.member("token", lock.token)
            out.member("expires_in_ms", lock.expiresInMs)
            out.raw("}")
        }
        out.member("inline_max_bytes", inlineMaxBytes)
        out.raw("}")
    }
}

extension UploadResult: FastEncodable {
    /// The wire JSON of this result (see `JSONWriter`): a file server answers one per upload.
    public func encodedJSON() -> Data {
        JSONWriter.document { write(to: &$0) }
    }

    fileprivate func write(to out: inout JSONWriter) {
        out.raw("{")
        out.key("file_server_id", first: true)
        out.number(fileServerId)
        out.member("file_id", fileId)
        out.member("version", version)
        out.member("size", size)
        out.member("sha256", sha256)
        out.member("receipt", receipt)
        if let replicas {
            out.array("replicas", replicas) { out, replica in replica.write(to: &out) }
        }
        out.raw("}")
    }
}

extension WriteRequest: FastEncodable {
    /// The wire JSON of this request (see `JSONWriter`): a client sends one per write.
    public func encodedJSON() -> Data {
        JSONWriter.document(capacity: 256) { out in
            out.raw("{")
            out.key("path", first: true)
            out.string(path)
            out.member("client_id", clientId)
            out.member("size_hint", sizeHint)
            out.member("lock_token", lockToken)
            out.member("lock", lock)
            out.raw("}")
        }
    }
}

extension CommitRequest: FastEncodable {
    /// The wire JSON of this request (see `JSONWriter`): a client sends one per write.
    public func encodedJSON() -> Data {
        JSONWriter.document(capacity: 512) { write(to: &$0) }
    }

    fileprivate func write(to out: inout JSONWriter) {
        out.raw("{")
        out.key("path", first: true)
        out.string(path)
        out.member("file_id", fileId)
        out.member("version", version)
        out.member("size", size)
        out.member("sha256", sha256)
        out.member("base_version", baseVersion)
        out.objects("receipts", receipts) { out, receipt in
            out.key("file_server_id", first: true)
            out.number(receipt.fileServerId)
            out.member("receipt", receipt.receipt)
        }
        out.member("release_lock", releaseLock)
        out.member("data_base64", base64: data)
        out.raw("}")
    }
}

extension BatchCommitRequest: FastEncodable {
    /// The wire JSON of this batch (see `JSONWriter`): a file server sends one per group of creates.
    public func encodedJSON() -> Data {
        JSONWriter.document(capacity: 64 + commits.count * 512 + commits.reduce(0) { $0 + ($1.data?.count ?? 0) * 4 / 3 }) { out in
            out.raw("{")
            out.objects("commits", commits, first: true) { out, item in
                out.key("client_id", first: true)
                out.number(item.clientId)
                out.key("commit")
                item.commit.write(to: &out)
                out.member("data_base64", base64: item.data)
                out.member("blob_durable", item.blobDurable)
            }
            out.raw("}")
        }
    }
}

extension BatchCommitResponse: FastEncodable {
    /// The wire JSON of a batch's outcomes (see `JSONWriter`); refusals naming lock holders use the Codable encoder.
    public func encodedJSON() -> Data {
        guard outcomes.allSatisfy({ $0.error?.holders == nil }) else { return (try? WireJSON.encodeCodable(self)) ?? Data() }
        return JSONWriter.document(capacity: 64 + outcomes.count * 400) { out in
            out.raw("{")
            out.objects("outcomes", outcomes, first: true) { out, outcome in
                out.key("status", first: true)
                out.number(Int64(outcome.status))
                if let entry = outcome.entry {
                    out.key("entry")
                    entry.write(to: &out)
                }
                if let error = outcome.error {
                    out.key("error")
                    error.write(to: &out)
                }
            }
            out.member("inline_max_bytes", inlineMaxBytes)
            out.raw("}")
        }
    }
}

extension ErrorBody: FastEncodable {
    /// The wire JSON of this error (see `JSONWriter`). Errors without lock holders (nearly all) are written by hand;
    /// the rest go through the Codable encoder.
    public func encodedJSON() -> Data {
        guard error.holders == nil else { return (try? WireJSON.encodeCodable(self)) ?? Data() }
        return JSONWriter.document(capacity: 128) { out in
            out.raw("{")
            out.key("error", first: true)
            error.write(to: &out)
            out.raw("}")
        }
    }
}

extension ErrorBody.Detail {
    /// `{"code":…,"message":…}` (the writers leave out lock holders: they go through the Codable encoder).
    fileprivate func write(to out: inout JSONWriter) {
        out.raw("{")
        out.key("code", first: true)
        out.string(code)
        out.member("message", message)
        out.raw("}")
    }
}
