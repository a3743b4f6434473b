import Foundation
import ServerKit

/// The bytes of small files the directory recently served (`GET /content`), in memory, by version.
///
/// A version's bytes never change (`inline_data` keeps them by version, which is unique in the cluster), so an
/// entry needs no invalidation: a changed or removed file simply names another version, or none. Which version a
/// path names still comes from the metadata (or from the `stat` cache while it is current). Like the page cache a
/// file server leans on, this saves reading the same bytes out of SQLite again and again: ~35% of the directory's
/// CPU under repeated small reads.
///
/// Bounded by `maxBytes` (the bytes kept, plus a fixed cost per entry); the oldest entries go first.
public final class InlineCache: Sendable {
    /// Bytes counted for an entry besides its data: its key, its slot in the order, the `Data`'s storage header.
    public static let entryOverhead = 128

    public let maxBytes: Int
    private let state: Locked<State>

    private struct Key: Hashable {
        var fileId: Int64
        var version: Int64
    }

    private struct State {
        var entries: [Key: Data] = [:]
        /// Keys in insertion order from `head` on (the slots before `head` are spent).
        var order: [Key] = []
        var head = 0
        var bytes = 0
    }

    public init(maxBytes: Int) {
        self.maxBytes = max(0, maxBytes)
        state = Locked(State())
    }

    /// The bytes kept for this version, if any.
    public func bytes(fileId: Int64, version: Int64) -> Data? {
        guard maxBytes > 0 else { return nil }
        return state.withLock { $0.entries[Key(fileId: fileId, version: version)] }
    }

    /// Keeps a version's bytes, evicting the oldest entries to stay within `maxBytes`. Data bigger than a quarter of
    /// the cache is not kept.
    public func keep(fileId: Int64, version: Int64, _ data: Data) {
        let cost = data.count + Self.entryOverhead
        guard maxBytes > 0, cost <= maxBytes / 4 else { return }
        let key = Key(fileId: fileId, version: version)
        state.withLock { state in
            guard state.entries.updateValue(data, forKey: key) == nil else { return }
            state.order.append(key)
            state.bytes += cost
            while state.bytes > maxBytes, state.head < state.order.count {
                let oldest = state.order[state.head]
                state.head += 1
                if let gone = state.entries.removeValue(forKey: oldest) {
                    state.bytes -= gone.count + Self.entryOverhead
                }
            }
            // Drop the spent slots once they are half of the order.
            if state.head > 1024, state.head * 2 > state.order.count {
                state.order.removeFirst(state.head)
                state.head = 0
            }
        }
    }

    /// How many versions and bytes (with the per-entry cost) are kept.
    public var usage: (entries: Int, bytes: Int) {
        state.withLock { ($0.entries.count, $0.bytes) }
    }
}
