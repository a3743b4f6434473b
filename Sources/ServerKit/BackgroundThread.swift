import Foundation
import Synchronization

/// A named thread that runs one loop until `stop()`: the loop checks `isStopped`, and waits between passes with
/// `pause(ms:)`, which `wake()` (or `stop()`) ends early. `stop()` returns once the loop has returned.
///
/// The servers' background work (heartbeats, maintenance, the lock timer, checkpoints) runs on these.
public final class BackgroundThread: Sendable {
    private let name: String
    private let stopped = Mutex(false)
    private let wakeUp = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    public init(name: String) { self.name = name }

    /// Starts the thread running `loop`.
    public func start(_ loop: @escaping @Sendable () -> Void) {
        let thread = Thread { [done] in
            loop()
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Whether `stop()` was called: the loop should return.
    public var isStopped: Bool { stopped.withLock { $0 } }

    /// Waits up to `ms` milliseconds, less when woken.
    public func pause(ms: Int) { _ = wakeUp.wait(timeout: .now() + .milliseconds(ms)) }

    /// Ends the current (or the next) `pause` early.
    public func wake() { wakeUp.signal() }

    /// Asks the loop to return, and waits until it has.
    public func stop() {
        stopped.withLock { $0 = true }
        wakeUp.signal()
        done.wait()
    }
}
