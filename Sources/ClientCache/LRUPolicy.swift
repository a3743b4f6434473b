/// Which cache entries to evict: least recently used first, until the total fits the bound.
///
/// Pure: no I/O, no clock.
public enum LRUPolicy {
    public struct Entry: Equatable, Sendable {
        public var key: String
        public var size: Int64
        public var lastUsed: Int64
        public init(key: String, size: Int64, lastUsed: Int64) {
            self.key = key
            self.size = size
            self.lastUsed = lastUsed
        }
    }

    /// The keys to evict so that the remaining entries total at most `maxBytes`, oldest use first.
    /// Entries in `keep` (e.g. the one just inserted) are evicted last.
    public static func victims(_ entries: [Entry], maxBytes: Int64, keep: Set<String> = []) -> [String] {
        var total = entries.reduce(0) { $0 + $1.size }
        guard total > maxBytes else { return [] }
        let ordered = entries.sorted { a, b in
            let ka = keep.contains(a.key)
            let kb = keep.contains(b.key)
            if ka != kb { return !ka }
            if a.lastUsed != b.lastUsed { return a.lastUsed < b.lastUsed }
            return a.key < b.key
        }
        var victims: [String] = []
        for entry in ordered where total > maxBytes {
            victims.append(entry.key)
            total -= entry.size
        }
        return victims
    }
}
