import Curl
import DFSProtocol
import Foundation
import Logging
import ServerKit
import Synchronization

/// What the scrubber has done, for `GET /scrub`.
final class ScrubCounters: Sendable {
    private struct Counts {
        var passes: Int64 = 0
        var checked: Int64 = 0
        var corrupt: Int64 = 0
        var lastPassEnd: ContinuousClock.Instant?
    }

    private let counts = Mutex(Counts())

    func checked() { counts.withLock { $0.checked += 1 } }
    func corrupt() { counts.withLock { $0.corrupt += 1 } }
    func passEnded() {
        counts.withLock {
            $0.passes += 1
            $0.lastPassEnd = .now
        }
    }

    var status: ScrubStatus {
        counts.withLock { counts in
            let ago = counts.lastPassEnd.map { end -> Int64 in
                let elapsed = ContinuousClock.now - end
                return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
            }
            return ScrubStatus(
                passes: counts.passes, blobsChecked: counts.checked, corruptFound: counts.corrupt, lastPassMsAgo: ago)
        }
    }
}

/// Re-reads stored blobs every `scrub_interval_ms`, moves the ones whose bytes no longer match their checksum to
/// `corrupt/`, and reports each to the directory (`POST /reports`) so it can be copied again from a good replica.
///
/// A pass reads at most `maxBytesPerPass` bytes or `maxBlobsPerPass` blobs; the next pass resumes after the last
/// blob checked, so a large store is covered over several passes. Stopping interrupts a pass within one 1 MiB read.
final class Scrubber: Sendable {
    static let maxBytesPerPass: Int64 = 1 << 30
    static let maxBlobsPerPass = 10_000
    /// Unsent reports kept for retry at most; beyond, the oldest is dropped with a warning (the blob itself stays in
    /// `corrupt/`).
    static let maxPendingReports = 10_000

    private let intervalMs: Int64
    private let directory: String
    private let secret: ClusterSecret
    private let caFile: String?
    private let service: FileService
    private let logger: Logger
    private let stopped = Mutex(false)
    private let running = Mutex(false)
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    init(config: FileServerConfig, service: FileService, logger: Logger) {
        intervalMs = config.scrubIntervalMs
        directory = config.directory
        secret = service.secret
        caFile = config.server.caFile
        self.service = service
        self.logger = logger
    }

    /// Starts the background thread, unless `scrub_interval_ms` is 0.
    func start() {
        guard intervalMs > 0 else { return }
        running.withLock { $0 = true }
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "dfs-scrubber"
        thread.start()
    }

    /// Stops the thread (promptly: a pass in progress ends at its next read) and waits for it.
    func stop() {
        guard running.withLock({ $0 }) else { return }
        stopped.withLock { $0 = true }
        wake.signal()
        done.wait()
        running.withLock { $0 = false }
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    private func run() {
        let client = HTTPClient(connectTimeout: 2, timeout: 5, caFile: caFile)
        var cursor: BlobName?
        var pending: [BlobName] = []
        while true {
            _ = wake.wait(timeout: .now() + .milliseconds(Int(min(intervalMs, Int64(Int32.max)))))
            if isStopped { return }
            cursor = pass(after: cursor, corrupt: &pending)
            if isStopped { return }
            report(&pending, client)
        }
    }

    /// Checks blobs after `cursor` within the budget; returns where the next pass resumes (nil: from the start).
    private func pass(after cursor: BlobName?, corrupt: inout [BlobName]) -> BlobName? {
        let blobs = service.store.inventory()
        let start = cursor.map { last in blobs.firstIndex { $0.0 > last } ?? blobs.count } ?? 0
        var bytes: Int64 = 0
        var count = 0
        var last: BlobName?
        for (name, info) in blobs[start...] {
            if count >= Self.maxBlobsPerPass || bytes >= Self.maxBytesPerPass { break }
            guard let good = service.store.verify(name, cancelled: { isStopped }) else {
                if isStopped { return last }
                continue  // deleted meanwhile, or still being installed
            }
            count += 1
            bytes += info.size
            last = name
            service.scrubber.checked()
            if !good {
                service.store.quarantine(name)
                service.scrubber.corrupt()
                logger.warning("blob \(name) does not match its sha256 \(info.sha256): moved to corrupt/")
                if corrupt.count >= Self.maxPendingReports {
                    logger.warning("too many unsent corruption reports: dropping the one for \(corrupt.removeFirst())")
                }
                corrupt.append(name)
            }
        }
        service.scrubber.passEnded()
        // Reached the end of the store: the next pass starts over.
        return last == blobs.last?.0 || last == nil ? nil : last
    }

    /// Tells the directory about corrupt blobs; what it does not acknowledge is tried again after the next pass.
    private func report(_ pending: inout [BlobName], _ client: HTTPClient) {
        guard !pending.isEmpty, let serverId = service.currentIdentity?.fileServerId else { return }
        let headers = [
            Curl.HTTPHeader("Content-Type", "application/json"), Curl.HTTPHeader(ClusterSecret.header, secret.token),
        ]
        var unsent: [BlobName] = []
        for (index, name) in pending.enumerated() {
            let body = ProblemReport(
                fileId: name.fileId, version: name.version, fileServerId: serverId, problem: ProblemReport.corrupt)
            do {
                let response = try client.send(
                    method: "POST", url: directory + "/reports", headers: headers, body: .data(try WireJSON.encode(body)))
                if !response.isSuccess {
                    logger.warning("the directory answered \(response.status) to the report of corrupt blob \(name)")
                    unsent.append(name)
                }
            } catch {
                logger.warning("cannot report corrupt blob \(name) to the directory at \(directory): \(error)")
                unsent.append(contentsOf: pending[index...])
                break
            }
        }
        pending = unsent
    }
}
