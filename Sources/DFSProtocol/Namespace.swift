/// Where one copy of a file lives.
public struct Replica: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case fileServerId = "file_server_id"
        case url
    }

    public var fileServerId: Int64
    public var url: String
    public init(fileServerId: Int64, url: String) {
        self.fileServerId = fileServerId
        self.url = url
    }
}

/// A namespace entry: a directory, or a file with its id, version, checksum and replicas.
///
/// Spells its wire keys out (`WireKeys`): listings carry thousands of these, and decoding them without the
/// snake_case conversion is markedly faster.
public struct EntryInfo: Codable, Sendable, Equatable, WireKeys {
    enum CodingKeys: String, CodingKey {
        case path, name, type, size, version, sha256, replicas
        case mtimeMs = "mtime_ms"
        case fileId = "file_id"
        case writeLockedBy = "write_locked_by"
    }

    public var path: String
    public var name: String
    /// `file` or `dir`.
    public var type: String
    public var mtimeMs: Int64
    public var fileId: Int64?
    public var version: Int64?
    public var size: Int64?
    public var sha256: String?
    public var replicas: [Replica]?
    /// The client holding the write lock on this path, if any (`GET /stat` only).
    public var writeLockedBy: Int64?

    public var isDirectory: Bool { type == "dir" }

    public init(
        path: String, name: String, type: String, mtimeMs: Int64, fileId: Int64? = nil, version: Int64? = nil,
        size: Int64? = nil, sha256: String? = nil, replicas: [Replica]? = nil
    ) {
        self.path = path
        self.name = name
        self.type = type
        self.mtimeMs = mtimeMs
        self.fileId = fileId
        self.version = version
        self.size = size
        self.sha256 = sha256
        self.replicas = replicas
    }
}

/// `GET /ls` answer: one page of a directory's entries, in name order. `next` is set when more entries follow:
/// ask again with `after=<next>`.
public struct ListResponse: Codable, Sendable, WireKeys {
    public var path: String
    public var entries: [EntryInfo]
    public var next: String?
    public init(path: String, entries: [EntryInfo], next: String? = nil) {
        self.path = path
        self.entries = entries
        self.next = next
    }

    /// The default and the largest page (`limit`).
    public static let defaultLimit = 1000
    public static let maxLimit = 10_000
}

/// `POST /mkdir` body.
public struct MkdirRequest: Codable, Sendable {
    public var path: String
    public var parents: Bool?
    public init(path: String, parents: Bool? = nil) {
        self.path = path
        self.parents = parents
    }
}

/// `POST /mv` body.
public struct MoveRequest: Codable, Sendable {
    public var from: String
    public var to: String
    public init(from: String, to: String) {
        self.from = from
        self.to = to
    }
}

/// `DELETE /entries` answer: how many entries went.
public struct RemoveResponse: Codable, Sendable {
    public var removed: Int64
    public init(removed: Int64) { self.removed = removed }
}
