/// The load of one file server as placement sees it.
public struct ServerLoad: Equatable, Sendable {
    public var id: Int64
    /// Committed bytes stored on the server.
    public var storedBytes: Int64
    /// Bytes of uploads placed on it and not yet committed or abandoned.
    public var inflightBytes: Int64
    public var files: Int64
    public var isLive: Bool

    public init(id: Int64, storedBytes: Int64, inflightBytes: Int64, files: Int64, isLive: Bool) {
        self.id = id
        self.storedBytes = storedBytes
        self.inflightBytes = inflightBytes
        self.files = files
        self.isLive = isLive
    }
}

/// Chooses where new files go: the least-loaded live servers.
public enum Placement {
    /// The ids of up to `count` distinct live servers, least loaded first.
    ///
    /// Load is stored plus in-flight bytes; ties go to the server with fewer files, then the lower id, so that equal
    /// files spread evenly and placement is deterministic.
    public static func choose(from servers: [ServerLoad], count: Int) -> [Int64] {
        servers.filter(\.isLive)
            .sorted { a, b in
                let la = a.storedBytes + a.inflightBytes
                let lb = b.storedBytes + b.inflightBytes
                if la != lb { return la < lb }
                if a.files != b.files { return a.files < b.files }
                return a.id < b.id
            }
            .prefix(max(0, count))
            .map(\.id)
    }
}
