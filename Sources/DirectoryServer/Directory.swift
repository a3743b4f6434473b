import Crypto
import DFSCore
import DFSProtocol
import Foundation
import Logging
import SQLite
import ServerKit
import Synchronization

/// The directory service: namespace, placement, registration and liveness, behind one lock.
///
/// Durable facts live in `Metadata` (SQLite). Soft state — heartbeat times and in-flight upload bytes — lives in
/// memory and is rebuilt after a restart: known file servers get one `stale_after_ms` of grace to heartbeat again.
public final class Directory: Sendable {
    struct State {
        var meta: Metadata
        var servers: [Int64: FileServerRow]
        var lastHeartbeatMs: [Int64: Int64]
        var stored: [Int64: (files: Int64, bytes: Int64)]
        var inflight: [Int64: Int64]
        /// Copies being made, by "<file id>.<version>".
        var replicating: [String: ReplicationTask] = [:]
        var copiesMade: Int64 = 0
        var copiesDropped: Int64 = 0
        /// Blobs on a server that no metadata points to, and since when (they are deleted after a grace period).
        var orphansSince: [Int64: [BlobKey: Int64]] = [:]
        /// Servers whose inventory should be checked at the next maintenance pass (new or re-registered).
        var inventoryDue: Set<Int64> = []
        /// Servers heard from (registration or heartbeat) since this directory started. Known servers count as live
        /// for a grace period after a start, but their inventory is only asked for once they have spoken: at a
        /// cluster start (the directory first, `make run`) the first check otherwise met servers not yet up.
        var heardFrom: Set<Int64> = []
        /// Uploads begun and not yet committed, by version. Kept in memory only: after a restart their commits
        /// fail (the client writes again) and their blobs are orphans, deleted by the inventory check.
        var openWrites: [Int64: OpenWrite] = [:]
        /// Something may have left a file with too few or too many copies since the replication planner last
        /// scanned every file (a commit with fewer copies than `replicas`, a copy made, failed or dropped, a new
        /// file server). The planner scans only then, when a server's liveness changed, or once per
        /// `inventory_interval_ms`: a scan of every file every second held the state lock for a growing time.
        var replicationDirty = true
        /// The servers' liveness at the last scan that found nothing to do, and when the next full scan is due.
        var plannedLiveness: [Int64: Liveness]?
        var nextFullPlanMs: Int64 = 0
    }

    /// An upload that was begun and not yet committed.
    struct OpenWrite {
        var fileId: Int64
        var path: String
        var fence: Int64?
        var sizeHint: Int64
        var targets: [Int64]
        var createdMs: Int64
    }

    let config: DirectoryConfig
    /// The cluster secret: authenticates servers, keys tickets and client tokens (its keys derived once, here).
    let secret: ClusterSecret
    let logger: Logger
    /// The locking service; writes consult it for fencing.
    public let locks: LockService
    let state: Locked<State>
    /// Moves on (under the state lock, after the commit) with every change to the metadata.
    private let generation = Atomic<UInt64>(0)
    /// Recent `stat` answers, valid while the generation they were read at is current: a read-mostly namespace
    /// (HDFS keeps all of it in memory) answers repeated stats without SQLite.
    private let statCache = Locked<[String: CachedStat]>([:])
    /// The bytes of small files recently sent by `content`, by version (`inline_cache_bytes`).
    let inlineCache: InlineCache
    /// Moves on (under the state lock, after the commit) with every `rm` and `mv`: the only changes that can delete
    /// or rename a directory. Creates and commits, the frequent changes, leave it alone.
    private let layoutGeneration = Atomic<UInt64>(0)
    /// Directory ids by path, valid while the layout generation they were read at is current: a lookup walks only
    /// the last name (one query instead of one per component).
    private let directoryIds = Locked<[String: (generation: UInt64, id: Int64)]>([:])
    /// Where `Metadata` keeps its database, also opened read-only by `reading`.
    let metadataPath: String
    /// Read-only connections for `reading`: one per lookup running at the moment, reused.
    private let readers: ConnectionPool<MetadataReader>
    /// Flushes the metadata's commits, outside `state`'s lock, shared by concurrent requests.
    let durability: GroupFlush

    public init(config: DirectoryConfig, logger: Logger) throws {
        self.config = config
        self.secret = config.server.secret
        self.logger = logger
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        metadataPath = config.dataDir + "/metadata.sqlite3"
        readers = ConnectionPool { [metadataPath] in try MetadataReader(path: metadataPath) }
        inlineCache = InlineCache(maxBytes: config.inlineCacheBytes)
        let meta = try Metadata(path: metadataPath)
        locks = LockService(
            tokenBase: try meta.nextEpoch() << 32, defaultLeaseMs: config.lockLeaseMs, maxWaitMs: config.lockMaxWaitMs,
            logger: logger)
        var servers: [Int64: FileServerRow] = [:]
        for row in try meta.fileServers() { servers[row.id] = row }
        let now = Clock.monotonicMs()
        var inflight: [Int64: Int64] = [:]
        let stored = try meta.storedLoad()
        for id in servers.keys { inflight[id] = 0 }
        durability = meta.durability
        state = Locked(
            State(
                meta: meta, servers: servers, lastHeartbeatMs: servers.mapValues { _ in now }, stored: stored,
                inflight: inflight))
        // The new epoch (and any upgrade) must be on disk before a lock token of this run is handed out.
        try durability.waitDurable(durability.changed())
    }

    /// Runs `body` under the state lock; if it changed the metadata, waits (after the lock is released, sharing
    /// one flush with concurrent requests) until the change is on disk, so nothing is acknowledged before it is
    /// durable.
    /// - Parameter namespace: false for a change that no `stat` or `content` answer depends on (a client's
    ///   registration), which then leaves their caches alone.
    func withState<T>(namespace: Bool = true, _ body: (inout sending State) throws -> sending T) throws -> T {
        let (value, ticket) = try state.withLock { state -> (T, UInt64?) in
            let before = state.meta.totalChanges
            let value = try body(&state)
            guard state.meta.totalChanges != before else { return (value, nil) }
            // After the commit, before anyone can see the change answered: `stat` drops what it cached.
            if namespace { generation.add(1, ordering: .releasing) }
            return (value, durability.changed())
        }
        if let ticket { try durability.waitDurable(ticket) }
        return value
    }

    // MARK: Registration and liveness

    func registerClient() throws -> RegisterClientResponse {
        let id = try withState(namespace: false) { try $0.meta.registerClient(nowMs: Clock.wallMs()) }
        return RegisterClientResponse(clientId: id, token: secret.clientTokens.token(for: id))
    }

    func registerFileServer(_ request: RegisterFileServerRequest) throws -> RegisterFileServerResponse {
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://"), request.url.count < 512 else {
            throw DFSError.badRequest("url must be an http:// or https:// URL")
        }
        guard request.capacityBytes >= 0 else { throw DFSError.badRequest("capacity_bytes must not be negative") }
        let row = try withState { state in
            let known = request.fileServerId.map { state.servers[$0] != nil } ?? false
            let row = try state.meta.registerFileServer(
                url: request.url, capacity: request.capacityBytes, knownId: request.fileServerId,
                nowMs: Clock.wallMs())
            state.servers[row.id] = row
            // A new server learns its id from this answer: it counts as live from its first heartbeat (sent right
            // after), so no write is placed on it before it can check tickets. A known one keeps its id on disk.
            state.lastHeartbeatMs[row.id] = known ? Clock.monotonicMs() : Int64.min / 2
            state.heardFrom.insert(row.id)
            state.inventoryDue.insert(row.id)
            state.replicationDirty = true
            return row
        }
        logger.info("file server \(row.id) registered at \(row.url)")
        return RegisterFileServerResponse(fileServerId: row.id, heartbeatIntervalMs: Int(config.heartbeatIntervalMs))
    }

    func heartbeat(_ request: HeartbeatRequest) throws {
        try withState { state in
            guard state.servers[request.fileServerId] != nil else {
                throw DFSError.notFound("file server \(request.fileServerId) is not registered")
            }
            state.lastHeartbeatMs[request.fileServerId] = Clock.monotonicMs()
            state.heardFrom.insert(request.fileServerId)
        }
    }

    func fileServers() -> [FileServerInfo] {
        state.withLock { state in
            let now = Clock.monotonicMs()
            return state.servers.values.sorted { $0.id < $1.id }.map { row in
                let last = state.lastHeartbeatMs[row.id] ?? 0
                let stored = state.stored[row.id] ?? (0, 0)
                return FileServerInfo(
                    id: row.id, url: row.url, state: liveness(last, now).rawValue, files: stored.files,
                    bytes: stored.bytes, capacityBytes: row.capacityBytes, lastHeartbeatMsAgo: now - last)
            }
        }
    }

    func liveness(_ lastMs: Int64, _ nowMs: Int64) -> Liveness {
        Liveness.of(
            lastHeartbeatMs: lastMs, nowMs: nowMs, staleAfterMs: config.staleAfterMs, deadAfterMs: config.deadAfterMs)
    }

    // MARK: Namespace

    func stat(_ path: DFSPath) throws -> EntryInfo {
        let key = path.description
        // Read before the lookup: a change committed meanwhile moves the generation on, so what is read here can
        // only be cached under a generation that is already gone — never served stale.
        let current = generation.load(ordering: .acquiring)
        if let hit = statCache.withLock({ $0[key] }), hit.generation == current, hit.replicasKnown {
            return entryInfo(hit.row, path: key, name: path.name, replicaIds: hit.replicas)
        }
        let (row, replicaIds) = try reading { reader in
            guard let row = try entry(at: path, reader) else { throw DFSError.notFound("\(path) does not exist") }
            return (row, try Self.replicaIds(of: row, reader))
        }
        remember(key, CachedStat(generation: current, row: row, replicas: replicaIds, replicasKnown: true))
        return entryInfo(row, path: key, name: path.name, replicaIds: replicaIds)
    }

    /// What `GET /content` answers for a file.
    enum Content {
        /// The bytes the metadata keeps of the current version (an inline small file).
        case bytes(EntryInfo, Data)
        /// The caller's `If-None-Match` names the current version.
        case notModified(EntryInfo)
        /// The bytes are on the file servers only (or another client holds the path's write lock): the entry.
        case elsewhere(EntryInfo)
    }

    /// `GET /content`: a whole file in one round trip when the metadata keeps its bytes; else the entry, to be
    /// read from a file server. While another client holds the path's write lock the answer is always the entry
    /// (with `write_locked_by`), so that a reader waits for the writer as after a `stat`.
    func content(_ path: DFSPath, ifNoneMatch: String?) throws -> Content {
        let key = path.description
        let writer = locks.writer(of: key)?.clientId
        // Read before the lookup, as `stat` does: a row read across a change is cached under a generation gone by.
        let current = generation.load(ordering: .acquiring)
        let remembered = statCache.withLock { $0[key] }
        let cached = remembered.flatMap { $0.generation == current ? $0 : nil }
        /// Whether the metadata's bytes of this row are wanted (never a directory's: it has no version).
        func wantsBytes(_ row: EntryRow) -> Bool {
            guard writer == nil, let fileId = row.fileId, let version = row.version, let size = row.size,
                size <= config.inlineMaxBytes
            else { return false }
            return ifNoneMatch.map { !Self.matches($0, ContentHeader.etag(fileId: fileId, version: version)) } ?? true
        }
        /// The bytes kept in memory for this row's version, if complete.
        func keptBytes(_ row: EntryRow) -> Data? {
            guard let fileId = row.fileId, let version = row.version,
                let data = inlineCache.bytes(fileId: fileId, version: version), Int64(data.count) == row.size
            else { return nil }
            return data
        }
        let found: (row: EntryRow, data: Data?, replicas: [Int64]?)
        if let cached, wantsBytes(cached.row), let data = keptBytes(cached.row) {
            // A repeated read: no SQLite at all.
            found = (cached.row, data, nil)
        } else if let cached, cached.replicasKnown, !wantsBytes(cached.row) {
            found = (cached.row, nil, cached.replicas)
        } else {
            // One snapshot: the bytes are those of the version the row names, never another's.
            found = try reading { reader in
                var row = cached?.row
                var data: Data?
                if row == nil, writer == nil, ifNoneMatch == nil,
                    remembered.map({ keptBytes($0.row) == nil }) ?? true
                {
                    // The bytes are likely wanted: the row and its bytes in one query.
                    (row, data) = try entryWithBytes(at: path, reader)
                } else if row == nil {
                    // (Also when the path last named a version whose bytes are in memory, before some change
                    // anywhere moved the generation on: it likely still does, and then the row alone will do.)
                    row = try self.entry(at: path, reader)
                }
                guard let row else { throw DFSError.notFound("\(path) does not exist") }
                if wantsBytes(row), let fileId = row.fileId, let version = row.version {
                    if data == nil { data = try keptBytes(row) ?? reader.inlineData(fileId: fileId, version: version) }
                    if let data, Int64(data.count) == row.size { return (row, data, nil) }
                }
                let replicas = cached?.replicasKnown == true ? cached?.replicas : try Self.replicaIds(of: row, reader)
                return (row, nil, replicas)
            }
            if let data = found.data, let fileId = found.row.fileId, let version = found.row.version {
                inlineCache.keep(fileId: fileId, version: version, data)
            }
            if cached == nil {
                // Replicas are not looked up when the bytes are sent: such a row serves `content` only.
                remember(
                    key, CachedStat(generation: current, row: found.row, replicas: found.replicas,
                        replicasKnown: found.data == nil))
            }
        }
        guard !found.row.isDir else { throw DFSError.isADirectory("\(path) is a directory") }
        // (No replica ids would also leave out the sha256, as in a listing.)
        var entry = entryInfo(found.row, path: key, name: path.name, replicaIds: found.replicas ?? [])
        entry.writeLockedBy = writer
        if let data = found.data { return .bytes(entry, data) }
        if writer == nil, let ifNoneMatch, let fileId = entry.fileId, let version = entry.version,
            Self.matches(ifNoneMatch, ContentHeader.etag(fileId: fileId, version: version))
        {
            return .notModified(entry)
        }
        return .elsewhere(entry)
    }

    /// The entry at `path`, its parent directory's id taken from `directoryIds` when known.
    private func entry(at path: DFSPath, _ reader: MetadataReader) throws -> EntryRow? {
        guard let parent = try directoryId(of: path, reader) else { return try reader.entry(at: path) }
        return try reader.child(of: parent, named: path.name)
    }

    /// `entry(at:)` and the bytes the metadata keeps of its version, if any, in one query.
    private func entryWithBytes(at path: DFSPath, _ reader: MetadataReader) throws -> (EntryRow?, Data?) {
        guard let parent = try directoryId(of: path, reader) else { return (try reader.entry(at: path), nil) }
        return try reader.childWithInlineData(of: parent, named: path.name)
    }

    /// The id of the directory holding `path`'s entry (nil for the root, or when there is no such directory).
    private func directoryId(of path: DFSPath, _ reader: MetadataReader) throws -> Int64? {
        guard !path.isRoot else { return nil }
        let key = path.parent.description
        // Read before the lookup, as `stat` reads `generation`: an id read across an rm or mv is kept under a
        // generation that is already gone.
        let layout = layoutGeneration.load(ordering: .acquiring)
        if let known = directoryIds.withLock({ $0[key] }), known.generation == layout { return known.id }
        guard let parent = try reader.entry(at: path.parent), parent.isDir else { return nil }
        directoryIds.withLock { cache in
            if cache.count >= Self.statCacheEntries { cache.removeAll(keepingCapacity: true) }
            cache[key] = (layout, parent.id)
        }
        return parent.id
    }

    /// Whether an `If-None-Match` value (`*`, or a list of entity tags, weak or strong) names `etag`.
    static func matches(_ ifNoneMatch: String, _ etag: String) -> Bool {
        ifNoneMatch.split(separator: ",").contains { candidate in
            var tag = candidate.trimmingCharacters(in: .whitespaces)
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag == "*" || tag == etag
        }
    }

    /// Keeps a `stat` (or `content`) lookup in `statCache`.
    private func remember(_ key: String, _ stat: CachedStat) {
        statCache.withLock { cache in
            if cache.count >= Self.statCacheEntries { cache.removeAll(keepingCapacity: true) }
            cache[key] = stat
        }
    }

    /// A `stat` as read from the metadata, and the generation it is valid for.
    struct CachedStat: Sendable {
        var generation: UInt64
        var row: EntryRow
        var replicas: [Int64]?
        /// False when only the row was read (by `content`, sending the bytes): `stat` then reads it again.
        var replicasKnown: Bool
    }

    /// The most paths `statCache` keeps (it is emptied when full).
    static let statCacheEntries = 4096

    /// One page of a directory's entries (the entry itself for a file): up to `limit` names after `after`.
    func list(_ path: DFSPath, after: String? = nil, limit: Int = ListResponse.defaultLimit) throws -> ListResponse {
        try reading { reader in
            guard let row = try reader.entry(at: path) else { throw DFSError.notFound("\(path) does not exist") }
            guard row.isDir else {
                let info = entryInfo(
                    row, path: path.description, name: path.name, replicaIds: try Self.replicaIds(of: row, reader))
                return ListResponse(path: path.description, entries: [info])
            }
            let prefix = path.isRoot ? "/" : path.description + "/"
            // One more than asked for tells whether another page follows.
            var rows = try reader.children(of: row.id, after: after, limit: limit + 1)
            let more = rows.count > limit
            if more { rows.removeLast() }
            let entries = rows.map { child in
                entryInfo(child, path: prefix + child.name, name: child.name, replicaIds: nil)
            }
            return ListResponse(path: path.description, entries: entries, next: more ? entries.last?.name : nil)
        }
    }

    /// Runs read-only lookups outside the state lock, in one snapshot, on a reader connection of its own for the
    /// time (from `readers`).
    func reading<T>(_ body: (MetadataReader) throws -> T) throws -> T {
        try readers.withConnection { reader in try reader.snapshot { try body(reader) } }
    }

    private static func replicaIds(of row: EntryRow, _ reader: MetadataReader) throws -> [Int64]? {
        guard let fileId = row.fileId, let version = row.version else { return nil }
        return try reader.replicas(fileId: fileId, version: version)
    }

    /// `entryInfo`, outside the state lock (it takes the lock only to look up the servers' URLs).
    private func entryInfo(_ row: EntryRow, path: String, name: String, replicaIds: [Int64]?) -> EntryInfo {
        // No replicas to name (a file whose bytes are being sent, a directory): no need for the servers' URLs.
        let servers = replicaIds?.isEmpty == false ? state.withLock { $0.servers } : [:]
        return Self.entryInfo(row, path: path, name: name, replicaIds: replicaIds, servers: servers)
    }

    func mkdir(_ path: DFSPath, parents: Bool) throws -> EntryInfo {
        try withState { state in
            let row = try state.meta.mkdir(path, parents: parents, nowMs: Clock.wallMs())
            return try info(row, path: path, state)
        }
    }

    func remove(_ path: DFSPath, recursive: Bool) throws -> Int64 {
        try withState { state in
            // The servers' load is kept up to date by difference: summing every copy again (as at start) made each
            // rm a scan of the whole namespace under the lock.
            let (removed, freed) = try state.meta.remove(path, recursive: recursive)
            layoutGeneration.add(1, ordering: .releasing)
            for (server, load) in freed {
                state.stored[server, default: (0, 0)].files -= load.files
                state.stored[server, default: (0, 0)].bytes -= load.bytes
            }
            return removed
        }
    }

    func move(from: DFSPath, to: DFSPath) throws -> EntryInfo {
        try withState { state in
            let (row, destination) = try state.meta.move(from: from, to: to, nowMs: Clock.wallMs())
            layoutGeneration.add(1, ordering: .releasing)
            return try info(row, path: destination, state)
        }
    }

    // MARK: Writes

    func beginWrite(_ request: WriteRequest) throws -> WriteTicket {
        let path = try DirectoryRoutes.path(request.path)
        guard !path.isRoot else { throw DFSError.isADirectory("/ is a directory") }
        let sizeHint = max(0, request.sizeHint ?? 0)
        guard sizeHint <= config.server.maxFileBytes else {
            throw DFSError.tooLarge("files may be at most \(config.server.maxFileBytes) bytes (max_file_bytes)")
        }
        var lockToken = request.lockToken
        var taken: LockInfo?
        if lockToken == nil, request.lock == true, let clientId = request.clientId {
            taken = try locks.tryWriteLock(path: path.description, clientId: clientId)
            lockToken = taken?.token
        }
        do {
            var ticket = try beginWrite(path, request, sizeHint: sizeHint, lockToken: lockToken)
            ticket.lock = taken
            return ticket
        } catch {
            if let taken { locks.releaseWriteLock(path: path.description, token: taken.token, clientId: taken.clientId) }
            throw error
        }
    }

    private func beginWrite(_ path: DFSPath, _ request: WriteRequest, sizeHint: Int64, lockToken: Int64?) throws
        -> WriteTicket
    {
        try locks.checkWrite(path: path.description, token: lockToken)
        return try withState { state in
            let now = Clock.monotonicMs()
            let (fileId, base) = try state.meta.prepareWrite(path)
            let chosen = Placement.choose(from: loads(state, now), count: config.replicas)
            guard !chosen.isEmpty else { throw DFSError(503, .noFileServers, "no live file server can take new files") }
            let began = (fileId: fileId, version: try state.meta.allocateId(), base: base, targets: chosen)
            state.openWrites[began.version] = OpenWrite(
                fileId: fileId, path: path.description, fence: lockToken, sizeHint: sizeHint, targets: chosen,
                createdMs: Clock.wallMs())
            for id in began.targets { state.inflight[id, default: 0] += sizeHint }
            let signer = secret.tickets
            let expiry = Clock.wallMs() + config.ticketTTLMs
            let targets = began.targets.compactMap { id -> UploadTarget? in
                guard let row = state.servers[id] else { return nil }
                return UploadTarget(
                    fileServerId: id, url: row.url,
                    ticket: signer.sign(
                        .put, fileId: began.fileId, version: began.version,
                        detail: TicketSigner.fenceDetail(lockToken), expiresAtMs: expiry))
            }
            return WriteTicket(
                path: path.description, fileId: began.fileId, version: began.version, baseVersion: began.base,
                targets: targets, lockToken: lockToken, inlineMaxBytes: config.inlineMaxBytes)
        }
    }

    /// Makes an uploaded version current; with `release_lock`, then releases the write lock it was begun under.
    func commit(_ request: CommitRequest, clientId: Int64) throws -> EntryInfo {
        let path = try checkedCommit(request)
        let inline = try inlineData(request.data, of: request)
        let (entry, fence) = try withState { state -> (EntryInfo, Int64?) in
            guard let write = state.openWrites[request.version], write.fileId == request.fileId,
                write.path == path.description
            else {
                throw DFSError.notFound(
                    "no open write of \(path) for file \(request.fileId) version \(request.version)")
            }
            try locks.checkWrite(path: path.description, token: write.fence)
            let confirmed = confirmedServers(request, among: write.targets)
            let result = try commitConfirmed(
                request, path, confirmed: confirmed, of: write.targets.count, inline: inline, state)
            state.openWrites[request.version] = nil
            for id in write.targets { state.inflight[id] = max(0, (state.inflight[id] ?? 0) - write.sizeHint) }
            committed(result, size: request.size, servers: confirmed, &state)
            return (try info(result.row, path: path, state), write.fence)
        }
        if request.releaseLock == true, let fence {
            locks.releaseWriteLock(path: path.description, token: fence, clientId: clientId)
        }
        return entry
    }

    /// The path of a commit whose size and checksum are well-formed and within limits.
    private func checkedCommit(_ request: CommitRequest) throws -> DFSPath {
        let path = try DirectoryRoutes.path(request.path)
        guard request.size >= 0, request.sha256.count == 64, Data(hex: request.sha256) != nil else {
            throw DFSError.badRequest("size must be >= 0 and sha256 64 hex digits")
        }
        guard request.size <= config.server.maxFileBytes else {
            throw DFSError.tooLarge("files may be at most \(config.server.maxFileBytes) bytes (max_file_bytes)")
        }
        guard !path.isRoot else { throw DFSError.isADirectory("/ is a directory") }
        return path
    }

    /// Makes the upload current once every one of its `expected` copies is `confirmed` by a valid receipt.
    private func commitConfirmed(
        _ request: CommitRequest, _ path: DFSPath, confirmed: [Int64], of expected: Int, inline: Data? = nil,
        _ state: State
    ) throws -> Metadata.CommitResult {
        guard !confirmed.isEmpty, confirmed.count == expected else {
            throw DFSError.conflict(
                "the upload is not confirmed by every file server (\(confirmed.count) of \(expected) receipts match the size and sha256)"
            )
        }
        return try state.meta.commit(
            path, fileId: request.fileId, version: request.version, size: request.size,
            sha256: request.sha256.lowercased(), baseVersion: request.baseVersion, servers: confirmed, inline: inline,
            nowMs: Clock.wallMs())
    }

    /// Those of `servers` whose receipt in `request` is valid for its blob, size and checksum.
    private func confirmedServers(_ request: CommitRequest, among servers: [Int64]) -> [Int64] {
        let detail = "\(request.size):\(request.sha256.lowercased())"
        let signer = secret.tickets
        let now = Clock.wallMs()
        return servers.filter { server in
            request.receipts.contains {
                $0.fileServerId == server
                    && signer.verify(
                        $0.receipt, .stored, fileId: request.fileId, version: request.version,
                        detail: "\(server):\(detail)", nowMs: now)
            }
        }
    }

    /// Keeps the servers' loads and the planner's trigger in step with a commit.
    private func committed(_ result: Metadata.CommitResult, size: Int64, servers: [Int64], _ state: inout State) {
        // Fewer copies than the live servers allow: the planner has work. (Fewer because fewer servers are live —
        // one in the benchmark — is not: a server coming back changes the liveness, which starts a scan anyway.)
        if servers.count < config.replicas, servers.count < effectiveReplicas(state, now: Clock.monotonicMs()) {
            state.replicationDirty = true
        }
        for id in servers {
            state.stored[id, default: (0, 0)].files += 1
            state.stored[id, default: (0, 0)].bytes += size
        }
        for blob in result.replaced {
            state.stored[blob.serverId, default: (0, 0)].files -= 1
            state.stored[blob.serverId, default: (0, 0)].bytes -= result.replacedSize
        }
    }

    // MARK: Creates through file servers

    /// How long a client may keep placing new files by one `GET /placement` answer.
    static let placementTTLMs: Int64 = 1000

    /// `GET /placement`: the live servers and their loads, by which clients place new small files themselves.
    func placement() throws -> PlacementResponse {
        try state.withLock { state in
            let servers = loads(state, Clock.monotonicMs()).filter(\.isLive).sorted { $0.id < $1.id }.compactMap {
                load in
                state.servers[load.id].map {
                    PlacementServer(
                        fileServerId: load.id, url: $0.url, storedBytes: load.storedBytes,
                        inflightBytes: load.inflightBytes, files: load.files)
                }
            }
            guard !servers.isEmpty else { throw DFSError(503, .noFileServers, "no live file server can take new files") }
            return PlacementResponse(servers: servers, replicas: Int64(config.replicas), ttlMs: Self.placementTTLMs)
        }
    }

    /// `POST /ids`: a block of ids for the blobs a file server creates (reserved on disk before it is answered).
    func idBlock(count: Int64) throws -> IdBlockResponse {
        guard (1...Self.maxIdBlock).contains(count) else {
            throw DFSError.badRequest("count must be from 1 to \(Self.maxIdBlock)")
        }
        return try withState { state in
            IdBlockResponse(
                first: try state.meta.allocateIds(count: count), count: count, inlineMaxBytes: config.inlineMaxBytes)
        }
    }

    static let maxIdBlock: Int64 = 1 << 16
    /// The most creates one `POST /commits/batch` may carry.
    static let maxBatch = 1024

    /// `POST /commits/batch`: the creates a file server stored for its clients, committed in one transaction and
    /// one flush. Each is checked as a client's own commit would be, and also takes the path's write lock for its
    /// instant (as `POST /writes` with `lock: true` does), so a create is refused with 409 `lock_busy` while anyone
    /// else holds a lock on the path. Every presented receipt must be valid. The blobs of a refused create are
    /// queued for deletion.
    func commitBatch(_ items: [BatchCommitItem]) throws -> [BatchCommitOutcome] {
        var outcomes = [BatchCommitOutcome?](repeating: nil, count: items.count)
        var paths = [DFSPath?](repeating: nil, count: items.count)
        var taken: [LockInfo] = []
        defer {
            for lock in taken {
                locks.releaseWriteLock(path: lock.path, token: lock.token, clientId: lock.clientId)
            }
        }
        var inline = [Data?](repeating: nil, count: items.count)
        for (index, item) in items.enumerated() {
            do {
                let path = try checkedCommit(item.commit)
                guard item.commit.fileId == item.commit.version else {
                    throw DFSError.badRequest("a create's file_id and version are the same id")
                }
                inline[index] = try inlineData(of: item)
                taken.append(try locks.tryWriteLock(path: path.description, clientId: item.clientId))
                paths[index] = path
            } catch {
                outcomes[index] = Self.outcome(error)
            }
        }
        try withState { state in
            var done: [(Metadata.CommitResult, size: Int64, servers: [Int64])] = []
            try state.meta.inOneTransaction {
                for (index, item) in items.enumerated() {
                    let request = item.commit
                    let servers = Array(Set(request.receipts.map(\.fileServerId))).sorted()
                        .filter { state.servers[$0] != nil }
                    let confirmed = confirmedServers(request, among: servers)
                    guard let path = paths[index] else {
                        try state.meta.queueDeletions(
                            confirmed.map { BlobRef(fileId: request.fileId, version: request.version, serverId: $0) })
                        continue
                    }
                    do {
                        let result = try commitConfirmed(
                            request, path, confirmed: confirmed, of: request.receipts.count, inline: inline[index],
                            state)
                        done.append((result, request.size, confirmed))
                        // The copies are the confirmed servers: no query to read them back.
                        outcomes[index] = BatchCommitOutcome(
                            status: 201,
                            entry: Self.entryInfo(
                                result.row, path: path.description, name: path.name, replicaIds: confirmed,
                                servers: state.servers))
                    } catch {
                        outcomes[index] = Self.outcome(error)
                        try state.meta.queueDeletions(
                            confirmed.map { BlobRef(fileId: request.fileId, version: request.version, serverId: $0) })
                    }
                }
            }
            // Only once the transaction is in: its failure leaves the loads as they were.
            for (result, size, servers) in done { committed(result, size: size, servers: servers, &state) }
        }
        return outcomes.map { $0 ?? BatchCommitOutcome(status: 500, error: .init(code: "internal", message: "not committed")) }
    }

    /// The bytes of a create to keep in the metadata: those it brought, when they are the commit's (size and
    /// sha256; other bytes refuse the create) and within `inline_max_bytes` (beyond it they are not kept).
    /// A create whose blob is not yet durable (`blob_durable: false`) must bring its bytes, which are kept: they are
    /// what makes it durable. Beyond `inline_max_bytes` (lowered since the file server learnt it) it is refused with
    /// 412, for the file server to commit it again once its blob is durable.
    private func inlineData(of item: BatchCommitItem) throws -> Data? {
        guard item.blobDurable == false else { return try inlineData(item.data ?? item.commit.data, of: item.commit) }
        guard let data = item.data ?? item.commit.data, data.count <= BatchCommitItem.unflushedMaxBytes else {
            throw DFSError.badRequest(
                "a create whose blob is not yet durable must bring its bytes (data_base64, at most \(BatchCommitItem.unflushedMaxBytes))")
        }
        try verify(data, of: item.commit)
        guard Int64(data.count) <= config.inlineMaxBytes else {
            throw DFSError(
                412, .conflict,
                "the directory keeps at most \(config.inlineMaxBytes) bytes of a file (inline_max_bytes): commit once the blob is durable")
        }
        return data
    }

    /// The bytes a commit brought, to keep in the metadata: when they are the commit's (size and sha256; other
    /// bytes refuse it) and within `inline_max_bytes` (beyond it they are not kept).
    private func inlineData(_ data: Data?, of commit: CommitRequest) throws -> Data? {
        guard let data else { return nil }
        try verify(data, of: commit)
        return Int64(data.count) <= config.inlineMaxBytes ? data : nil
    }

    private func verify(_ data: Data, of commit: CommitRequest) throws {
        guard Int64(data.count) == commit.size, Data(SHA256.hash(data: data)).hexString == commit.sha256.lowercased()
        else {
            throw DFSError.badRequest("data_base64 does not hold the committed bytes (size and sha256 differ)")
        }
    }

    /// A create's refusal, as the client would have had it.
    private static func outcome(_ error: Error) -> BatchCommitOutcome {
        let known = error as? DFSError ?? DFSError(500, .internal, "the commit failed")
        return BatchCommitOutcome(
            status: known.status,
            error: ErrorBody.Detail(code: known.code.rawValue, message: known.message, holders: known.holders))
    }

    /// The load of every known server as placement sees it.
    private func loads(_ state: State, _ now: Int64) -> [ServerLoad] {
        state.servers.keys.map { id in
            ServerLoad(
                id: id, storedBytes: state.stored[id]?.bytes ?? 0, inflightBytes: state.inflight[id] ?? 0,
                files: state.stored[id]?.files ?? 0, isLive: liveness(state.lastHeartbeatMs[id] ?? 0, now) == .live)
        }
    }

    // MARK: Maintenance

    /// Blob deletions to carry out, with the URL and signed ticket for each.
    func pendingDeletions(limit: Int) throws -> [(BlobRef, url: String, ticket: String)] {
        try withState { state in
            let signer = secret.tickets
            let expiry = Clock.wallMs() + config.ticketTTLMs
            return try state.meta.pendingDeletions(limit: limit).compactMap { blob in
                guard let row = state.servers[blob.serverId] else { return nil }
                return (blob, row.url, signer.sign(.delete, fileId: blob.fileId, version: blob.version, expiresAtMs: expiry))
            }
        }
    }

    func deletionDone(_ blob: BlobRef) throws {
        try withState { try $0.meta.deletionDone(blob) }
    }

    /// Forgets uploads that were never committed within `abandoned_write_ms`.
    func expireAbandonedWrites() throws {
        try withState { state in
            let cutoff = Clock.wallMs() - config.abandonedWriteMs
            for (version, write) in state.openWrites where write.createdMs < cutoff {
                state.openWrites[version] = nil
                try state.meta.queueDeletions(
                    write.targets.map { BlobRef(fileId: write.fileId, version: version, serverId: $0) })
                for id in write.targets { state.inflight[id] = max(0, (state.inflight[id] ?? 0) - write.sizeHint) }
            }
        }
    }

    // MARK: Conversion

    /// `entryInfo` under the state lock, the copies read on the writer's connection.
    private func info(_ row: EntryRow, path: DFSPath, _ state: State) throws -> EntryInfo {
        var replicaIds: [Int64]?
        if let fileId = row.fileId, let version = row.version {
            replicaIds = try state.meta.replicas(fileId: fileId, version: version)
        }
        return Self.entryInfo(
            row, path: path.description, name: path.name, replicaIds: replicaIds, servers: state.servers)
    }

    /// An entry as answered, with the URLs of the servers holding copies; with nil `replicaIds` (a directory, or an
    /// entry of a listing) it carries neither replicas nor a sha256 (`stat` gives those).
    private static func entryInfo(
        _ row: EntryRow, path: String, name: String, replicaIds: [Int64]?, servers: [Int64: FileServerRow]
    ) -> EntryInfo {
        let replicas = replicaIds.map { ids in
            ids.compactMap { id in servers[id].map { Replica(fileServerId: id, url: $0.url) } }
        }
        return EntryInfo(
            path: path, name: name, type: row.isDir ? "dir" : "file", mtimeMs: row.mtimeMs, fileId: row.fileId,
            version: row.version, size: row.size, sha256: replicaIds == nil ? nil : row.sha256, replicas: replicas)
    }
}

/// Time sources: wall clock for timestamps users see, monotonic for liveness.
enum Clock {
    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
    static func monotonicMs() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }
}
