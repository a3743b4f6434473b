import Curl
import DFSClient
import DFSProtocol
import Foundation
import Synchronization

/// Lock hand-over latency (release sent → next waiter's grant received) and uncontended acquire+release rate,
/// each next to a reference measured in the same run: a trivial GET /health round trip on the same server.
struct LockBench {
    let rounds: Int
    /// An existing directory server's URL; nil starts one on loopback.
    let directory: String?

    func run() throws -> [String: Any] {
        let own = directory == nil ? try BenchDirectory() : nil
        defer { own?.stop() }
        let url = directory ?? own!.url
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-bench-locks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var settings = ClientSettings(directory: url, home: root + "/home-a", environment: [:])
        settings.lockWaitMs = -1
        let a = DFSClient(settings: settings)
        settings.home = root + "/home-b"
        let b = DFSClient(settings: settings)
        _ = try a.clientId()
        _ = try b.clientId()

        // Reference: trivial round trips on the same server and connection type.
        let http = HTTPClient()
        var trivial: [Double] = []
        for _ in 0..<(rounds * 2) {
            let start = now()
            _ = try http.send(method: "GET", url: url + "/health")
            trivial.append(now() - start)
        }

        // Uncontended acquire + release: two round trips each.
        let uncontendedStart = now()
        for _ in 0..<rounds {
            let lease = try a.lock("/bench/uncontended", mode: .write, autoRenew: false)
            try lease.release()
        }
        let uncontendedSeconds = (now() - uncontendedStart) / 1000
        let trivialPairsPerSecond = 1000 / (Stats(trivial).median * 2)

        // Hand-over: the holder releases while the other client waits in the queue.
        var handovers: [Double] = []
        var holder = try a.lock("/bench/handover", mode: .write, autoRenew: false)
        var holderIsA = true
        for _ in 0..<rounds {
            let waiter = holderIsA ? b : a
            let granted = Mutex<(UncheckedBox<LockHandle>?, Double)>((nil, 0))
            let done = DispatchSemaphore(value: 0)
            let waitingClient = UncheckedBox(waiter)
            Thread.detachNewThread {
                let lease = try? waitingClient.value.lock("/bench/handover", mode: .write, waitMs: 10_000, autoRenew: false)
                let at = now()
                granted.withLock { $0 = (lease.map { UncheckedBox($0) }, at) }
                done.signal()
            }
            // Wait (bounded) until the request is parked on the server.
            let observer = holderIsA ? a : b
            let deadline = Date().addingTimeInterval(5)
            while try observer.locks("/bench/handover").waiters.isEmpty, Date() < deadline {
                usleep(200)
            }
            let releasedAt = now()
            try holder.release()
            guard done.wait(timeout: .now() + 10) == .success,
                case let (lease?, grantedAt) = granted.withLock({ $0 })
            else { throw BenchError("the waiter was not granted") }
            handovers.append(grantedAt - releasedAt)
            holder = lease.value
            holderIsA.toggle()
        }
        try holder.release()

        let rate = Double(rounds) / uncontendedSeconds
        return [
            "rounds": rounds, "handover_ms": handovers, "health_ms": trivial, "uncontended_per_s": rate,
            "trivial_pairs_per_s": trivialPairsPerSecond,
        ]
    }
}

/// Moves a non-Sendable client into a benchmark thread that alone uses it.
final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
