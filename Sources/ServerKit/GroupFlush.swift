import CLinux
import Foundation
import Glibc
import Synchronization

/// Group commit for one file or directory: many writers, few flushes.
///
/// A writer makes its change (a WAL commit, a rename into a directory), takes a ticket with `changed()`, and calls
/// `waitDurable(ticket)` before acknowledging. That returns once an `fsync`/`fdatasync` of the path that *began
/// after* the change has finished. Writers waiting at the same time share one flush: while one runs, later tickets
/// queue up and the next flush covers them all, so a burst of N changes costs about two flushes instead of N, and
/// no lock is held across a disk flush.
///
/// ```swift
/// let wal = GroupFlush(path: db.walPath, kind: .fdatasync)
/// let ticket = try lock.withLock { try db.run(...); return wal.changed() }
/// try wal.waitDurable(ticket)          // then answer the client
/// ```
public final class GroupFlush: Sendable {
    private struct State {
        var fd: Int32 = -1
        /// Changes noted so far, and how many of them are known durable.
        var noted: UInt64 = 0
        var durable: UInt64 = 0
        var flushing = false
        var flushes: UInt64 = 0
        /// The last failed flush: every ticket up to `upTo` gets its error.
        var failure: (upTo: UInt64, message: String)?
    }

    /// A flush failed: the change may be lost if the machine loses power.
    public struct FlushError: Error, CustomStringConvertible {
        public let description: String
    }

    /// How a flush makes the changes durable.
    public enum Kind: Sendable {
        /// `fsync` of the path (a directory after renames into it).
        case fsync
        /// `fdatasync` of the path (enough for a file's appended bytes, such as a WAL).
        case fdatasync
        /// `syncfs`: every dirty page and inode of the path's file system, then one device flush. For many new
        /// files at once (their bytes, inodes and directory entries in one pass) instead of an fsync each.
        case syncfs
    }

    private let path: String
    private let kind: Kind
    private let condition = NSCondition()
    private let state = Locked(State())

    /// - Parameters:
    ///   - path: the file or directory to flush; opened read-only on first use (it must exist by then).
    ///   - kind: what a flush runs.
    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    deinit {
        let fd = state.withLock { $0.fd }
        if fd >= 0 { close(fd) }
    }

    /// How many flushes ran (each covering every change noted before it began).
    public var flushCount: UInt64 { state.withLock { $0.flushes } }

    /// Notes a change that has just been made; the ticket for `waitDurable`.
    public func changed() -> UInt64 {
        state.withLock { state in
            state.noted += 1
            return state.noted
        }
    }

    /// Returns once change `ticket` (and every change noted before it) is on disk.
    /// - Throws: `FlushError` if the flush failed.
    public func waitDurable(_ ticket: UInt64) throws(FlushError) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            enum Step { case done, failed(String), wait, lead(UInt64, Int32) }
            let step = state.withLock { state -> Step in
                if state.durable >= ticket { return .done }
                if let failure = state.failure, failure.upTo >= ticket { return .failed(failure.message) }
                if state.flushing { return .wait }
                state.flushing = true
                return .lead(state.noted, state.fd)
            }
            switch step {
            case .done: return
            case .failed(let message): throw FlushError(description: message)
            case .wait: condition.wait()
            case .lead(let target, let knownFd):
                // Flush without holding the condition's lock: changes noted meanwhile wait for the next flush.
                condition.unlock()
                let (fd, error) = flush(knownFd)
                condition.lock()
                state.withLock { state in
                    state.fd = fd
                    state.flushing = false
                    state.flushes += 1
                    if let error {
                        state.failure = (target, error)
                    } else {
                        state.durable = max(state.durable, target)
                    }
                }
                condition.broadcast()
            }
        }
    }

    /// Runs on the one thread leading a flush.
    private func flush(_ knownFd: Int32) -> (Int32, String?) {
        var fd = knownFd
        if fd < 0 {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return (fd, "cannot open \(path) to flush it: errno \(errno)") }
        }
        let result: Int32
        switch kind {
        case .fsync: result = fsync(fd)
        case .fdatasync: result = fdatasync(fd)
        case .syncfs: result = dfs_syncfs(fd)
        }
        guard result == 0 else { return (fd, "flushing \(path) failed: errno \(errno)") }
        return (fd, nil)
    }
}
