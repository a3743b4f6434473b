/// One file with fewer good copies than wanted.
public struct UnderReplicatedFile: Codable, Sendable, Equatable {
    public var fileId: Int64
    public var version: Int64
    /// Copies on servers that are not dead.
    public var have: Int
    public var want: Int
    public init(fileId: Int64, version: Int64, have: Int, want: Int) {
        self.fileId = fileId
        self.version = version
        self.have = have
        self.want = want
    }
}

/// A copy being made: from one file server to another.
public struct ReplicationTask: Codable, Sendable, Equatable {
    public var fileId: Int64
    public var version: Int64
    public var fromFileServerId: Int64
    public var toFileServerId: Int64
    public init(fileId: Int64, version: Int64, fromFileServerId: Int64, toFileServerId: Int64) {
        self.fileId = fileId
        self.version = version
        self.fromFileServerId = fromFileServerId
        self.toFileServerId = toFileServerId
    }
}

/// `GET /replication` answer: how far the cluster is from `replicas` good copies of everything.
public struct ReplicationStatus: Codable, Sendable {
    /// The configured number of copies, and what the live servers allow right now.
    public var replicas: Int
    public var effectiveReplicas: Int
    public var underReplicated: [UnderReplicatedFile]
    public var inFlight: [ReplicationTask]
    /// Copies made and extra copies dropped since the directory started.
    public var copiesMade: Int64
    public var copiesDropped: Int64
    public init(
        replicas: Int, effectiveReplicas: Int, underReplicated: [UnderReplicatedFile], inFlight: [ReplicationTask],
        copiesMade: Int64, copiesDropped: Int64
    ) {
        self.replicas = replicas
        self.effectiveReplicas = effectiveReplicas
        self.underReplicated = underReplicated
        self.inFlight = inFlight
        self.copiesMade = copiesMade
        self.copiesDropped = copiesDropped
    }
}
