import Foundation

// Hand-written decoders for the bodies every create and read carries (see `JSONReader`): the directory reads write
// and commit requests; a client reads write tickets, upload results, entries and listing pages. Each reads exactly
// what the Codable conformance reads: required fields must be there and not null, optional ones may be missing or
// null, unknown ones are ignored. Fields are read in the order of the type's `CodingKeys`, so that the first
// missing or mistyped one is the one `JSONDecoder` would name. `WireJSONTests` checks them against `JSONDecoder`
// document by document.

extension WriteRequest: FastDecodable {
    public init(json data: Data) throws { self = try JSONFields.decode(data, Self.init(fields:)) }

    init(fields: JSONFields) throws {
        self.init(
            path: try fields.string("path"), clientId: try fields.optionalInt("client_id"),
            sizeHint: try fields.optionalInt("size_hint"), lockToken: try fields.optionalInt("lock_token"),
            lock: try fields.optionalBool("lock"))
    }
}

extension CommitRequest: FastDecodable {
    public init(json data: Data) throws { self = try JSONFields.decode(data, Self.init(fields:)) }

    init(fields: JSONFields) throws {
        let path = try fields.string("path")
        let version = try fields.int("version")
        let size = try fields.int("size")
        let sha256 = try fields.string("sha256")
        let receipts = try fields.objects("receipts") {
            let receipt = try $0.string("receipt")
            return StoredReceipt(fileServerId: try $0.int("file_server_id"), receipt: receipt)
        }
        self.init(
            path: path, fileId: try fields.int("file_id"), version: version, size: size, sha256: sha256,
            baseVersion: try fields.optionalInt("base_version"), receipts: receipts,
            releaseLock: try fields.optionalBool("release_lock"), data: try fields.optionalBase64("data_base64"))
    }
}

extension LockInfo {
    init(fields: JSONFields) throws {
        let path = try fields.string("path")
        let mode = try fields.string("mode")
        let token = try fields.int("token")
        self.init(
            lockId: try fields.int("lock_id"), path: path, clientId: try fields.int("client_id"), mode: mode,
            token: token, expiresInMs: try fields.int("expires_in_ms"))
    }
}

extension WriteTicket: FastDecodable {
    public init(json data: Data) throws { self = try JSONFields.decode(data, Self.init(fields:)) }

    init(fields: JSONFields) throws {
        let path = try fields.string("path")
        let version = try fields.int("version")
        let targets = try fields.objects("targets") {
            let url = try $0.string("url")
            let ticket = try $0.string("ticket")
            return UploadTarget(fileServerId: try $0.int("file_server_id"), url: url, ticket: ticket)
        }
        let lock = try fields.optionalObject("lock", LockInfo.init(fields:))
        self.init(
            path: path, fileId: try fields.int("file_id"), version: version,
            baseVersion: try fields.optionalInt("base_version"), targets: targets,
            lockToken: try fields.optionalInt("lock_token"), lock: lock,
            inlineMaxBytes: try fields.optionalInt("inline_max_bytes"))
    }
}

extension UploadResult: FastDecodable {
    public init(json data: Data) throws { self = try JSONFields.decode(data, Self.init(fields:)) }

    init(fields: JSONFields) throws {
        let version = try fields.int("version")
        let size = try fields.int("size")
        let sha256 = try fields.string("sha256")
        let receipt = try fields.string("receipt")
        let replicas = try fields.optionalObjects("replicas", UploadResult.init(fields:))
        self.init(
            fileServerId: try fields.int("file_server_id"), fileId: try fields.int("file_id"), version: version,
            size: size, sha256: sha256, receipt: receipt, replicas: replicas)
    }
}

extension EntryInfo: FastDecodable {
    public init(json data: Data) throws { self = try JSONFields.decode(data, Self.init(fields:)) }

    init(fields: JSONFields) throws {
        let path = try fields.string("path")
        let name = try fields.string("name")
        let type = try fields.string("type")
        let size = try fields.optionalInt("size")
        let version = try fields.optionalInt("version")
        let sha256 = try fields.optionalString("sha256")
        let replicas = try fields.optionalObjects("replicas") {
            Replica(fileServerId: try $0.int("file_server_id"), url: try $0.string("url"))
        }
        self.init(
            path: path, name: name, type: type, mtimeMs: try fields.int("mtime_ms"),
            fileId: try fields.optionalInt("file_id"), version: version, size: size, sha256: sha256, replicas: replicas)
        writeLockedBy = try fields.optionalInt("write_locked_by")
    }
}

extension ListResponse: FastDecodable {
    public init(json data: Data) throws {
        self = try JSONFields.decode(data) { fields in
            ListResponse(
                path: try fields.string("path"), entries: try fields.objects("entries", EntryInfo.init(fields:)),
                next: try fields.optionalString("next"))
        }
    }
}

extension BatchCommitRequest: FastDecodable {
    public init(json data: Data) throws {
        self = try JSONFields.decode(data) { fields in
            BatchCommitRequest(
                commits: try fields.objects("commits") {
                    let commit = try $0.object("commit", CommitRequest.init(fields:))
                    return BatchCommitItem(
                        clientId: try $0.int("client_id"), commit: commit, data: try $0.optionalBase64("data_base64"),
                        blobDurable: try $0.optionalBool("blob_durable"))
                })
        }
    }
}

extension BatchCommitResponse: FastDecodable {
    public init(json data: Data) throws {
        self = try JSONFields.decode(data) { fields in
            BatchCommitResponse(
                outcomes: try fields.objects("outcomes") { outcome in
                    let status = try outcome.int("status")
                    let entry = try outcome.optionalObject("entry", EntryInfo.init(fields:))
                    let error = try outcome.optionalObject("error") { error in
                        let code = try error.string("code")
                        let message = try error.string("message")
                        return ErrorBody.Detail(
                            code: code, message: message,
                            holders: try error.optionalObjects("holders", LockInfo.init(fields:)))
                    }
                    guard let status = Int(exactly: status) else {
                        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "status out of range"))
                    }
                    return BatchCommitOutcome(status: status, entry: entry, error: error)
                },
                inlineMaxBytes: try fields.optionalInt("inline_max_bytes"))
        }
    }
}
