import DFSCore
import DFSProtocol
import Foundation
import SQLite
import ServerKit

/// One namespace row.
struct EntryRow: Equatable, Sendable {
    var id: Int64
    var parent: Int64
    var name: String
    var isDir: Bool
    var mtimeMs: Int64
    var fileId: Int64?
    var version: Int64?
    var size: Int64?
    var sha256: String?

    static let columns = "id, parent, name, is_dir, mtime_ms, file_id, version, size, sha256"

    init(_ row: Row) {
        id = row.int(0) ?? 0
        parent = row.int(1) ?? 0
        name = row.text(2) ?? ""
        isDir = row.int(3) == 1
        mtimeMs = row.int(4) ?? 0
        fileId = row.int(5)
        version = row.int(6)
        size = row.int(7)
        sha256 = row.text(8)
    }
}

extension EntryRow {
    init(
        id: Int64, parent: Int64, name: String, isDir: Bool, mtimeMs: Int64, fileId: Int64?, version: Int64?,
        size: Int64?, sha256: String?
    ) {
        self.id = id
        self.parent = parent
        self.name = name
        self.isDir = isDir
        self.mtimeMs = mtimeMs
        self.fileId = fileId
        self.version = version
        self.size = size
        self.sha256 = sha256
    }
}

/// A blob copy: file id and version on one file server.
struct BlobRef: Hashable {
    var fileId: Int64
    var version: Int64
    var serverId: Int64
}

/// A file version, wherever it is stored.
struct BlobKey: Hashable {
    var fileId: Int64
    var version: Int64
}

/// A registered file server as stored.
struct FileServerRow {
    var id: Int64
    var url: String
    var capacityBytes: Int64
}

/// The durable metadata: namespace, file servers, clients, the id sequence and pending blob deletions. (Open
/// writes live in `Directory`'s memory: an upload is only worth a disk write once it is committed.)
///
/// Not thread-safe: `Directory` serialises all access (and waits for `durability` before answering a change).
/// Every method that changes several rows does so in one transaction, so a `kill -9` leaves either all or none of
/// an operation.
final class Metadata: NamespaceQueries {
    let db: Database
    /// Parent directories looked up by the commits of one `inOneTransaction` (a batch of creates mostly shares
    /// one): commits change files only, never a directory, so a lookup holds for the whole transaction.
    private var batchParents: [DFSPath: EntryRow]?
    /// Makes commits durable (group commit): see `Schema`.
    let durability: GroupFlush

    /// The next id to hand out, and the first one not yet reserved on disk.
    private var nextId: Int64
    private var reservedId: Int64
    /// Ids are reserved on disk this many at a time.
    static let idBlock: Int64 = 4096

    init(path: String) throws {
        db = try Schema.open(path: path)
        reservedId = try db.query("SELECT value FROM meta WHERE key = 'id_reserved'").first?.int(0) ?? 1
        nextId = reservedId
        guard let wal = db.walPath else { throw DFSError(500, .internal, "the metadata database is not in WAL mode") }
        // `Checkpointer` copies the log back in the background, not the commit that crosses the threshold; the
        // log is cut back to that size when the writer starts it over, so its size tells when one is due.
        try db.execute("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = \(Checkpointer.thresholdBytes)")
        durability = GroupFlush(path: wal, kind: .fdatasync)
        try upgradePersistedWrites()
    }

    // MARK: Ids

    /// A new file id or version: one sequence for both, handed out from memory and reserved on disk a block at a
    /// time, so a restart continues above the last reservation. No id is ever handed out twice, and versions only
    /// grow (a commit of an older version than the current one is refused).
    func allocateId() throws -> Int64 {
        if nextId >= reservedId {
            try db.run(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('id_reserved', ?)", [.integer(nextId + Self.idBlock)])
            reservedId = nextId + Self.idBlock
        }
        defer { nextId += 1 }
        return nextId
    }

    /// `count` consecutive new ids (a block leased to a file server for the files created through it): the first.
    func allocateIds(count: Int64) throws -> Int64 {
        if nextId + count > reservedId {
            let reserve = nextId + count + Self.idBlock
            try db.run("INSERT OR REPLACE INTO meta(key, value) VALUES ('id_reserved', ?)", [.integer(reserve)])
            reservedId = reserve
        }
        defer { nextId += count }
        return nextId
    }

    /// A database from before open writes moved to memory kept them in tables `writes` and `write_targets`, and
    /// took ids from SQLite sequences: continue above every id it used, and queue the blobs of its uncommitted
    /// uploads for deletion (they can no longer be committed).
    private func upgradePersistedWrites() throws {
        let tables = Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.text(0) })
        guard tables.contains("writes") || tables.contains("file_ids") else { return }
        try db.transaction {
            var highest = try db.query(
                "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name IN ('writes', 'file_ids')"
            ).first?.int(0) ?? 0
            highest = max(
                highest,
                try db.query("SELECT COALESCE(MAX(MAX(file_id, version)), 0) FROM entries WHERE file_id IS NOT NULL")
                    .first?.int(0) ?? 0)
            if tables.contains("writes"), tables.contains("write_targets") {
                let stale = try db.query(
                    "SELECT w.file_id, w.version, t.server_id FROM writes w JOIN write_targets t ON t.version = w.version")
                try queueDeletions(
                    stale.map { BlobRef(fileId: $0.int(0) ?? 0, version: $0.int(1) ?? 0, serverId: $0.int(2) ?? 0) })
            }
            try db.execute("DROP TABLE IF EXISTS writes; DROP TABLE IF EXISTS write_targets; DROP TABLE IF EXISTS file_ids")
            nextId = max(nextId, highest + 1)
            reservedId = nextId
        }
    }

    /// Rows changed since this connection opened (a change between two readings must be made durable).
    var totalChanges: Int64 { db.totalChanges }

    /// Counts directory starts; lock tokens of this run start above `epoch << 32`, so they exceed every earlier one.
    func nextEpoch() throws -> Int64 {
        try db.transaction {
            let current = try db.query("SELECT value FROM meta WHERE key = 'epoch'").first?.int(0) ?? 0
            try db.run("INSERT OR REPLACE INTO meta(key, value) VALUES ('epoch', ?)", [.integer(current + 1)])
            return current + 1
        }
    }

    // MARK: Clients and file servers

    func registerClient(nowMs: Int64) throws -> Int64 {
        try db.run("INSERT INTO clients(registered_ms) VALUES (?)", [.integer(nowMs)])
        return db.lastInsertRowID
    }

    /// Registers a new file server, or re-registers a known id with its (possibly new) URL.
    func registerFileServer(url: String, capacity: Int64, knownId: Int64?, nowMs: Int64) throws -> FileServerRow {
        if let knownId, try fileServer(knownId) != nil {
            try db.run(
                "UPDATE fileservers SET url = ?, capacity_bytes = ? WHERE id = ?",
                [.text(url), .integer(capacity), .integer(knownId)])
            return FileServerRow(id: knownId, url: url, capacityBytes: capacity)
        }
        try db.run(
            "INSERT INTO fileservers(url, capacity_bytes, registered_ms) VALUES (?, ?, ?)",
            [.text(url), .integer(capacity), .integer(nowMs)])
        return FileServerRow(id: db.lastInsertRowID, url: url, capacityBytes: capacity)
    }

    func fileServer(_ id: Int64) throws -> FileServerRow? {
        try fileServers().first { $0.id == id }
    }

    func fileServers() throws -> [FileServerRow] {
        try db.query("SELECT id, url, capacity_bytes FROM fileservers ORDER BY id").map {
            FileServerRow(id: $0.int(0) ?? 0, url: $0.text(1) ?? "", capacityBytes: $0.int(2) ?? 0)
        }
    }

    /// Committed files and bytes per file server.
    func storedLoad() throws -> [Int64: (files: Int64, bytes: Int64)] {
        let rows = try db.query(
            """
            SELECT r.server_id, COUNT(*), COALESCE(SUM(e.size), 0) FROM replicas r
            JOIN entries e ON e.file_id = r.file_id AND e.version = r.version GROUP BY r.server_id
            """)
        var load: [Int64: (files: Int64, bytes: Int64)] = [:]
        for row in rows { load[row.int(0) ?? 0] = (row.int(1) ?? 0, row.int(2) ?? 0) }
        return load
    }

    // MARK: Namespace changes

    func mkdir(_ path: DFSPath, parents: Bool, nowMs: Int64) throws -> EntryRow {
        try db.transaction {
            if let existing = try entry(at: path) {
                if existing.isDir && parents { return existing }
                throw DFSError.exists("\(path) already exists")
            }
            var current = try child(of: 0, named: "")!
            var walked = DFSPath.root
            for name in path.components {
                walked = try walked.appending(name)
                if let next = try child(of: current.id, named: name) {
                    guard next.isDir else { throw DFSError.notADirectory("\(walked) is not a directory") }
                    current = next
                    continue
                }
                guard parents || walked == path else {
                    throw DFSError.notFound("parent directory \(walked) does not exist (use -p to create it)")
                }
                try db.run(
                    "INSERT INTO entries(parent, name, is_dir, mtime_ms) VALUES (?, ?, 1, ?)",
                    [.integer(current.id), .text(name), .integer(nowMs)])
                current = try child(of: current.id, named: name)!
            }
            return current
        }
    }

    /// Removes an entry (a directory's whole subtree when `recursive`) and queues its blobs for deletion.
    /// - Returns: the entries removed, and the copies and bytes each server no longer holds.
    func remove(_ path: DFSPath, recursive: Bool) throws -> (removed: Int64, freed: [Int64: (files: Int64, bytes: Int64)]) {
        guard !path.isRoot else { throw DFSError.badRequest("the root directory cannot be removed") }
        return try db.transaction {
            guard let target = try entry(at: path) else { throw DFSError.notFound("\(path) does not exist") }
            var doomed = [target]
            if target.isDir {
                let subtree = try db.query(
                    """
                    WITH RECURSIVE sub(id) AS (SELECT id FROM entries WHERE parent = ?
                        UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent = sub.id)
                    SELECT \(EntryRow.columns) FROM entries WHERE id IN (SELECT id FROM sub)
                    """, [.integer(target.id)]
                ).map(EntryRow.init)
                if !subtree.isEmpty && !recursive {
                    throw DFSError.notEmpty("\(path) is a directory that is not empty (use -r to remove it all)")
                }
                doomed += subtree
            }
            var blobs: [BlobRef] = []
            var freed: [Int64: (files: Int64, bytes: Int64)] = [:]
            for row in doomed {
                if let fileId = row.fileId, let version = row.version {
                    for server in try replicas(fileId: fileId, version: version) {
                        blobs.append(BlobRef(fileId: fileId, version: version, serverId: server))
                        freed[server, default: (0, 0)].files += 1
                        freed[server, default: (0, 0)].bytes += row.size ?? 0
                    }
                    try db.run("DELETE FROM replicas WHERE file_id = ?", [.integer(fileId)])
                }
                try db.run("DELETE FROM entries WHERE id = ?", [.integer(row.id)])
            }
            try queueDeletions(blobs)
            return (Int64(doomed.count), freed)
        }
    }

    /// Renames `from` to `to`; into `to` when `to` is an existing directory. Atomic: one transaction.
    func move(from: DFSPath, to: DFSPath, nowMs: Int64) throws -> (EntryRow, DFSPath) {
        guard !from.isRoot else { throw DFSError.badRequest("the root directory cannot be moved") }
        return try db.transaction {
            guard let source = try entry(at: from) else { throw DFSError.notFound("\(from) does not exist") }
            var destination = to
            if let existing = try entry(at: to) {
                guard existing.isDir, existing.id != source.id else { throw DFSError.exists("\(to) already exists") }
                do {
                    destination = try to.appending(from.name)
                } catch {
                    throw DFSError.invalidPath((error as? PathError)?.message ?? "invalid destination path")
                }
                if try entry(at: destination) != nil { throw DFSError.exists("\(destination) already exists") }
            }
            if source.isDir && destination.isWithin(from) {
                throw DFSError.badRequest("cannot move \(from) into itself")
            }
            let parent = try parentDirectory(of: destination)
            try db.run(
                "UPDATE entries SET parent = ?, name = ?, mtime_ms = ? WHERE id = ?",
                [.integer(parent.id), .text(destination.name), .integer(nowMs), .integer(source.id)])
            return (try entry(at: destination)!, destination)
        }
    }

    // MARK: Writes

    /// Checks that `path` can take a new version, and gives the file id it will have (a new one for a new path)
    /// and its current version, if any.
    func prepareWrite(_ path: DFSPath) throws -> (fileId: Int64, base: Int64?) {
        // One walk to the parent, then one lookup of the name (not a second walk of the whole path).
        let parent = try parentDirectory(of: path)
        let existing = try child(of: parent.id, named: path.name)
        if let existing, existing.isDir { throw DFSError.isADirectory("\(path) is a directory") }
        return (try existing?.fileId ?? allocateId(), existing?.version)
    }

    /// What a commit did: the new row, and the replaced version's blobs (now queued for deletion) and size.
    typealias CommitResult = (row: EntryRow, replaced: [BlobRef], replacedSize: Int64)

    /// Runs `body` in one transaction: the changes inside (each in a savepoint of its own) reach the disk together.
    func inOneTransaction(_ body: () throws -> Void) throws {
        batchParents = [:]
        defer { batchParents = nil }
        try db.transaction(body)
    }

    /// Makes an uploaded version current. Returns the new row and the replaced version's blobs (now queued).
    /// - Parameter inline: the version's bytes, kept beside the entry (`inline_data`) for one-round-trip reads.
    func commit(
        _ path: DFSPath, fileId: Int64, version: Int64, size: Int64, sha256: String, baseVersion: Int64?,
        servers: [Int64], inline: Data? = nil, nowMs: Int64
    ) throws -> CommitResult {
        try db.transaction {
            let parent: EntryRow
            if let known = batchParents?[path.parent] {
                parent = known
            } else {
                parent = try parentDirectory(of: path)
                batchParents?[path.parent] = parent
            }
            let existing = try child(of: parent.id, named: path.name)
            if let existing, existing.isDir { throw DFSError.isADirectory("\(path) is a directory") }
            if let baseVersion, existing?.version != baseVersion {
                throw DFSError.conflict(
                    "\(path) changed since version \(baseVersion) (now \(existing?.version.map(String.init) ?? "absent")); nothing was overwritten"
                )
            }
            // Versions grow per file id. A create through a file server brings a new file id (its blob's), which
            // replaces the path's file whatever the old one's version, as an overwrite does in HDFS.
            if let current = existing?.version, existing?.fileId == fileId, current > version {
                throw DFSError.conflict("\(path) already has a newer version (\(current)) than \(version)")
            }
            var replaced: [BlobRef] = []
            let entryId: Int64
            if let existing, let oldId = existing.fileId, let oldVersion = existing.version {
                for server in try replicas(fileId: oldId, version: oldVersion) {
                    replaced.append(BlobRef(fileId: oldId, version: oldVersion, serverId: server))
                }
                try db.run(
                    "DELETE FROM replicas WHERE file_id = ? AND version = ?", [.integer(oldId), .integer(oldVersion)])
                try db.run(
                    """
                    UPDATE entries SET file_id = ?, version = ?, size = ?, sha256 = ?, mtime_ms = ? WHERE id = ?
                    """,
                    [.integer(fileId), .integer(version), .integer(size), .text(sha256), .integer(nowMs),
                     .integer(existing.id)])
                entryId = existing.id
            } else {
                try db.run(
                    """
                    INSERT INTO entries(parent, name, is_dir, mtime_ms, file_id, version, size, sha256)
                    VALUES (?, ?, 0, ?, ?, ?, ?, ?)
                    """,
                    [.integer(parent.id), .text(path.name), .integer(nowMs), .integer(fileId), .integer(version),
                     .integer(size), .text(sha256)])
                entryId = db.lastInsertRowID
            }
            for server in servers {
                try db.run(
                    "INSERT INTO replicas(file_id, version, server_id) VALUES (?, ?, ?)",
                    [.integer(fileId), .integer(version), .integer(server)])
            }
            if let inline {
                // After the entry's update: its trigger has dropped the replaced version's bytes, not these.
                try db.run(
                    "INSERT OR REPLACE INTO inline_data(version, file_id, data) VALUES (?, ?, ?)",
                    [.integer(version), .integer(fileId), .blob(inline)])
            }
            try queueDeletions(replaced)
            // The row as written (not read back: one query less per commit, and a batch holds many).
            let row = EntryRow(
                id: entryId, parent: parent.id, name: path.name, isDir: false, mtimeMs: nowMs,
                fileId: fileId, version: version, size: size, sha256: sha256)
            return (row, replaced, existing?.size ?? 0)
        }
    }

    // MARK: Replicas

    /// One current file version and the servers holding copies of it.
    /// Records a new copy, if the version is still current (a copy of a replaced version is queued for deletion).
    /// - Returns: the file's size when the copy is new, nil when it was known already or the version is gone.
    func addReplica(fileId: Int64, version: Int64, serverId: Int64) throws -> Int64? {
        try db.transaction {
            let current = try db.query(
                "SELECT size FROM entries WHERE file_id = ? AND version = ?", [.integer(fileId), .integer(version)])
            guard let entry = current.first else {
                try queueDeletions([BlobRef(fileId: fileId, version: version, serverId: serverId)])
                return nil
            }
            try db.run(
                "INSERT OR IGNORE INTO replicas(file_id, version, server_id) VALUES (?, ?, ?)",
                [.integer(fileId), .integer(version), .integer(serverId)])
            return db.changes > 0 ? entry.int(0) ?? 0 : nil
        }
    }

    /// Forgets a copy (bad, missing or extra); with `deleteBlob`, also queues its bytes for deletion.
    /// - Returns: the file's size when the copy was known, nil otherwise.
    func dropReplica(fileId: Int64, version: Int64, serverId: Int64, deleteBlob: Bool) throws -> Int64? {
        try db.transaction {
            let known = try db.query(
                """
                SELECT COALESCE(e.size, 0) FROM replicas r LEFT JOIN entries e ON e.file_id = r.file_id
                    AND e.version = r.version WHERE r.file_id = ? AND r.version = ? AND r.server_id = ?
                """, [.integer(fileId), .integer(version), .integer(serverId)])
            try db.run(
                "DELETE FROM replicas WHERE file_id = ? AND version = ? AND server_id = ?",
                [.integer(fileId), .integer(version), .integer(serverId)])
            if deleteBlob { try queueDeletions([BlobRef(fileId: fileId, version: version, serverId: serverId)]) }
            return known.first.map { $0.int(0) ?? 0 }
        }
    }

    /// The sha256 of a version if it is some file's current version.
    func currentChecksum(fileId: Int64, version: Int64) throws -> String? {
        try db.query(
            "SELECT sha256 FROM entries WHERE file_id = ? AND version = ?", [.integer(fileId), .integer(version)]
        ).first?.text(0)
    }

    /// Queues one blob for deletion.
    func queueDeletion(_ blob: BlobRef) throws {
        try queueDeletions([blob])
    }

    // MARK: Blob deletions

    func queueDeletions(_ blobs: [BlobRef]) throws {
        for blob in blobs {
            try db.run(
                "INSERT OR IGNORE INTO deletions(file_id, version, server_id) VALUES (?, ?, ?)",
                [.integer(blob.fileId), .integer(blob.version), .integer(blob.serverId)])
        }
    }

    func pendingDeletions(limit: Int) throws -> [BlobRef] {
        try db.query("SELECT file_id, version, server_id FROM deletions LIMIT ?", [.integer(Int64(limit))]).map {
            BlobRef(fileId: $0.int(0) ?? 0, version: $0.int(1) ?? 0, serverId: $0.int(2) ?? 0)
        }
    }

    func deletionDone(_ blob: BlobRef) throws {
        try db.run(
            "DELETE FROM deletions WHERE file_id = ? AND version = ? AND server_id = ?",
            [.integer(blob.fileId), .integer(blob.version), .integer(blob.serverId)])
    }
}

/// A current file version and the servers said to hold a copy.
struct FileCopies {
    var fileId: Int64
    var version: Int64
    var sha256: String
    var size: Int64
    var servers: [Int64]
}

/// The read-only namespace queries, on the writer's connection (`Metadata`) or a reader's (`MetadataReader`).
protocol NamespaceQueries {
    var db: Database { get }
}

extension NamespaceQueries {
    /// Every current file version with the servers said to hold a copy, one at a time as the rows are read
    /// (nothing is collected: the replication planner and `GET /replication` walk the whole namespace).
    func forEachFile(_ body: (FileCopies) -> Void) throws {
        try db.forEach(
            """
            SELECT e.file_id, e.version, e.sha256, e.size, group_concat(r.server_id) FROM entries e
            LEFT JOIN replicas r ON r.file_id = e.file_id AND r.version = e.version
            WHERE e.is_dir = 0 AND e.file_id IS NOT NULL GROUP BY e.id
            """
        ) { row in
            body(
                FileCopies(
                    fileId: row.int(0) ?? 0, version: row.int(1) ?? 0, sha256: row.text(2) ?? "",
                    size: row.int(3) ?? 0, servers: (row.text(4) ?? "").split(separator: ",").compactMap { Int64($0) }))
        }
    }

    /// The copies the metadata says `serverId` holds, with their checksums; with `bucket`, only those of that
    /// inventory bucket (see `InventoryDigest`). A scan of the server's copies: the inventory check runs it on a reader
    /// connection, outside the directory's lock.
    func copies(on serverId: Int64, bucket: (index: Int, of: Int)? = nil) throws -> [BlobKey: String] {
        var copies: [BlobKey: String] = [:]
        try forEachCopy(on: serverId) { fileId, version, sha256 in
            if let bucket, InventoryDigest.bucket(version: version, of: bucket.of) != bucket.index { return }
            copies[BlobKey(fileId: fileId, version: version)] = sha256
        }
        return copies
    }

    /// The digests of the copies `serverId` holds, in `buckets` buckets (see `InventoryDigest`), in one streamed pass.
    func copyDigests(on serverId: Int64, buckets: Int) throws -> [UInt64] {
        var digests = [UInt64](repeating: 0, count: buckets)
        try forEachCopy(on: serverId) { fileId, version, sha256 in
            InventoryDigest.add(fileId: fileId, version: version, sha256: sha256, to: &digests)
        }
        return digests
    }

    private func forEachCopy(on serverId: Int64, _ body: (Int64, Int64, String) -> Void) throws {
        try db.forEach(
            """
            SELECT r.file_id, r.version, COALESCE(e.sha256, '') FROM replicas r
            LEFT JOIN entries e ON e.file_id = r.file_id AND e.version = r.version WHERE r.server_id = ?
            """, [.integer(serverId)]
        ) { row in
            body(row.int(0) ?? 0, row.int(1) ?? 0, row.text(2) ?? "")
        }
    }

    func entry(at path: DFSPath) throws -> EntryRow? {
        guard !path.isRoot else { return try child(of: 0, named: "") }
        // Walk down from the root's well-known id: one indexed lookup per name.
        var parent = Schema.rootID
        var current: EntryRow?
        for name in path.components {
            if let dir = current {
                guard dir.isDir else { return nil }
                parent = dir.id
            }
            guard let next = try child(of: parent, named: name) else { return nil }
            current = next
        }
        return current
    }

    func child(of parent: Int64, named name: String) throws -> EntryRow? {
        try db.query(
            "SELECT \(EntryRow.columns) FROM entries WHERE parent = ? AND name = ?", [.integer(parent), .text(name)]
        ).first.map(EntryRow.init)
    }

    /// Up to `limit` children, in name order, after the name `after` (from the first when nil).
    func children(of parent: Int64, after: String? = nil, limit: Int = Int(Int32.max)) throws -> [EntryRow] {
        try db.query(
            "SELECT \(EntryRow.columns) FROM entries WHERE parent = ? AND name > ? ORDER BY name LIMIT ?",
            [.integer(parent), .text(after ?? ""), .integer(Int64(limit))]
        ).map(EntryRow.init)
    }

    /// `child(of:named:)` and the bytes the metadata keeps of its version, if any, in one query.
    func childWithInlineData(of parent: Int64, named name: String) throws -> (EntryRow?, Data?) {
        guard let row = try db.query(Self.childWithInlineDataSQL, [.integer(parent), .text(name)]).first else {
            return (nil, nil)
        }
        return (EntryRow(row), row.blob(9))
    }

    private static var childWithInlineDataSQL: String {
        """
        SELECT e.id, e.parent, e.name, e.is_dir, e.mtime_ms, e.file_id, e.version, e.size, e.sha256, i.data
        FROM entries e LEFT JOIN inline_data i ON i.version = e.version AND i.file_id = e.file_id
        WHERE e.parent = ? AND e.name = ?
        """
    }

    /// The bytes the metadata keeps of a file version (small files created through a file server), if any.
    func inlineData(fileId: Int64, version: Int64) throws -> Data? {
        try db.query(
            "SELECT data FROM inline_data WHERE version = ? AND file_id = ?", [.integer(version), .integer(fileId)]
        ).first?.blob(0)
    }

    func replicas(fileId: Int64, version: Int64) throws -> [Int64] {
        try db.query(
            "SELECT server_id FROM replicas WHERE file_id = ? AND version = ? ORDER BY server_id",
            [.integer(fileId), .integer(version)]
        ).compactMap { $0.int(0) }
    }

    /// The directory that must hold `path`'s entry: it has to exist and be a directory.
    func parentDirectory(of path: DFSPath) throws -> EntryRow {
        guard let parent = try entry(at: path.parent) else {
            throw DFSError.notFound("parent directory \(path.parent) does not exist")
        }
        guard parent.isDir else { throw DFSError.notADirectory("\(path.parent) is not a directory") }
        return parent
    }
}

/// A read-only connection for lookups outside `Directory`'s lock (`stat`, `ls`): SQLite's WAL lets readers run
/// beside the writer, each seeing the last commit. `snapshot` keeps several queries on one commit.
final class MetadataReader: NamespaceQueries {
    let db: Database

    init(path: String) throws {
        db = try Database(path: path)
        // A small page cache each (the pages are in the kernel's cache anyway): one reader per worker thread with
        // SQLite's default 2 MB each added ~10 MB to the directory's resident memory.
        try db.execute("PRAGMA query_only = ON; PRAGMA cache_size = -256")
    }

    /// Runs `body` in one read transaction: every query in it sees the same commit.
    func snapshot<T>(_ body: () throws -> T) throws -> T {
        // Prepared once and kept (`run` caches statements), unlike `execute`, which parses its text every time.
        try db.run("BEGIN")
        defer { try? db.run("COMMIT") }
        return try body()
    }
}
