import Crypto
import DFSProtocol
import Foundation
import Synchronization

/// Computes a sha256 on its own thread, so hashing overlaps with the transfer instead of adding to it.
///
/// Chunks are queued (at most 16 at a time: the producer waits when the hasher falls behind, so memory stays
/// bounded). Call `finish()` exactly once — also on error paths, or the thread waits forever.
final class BackgroundHasher: Sendable {
    private let queue = Mutex<[Data?]>([])
    private let items = DispatchSemaphore(value: 0)
    private let slots = DispatchSemaphore(value: 16)
    private let digest = Mutex<String?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init() {
        Thread.detachNewThread { [self] in run() }
    }

    /// Queues the next chunk.
    func update(_ data: Data) {
        slots.wait()
        queue.withLock { $0.append(data) }
        items.signal()
    }

    /// Ends the input and returns the hex digest of everything queued.
    func finish() -> String {
        queue.withLock { $0.append(nil) }
        items.signal()
        done.wait()
        return digest.withLock { $0 } ?? ""
    }

    private func run() {
        var hasher = SHA256()
        while true {
            items.wait()
            let next = queue.withLock { $0.removeFirst() }
            slots.signal()
            guard let chunk = next else { break }
            hasher.update(data: chunk)
        }
        let hex = Data(hasher.finalize()).hexString
        digest.withLock { $0 = hex }
        done.signal()
    }
}
