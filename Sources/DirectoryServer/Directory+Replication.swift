import Curl
import DFSCore
import DFSProtocol
import Foundation
import ServerKit

/// Keeping `replicas` good copies of every file: planning copies, recording them, dropping extras and bad copies.
extension Directory {
    /// A copy to make: from a server that holds the version to one that does not.
    struct CopyJob {
        var fileId: Int64
        var version: Int64
        var sha256: String
        var size: Int64
        var source: Int64
        var sourceURL: String
        var target: Int64
        var targetURL: String
    }

    /// A copy beyond `replicas` (typically on a server that came back after its files were re-replicated).
    struct ExtraCopy {
        var fileId: Int64
        var version: Int64
        var serverId: Int64
    }

    /// How many copies files can have now: `replicas`, capped by the live servers.
    func effectiveReplicas(_ state: State, now: Int64) -> Int {
        let live = state.servers.keys.filter { liveness(state.lastHeartbeatMs[$0] ?? 0, now) == .live }.count
        return min(config.replicas, live)
    }

    /// What to do next: copies to make (at most `limit`, none already in flight) and extra copies to drop.
    ///
    /// The decision to scan and a snapshot of the servers are taken under the lock; the scan itself streams every
    /// file on a reader connection, outside it; the chosen copies are then registered under the lock again (a copy
    /// that completes or is dropped meanwhile is checked when it is recorded).
    func replicationPlan(limit: Int) throws -> (jobs: [CopyJob], extras: [ExtraCopy]) {
        struct Snapshot {
            var want: Int
            var health: [Int64: Liveness]
            var stored: [Int64: (files: Int64, bytes: Int64)]
            var inflight: [Int64: Int64]
            var urls: [Int64: String]
            var replicating: Set<String>
        }
        let due = state.withLock { state -> Snapshot? in
            let now = Clock.monotonicMs()
            let health = state.servers.keys.reduce(into: [Int64: Liveness]()) {
                $0[$1] = liveness(state.lastHeartbeatMs[$1] ?? 0, now)
            }
            if !state.replicationDirty, state.plannedLiveness == health, now < state.nextFullPlanMs { return nil }
            state.replicationDirty = false
            state.plannedLiveness = nil
            state.nextFullPlanMs = now + config.inventoryIntervalMs
            return Snapshot(
                want: effectiveReplicas(state, now: now), health: health, stored: state.stored, inflight: state.inflight,
                urls: state.servers.mapValues(\.url), replicating: Set(state.replicating.keys))
        }
        guard let snapshot = due else { return ([], []) }
        var jobs: [CopyJob] = []
        var extras: [ExtraCopy] = []
        var planned: [Int64: Int64] = [:]
        try reading { reader in
            try reader.forEachFile { file in
                // A dead server's copies do not count; a stale one's still do (it may just be slow).
                let holders = file.servers.filter { (snapshot.health[$0] ?? .dead) != .dead }
                if holders.count > config.replicas {
                    // Keep the copies on the least loaded servers; drop the rest.
                    let ranked = holders.sorted { (snapshot.stored[$0]?.bytes ?? 0) < (snapshot.stored[$1]?.bytes ?? 0) }
                    for server in ranked.dropFirst(config.replicas) {
                        extras.append(ExtraCopy(fileId: file.fileId, version: file.version, serverId: server))
                    }
                    return
                }
                guard holders.count < snapshot.want, jobs.count < limit,
                    !snapshot.replicating.contains("\(file.fileId).\(file.version)"),
                    let source = holders.first(where: { snapshot.health[$0] == .live }) ?? holders.first,
                    let sourceURL = snapshot.urls[source]
                else { return }
                let candidates = snapshot.health.keys.filter { !file.servers.contains($0) && snapshot.health[$0] == .live }
                    .map { id in
                        ServerLoad(
                            id: id, storedBytes: (snapshot.stored[id]?.bytes ?? 0) + (planned[id] ?? 0),
                            inflightBytes: snapshot.inflight[id] ?? 0, files: snapshot.stored[id]?.files ?? 0,
                            isLive: true)
                    }
                guard let target = Placement.choose(from: candidates, count: 1).first,
                    let targetURL = snapshot.urls[target]
                else { return }
                planned[target, default: 0] += file.size
                jobs.append(
                    CopyJob(
                        fileId: file.fileId, version: file.version, sha256: file.sha256, size: file.size,
                        source: source, sourceURL: sourceURL, target: target, targetURL: targetURL))
            }
        }
        return state.withLock { state in
            // Another pass may have taken a job meanwhile: it stays with that pass.
            let taken = jobs.filter { state.replicating["\($0.fileId).\($0.version)"] == nil }
            for job in taken {
                state.replicating["\(job.fileId).\(job.version)"] = ReplicationTask(
                    fileId: job.fileId, version: job.version, fromFileServerId: job.source, toFileServerId: job.target)
            }
            // Nothing to do: skip the scan until something changes. Jobs mark the state dirty when they finish; a
            // plan cut short by `limit` goes on at the next pass.
            if jobs.isEmpty && extras.isEmpty {
                state.plannedLiveness = snapshot.health
            } else if jobs.count >= limit {
                state.replicationDirty = true
            }
            return (taken, extras)
        }
    }

    /// Records the outcome of a copy job; `result` is the target's answer when it succeeded.
    func copyFinished(_ job: CopyJob, result: UploadResult?) throws {
        try withState { state in
            state.replicating["\(job.fileId).\(job.version)"] = nil
            state.replicationDirty = true
            guard let result else { return }
            let detail = "\(job.target):\(job.size):\(job.sha256)"
            guard result.fileServerId == job.target, result.sha256 == job.sha256,
                secret.tickets.verify(
                    result.receipt, .stored, fileId: job.fileId, version: job.version, detail: detail,
                    nowMs: Clock.wallMs())
            else {
                logger.warning("file server \(job.target) answered a copy of \(job.fileId).\(job.version) without a valid receipt")
                return
            }
            if let size = try state.meta.addReplica(fileId: job.fileId, version: job.version, serverId: job.target) {
                state.stored[job.target, default: (0, 0)].files += 1
                state.stored[job.target, default: (0, 0)].bytes += size
                state.copiesMade += 1
            }
        }
    }

    /// Drops a copy: an extra one, or one found bad or missing (then `deleteBlob` says whether bytes remain).
    func dropCopy(fileId: Int64, version: Int64, serverId: Int64, deleteBlob: Bool) throws {
        try withState { state in
            guard
                let size = try state.meta.dropReplica(
                    fileId: fileId, version: version, serverId: serverId, deleteBlob: deleteBlob)
            else { return }
            state.replicationDirty = true
            state.stored[serverId, default: (0, 0)].files -= 1
            state.stored[serverId, default: (0, 0)].bytes -= size
            state.copiesDropped += 1
        }
    }

    /// `POST /reports`: a file server (scrubber) or a client (read failover) found a copy bad or missing.
    ///
    /// - Parameter verified: the report comes from the file server itself. Otherwise the claim is checked with
    ///   that file server (`POST /verify`) and only a confirmed problem drops the copy, so a client cannot make the
    ///   directory forget good copies.
    func report(_ problem: ProblemReport, verified: Bool) throws {
        guard ["corrupt", "missing", "unreachable"].contains(problem.problem) else {
            throw DFSError.badRequest("problem must be corrupt, missing or unreachable")
        }
        // An unreachable server is the heartbeats' business: its copies stop counting once it is dead.
        guard problem.problem != "unreachable" else { return }
        var confirmed = problem.problem
        if !verified {
            guard let url = state.withLock({ $0.servers[problem.fileServerId]?.url }),
                let state = checkWithFileServer(url: url, fileId: problem.fileId, version: problem.version),
                state != "ok"
            else { return }
            confirmed = state
        }
        logger.warning(
            "file server \(problem.fileServerId) has a \(confirmed) copy of \(problem.fileId).\(problem.version)")
        // The file server quarantined a corrupt blob itself; nothing is left to delete.
        try dropCopy(fileId: problem.fileId, version: problem.version, serverId: problem.fileServerId, deleteBlob: false)
    }

    /// Asks a file server to re-read one blob now: `ok`, `missing` or `corrupt`; nil when it cannot be asked.
    private func checkWithFileServer(url: String, fileId: Int64, version: Int64) -> String? {
        let client = HTTPClient(connectTimeout: 2, timeout: 60, caFile: config.server.caFile)
        guard let body = try? WireJSON.encode(VerifyRequest(fileId: fileId, version: version)),
            let response = try? client.send(
                method: "POST", url: url + "/verify",
                headers: [
                    HTTPHeader("Content-Type", "application/json"), HTTPHeader(ClusterSecret.header, secret.token),
                ], body: .data(body)),
            response.status == 200
        else { return nil }
        return (try? WireJSON.decode(VerifyResult.self, from: response.body))?.state
    }

    /// `GET /replication`: the counting walks every file on a reader connection, outside the lock.
    func replicationStatus() throws -> ReplicationStatus {
        let (want, notDead) = state.withLock { state -> (Int, Set<Int64>) in
            let now = Clock.monotonicMs()
            let notDead = Set(state.servers.keys.filter { liveness(state.lastHeartbeatMs[$0] ?? 0, now) != .dead })
            return (effectiveReplicas(state, now: now), notDead)
        }
        var under: [UnderReplicatedFile] = []
        try reading { reader in
            try reader.forEachFile { file in
                let have = file.servers.filter { notDead.contains($0) }.count
                if have < want {
                    under.append(UnderReplicatedFile(fileId: file.fileId, version: file.version, have: have, want: want))
                }
            }
        }
        return state.withLock { state in
            ReplicationStatus(
                replicas: config.replicas, effectiveReplicas: want, underReplicated: under,
                inFlight: state.replicating.values.sorted { ($0.fileId, $0.version) < ($1.fileId, $1.version) },
                copiesMade: state.copiesMade, copiesDropped: state.copiesDropped)
        }
    }
}

/// Reconciling what file servers hold with what the metadata says.
extension Directory {
    /// The copies the metadata lists for one server (only those of one inventory bucket, with `bucket`).
    func copies(on serverId: Int64, bucket: (index: Int, of: Int)? = nil) throws -> [BlobKey: String] {
        try reading { try $0.copies(on: serverId, bucket: bucket) }
    }

    /// The digests of the copies the metadata lists for one server (see `InventoryDigest`).
    func copyDigests(on serverId: Int64, buckets: Int) throws -> [UInt64] {
        try reading { try $0.copyDigests(on: serverId, buckets: buckets) }
    }

    /// A bucket whose digests agree holds no orphans: forgets the candidates found in it before.
    func forgetOrphanCandidates(serverId: Int64, outside mismatched: Set<Int>, of buckets: Int) {
        state.withLock { state in
            state.orphansSince[serverId] = state.orphansSince[serverId]?.filter {
                mismatched.contains(InventoryDigest.bucket(version: $0.key.version, of: buckets))
            }
        }
    }

    /// Live servers whose inventory is due: every one every `inventory_interval_ms`, and any that just registered.
    func inventoryDue(everyone: Bool) -> [(id: Int64, url: String)] {
        state.withLock { state in
            let now = Clock.monotonicMs()
            let due = state.servers.values.filter { row in
                (everyone || state.inventoryDue.contains(row.id)) && state.heardFrom.contains(row.id)
                    && liveness(state.lastHeartbeatMs[row.id] ?? 0, now) == .live
            }
            for row in due { state.inventoryDue.remove(row.id) }
            return due.map { ($0.id, $0.url) }
        }
    }

    /// Compares a server's inventory with the metadata: copies it lost are forgotten (and re-replicated), copies
    /// with the wrong bytes are dropped, and blobs nothing points to are deleted once they stayed orphans for
    /// `orphan_grace_ms` (an upload that never committed, a file removed while the server was away).
    ///
    /// - Parameters:
    ///   - before: the copies the metadata listed for the server *before* its inventory was asked for; only those
    ///     can be missing (a copy committed meanwhile is simply newer than the inventory).
    ///   - bucket: when set, `before` and `blobs` are one inventory bucket's, and only that bucket is compared.
    func reconcile(
        serverId: Int64, before: [BlobKey: String], blobs: [InventoryBlob], bucket: (index: Int, of: Int)? = nil
    ) throws {
        let held = Dictionary(blobs.map { (BlobKey(fileId: $0.fileId, version: $0.version), $0.sha256) }) { a, _ in a }
        let inBucket = { (key: BlobKey) in
            bucket.map { InventoryDigest.bucket(version: key.version, of: $0.of) == $0.index } ?? true
        }
        // Read outside the lock (a scan of the server's copies). A copy committed since is in `held` but not in
        // `known`: it becomes an orphan candidate at most, which is only deleted after `orphan_grace_ms` and is
        // dropped from the candidates at the next pass, once `known` has it.
        let known = try copies(on: serverId, bucket: bucket)
        let (missing, wrong, orphans) = try withState { state -> ([BlobKey], [BlobKey], [BlobKey]) in
            let open = Set(state.openWrites.map { BlobKey(fileId: $0.value.fileId, version: $0.key) }.filter(inBucket))
            let missing = before.keys.filter { held[$0] == nil && known[$0] != nil }
            let wrong = before.compactMap { key, sha in
                held[key].map { $0 != sha && !sha.isEmpty ? key : nil } ?? nil
            }
            let now = Clock.monotonicMs()
            var since = state.orphansSince[serverId] ?? [:]
            var candidates = Set(held.keys).subtracting(known.keys).subtracting(open)
            // A blob that is exactly a current version (same checksum) is a good copy, not an orphan: adopt it.
            for key in candidates {
                guard let sha = try state.meta.currentChecksum(fileId: key.fileId, version: key.version),
                    sha == held[key]
                else { continue }
                if let size = try state.meta.addReplica(fileId: key.fileId, version: key.version, serverId: serverId) {
                    candidates.remove(key)
                    state.stored[serverId, default: (0, 0)].files += 1
                    state.stored[serverId, default: (0, 0)].bytes += size
                    state.replicationDirty = true
                }
            }
            since = since.filter { !inBucket($0.key) || candidates.contains($0.key) }
            for key in candidates where since[key] == nil { since[key] = now }
            let expired = since.filter { now - $0.value >= config.orphanGraceMs }.map(\.key)
            for key in expired { since[key] = nil }
            state.orphansSince[serverId] = since
            return (missing, wrong, expired)
        }
        for key in missing {
            logger.warning("file server \(serverId) lost its copy of \(key.fileId).\(key.version)")
            try dropCopy(fileId: key.fileId, version: key.version, serverId: serverId, deleteBlob: false)
        }
        for key in wrong {
            try dropCopy(fileId: key.fileId, version: key.version, serverId: serverId, deleteBlob: true)
        }
        try withState { state in
            for key in orphans {
                try state.meta.queueDeletion(BlobRef(fileId: key.fileId, version: key.version, serverId: serverId))
            }
        }
    }
}
