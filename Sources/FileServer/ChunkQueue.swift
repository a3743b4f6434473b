import Foundation
import Synchronization

/// A bounded queue of body chunks between the thread receiving an upload and the thread forwarding it.
///
/// The producer blocks while more than `capacity` bytes wait, so a slow reader slows the writer down (back-pressure)
/// and memory stays constant. Either side can end it: the producer with `close()` (end of body) or `fail()`
/// (abort), the reader with `readerDone()` (it stopped reading, successfully or not).
final class ChunkQueue: Sendable {
    private struct State {
        var chunks: [Data] = []
        var head = 0
        var bytes = 0
        var closed = false
        var failed = false
        var readerGone = false
    }

    /// Why `push` did not queue a chunk.
    enum PushOutcome {
        case queued
        /// The reader is gone, or the queue was failed: nothing more will be read.
        case readerGone
        /// The reader took nothing for the whole stall timeout.
        case stalled
    }

    /// The queue was failed by the producer: the reader must abort its transfer.
    struct Aborted: Error {}

    private let capacity: Int
    private let condition = NSCondition()
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Queues a chunk, waiting while the queue is full (at most until `stallDeadline`).
    func push(_ chunk: Data, stallDeadline: Date) -> PushOutcome {
        condition.lock()
        defer { condition.unlock() }
        while true {
            let outcome = state.withLock { state -> PushOutcome? in
                if state.readerGone || state.failed { return .readerGone }
                // One chunk always fits, so a chunk larger than the capacity cannot wait forever.
                guard state.bytes == 0 || state.bytes + chunk.count <= capacity else { return nil }
                state.chunks.append(chunk)
                state.bytes += chunk.count
                return .queued
            }
            if let outcome {
                condition.broadcast()
                return outcome
            }
            if !condition.wait(until: stallDeadline) { return .stalled }
        }
    }

    /// The next chunk; empty at the end of the body. Throws `Aborted` when the producer failed the queue.
    func pop() throws -> Data {
        condition.lock()
        defer { condition.unlock() }
        while true {
            let next = state.withLock { state -> Result<Data, Aborted>? in
                if state.failed { return .failure(Aborted()) }
                if state.head < state.chunks.count {
                    let chunk = state.chunks[state.head]
                    state.head += 1
                    state.bytes -= chunk.count
                    if state.head >= 64 || state.head == state.chunks.count {
                        state.chunks.removeFirst(state.head)
                        state.head = 0
                    }
                    return .success(chunk)
                }
                return state.closed ? .success(Data()) : nil
            }
            if let next {
                condition.broadcast()
                return try next.get()
            }
            condition.wait()
        }
    }

    /// The body is complete: the reader gets what is queued, then the end.
    func close() { update { $0.closed = true } }

    /// Aborts: the reader's next `pop` throws, and queued chunks are dropped.
    func fail() {
        update {
            $0.failed = true
            $0.chunks = []
            $0.head = 0
            $0.bytes = 0
        }
    }

    /// The reader stopped reading: further pushes return at once.
    func readerDone() {
        update {
            $0.readerGone = true
            $0.chunks = []
            $0.head = 0
            $0.bytes = 0
        }
    }

    private func update(_ change: (inout State) -> Void) {
        condition.lock()
        state.withLock { change(&$0) }
        condition.broadcast()
        condition.unlock()
    }
}
