import Foundation
import Logging
import SQLite
import ServerKit

/// Copies the metadata's write-ahead log back into the database in the background: a PASSIVE checkpoint, on a
/// connection of its own, whenever the log has grown past `thresholdBytes`.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so that commit copied ~1000
/// pages and fsynced the database file while holding the directory's lock, and every create of the moment waited for
/// it (9% of the directory's CPU on small creates, all on the commit path). A PASSIVE checkpoint never blocks the
/// writer or the readers; the writer starts the log over once a checkpoint has caught up with it.
final class Checkpointer: Sendable {
    /// The log size past which a checkpoint runs (SQLite's default is 1000 pages: ~4 MiB).
    static let thresholdBytes: Int64 = 4 << 20
    /// How often the log's size is looked at.
    static let intervalMs = 50

    private let databasePath: String
    private let walPath: String
    private let logger: Logger
    private let thread = BackgroundThread(name: "dfs-checkpoint")

    init(databasePath: String, walPath: String, logger: Logger) {
        self.databasePath = databasePath
        self.walPath = walPath
        self.logger = logger
    }

    func start() { thread.start { [self] in run() } }

    func stop() { thread.stop() }

    private func run() {
        var db: Database?
        while !thread.isStopped {
            thread.pause(ms: Self.intervalMs)
            guard walBytes() > Self.thresholdBytes else { continue }
            do {
                if db == nil { db = try Database(path: databasePath) }
                _ = try db?.query("PRAGMA wal_checkpoint(PASSIVE)")
            } catch {
                logger.warning("checkpoint of the metadata log failed: \(error)")
                db = nil
            }
        }
    }

    private func walBytes() -> Int64 {
        var status = stat()
        guard stat(walPath, &status) == 0 else { return 0 }
        return Int64(status.st_size)
    }
}
