import Curl
import DFSClient
import DFSProtocol
import Foundation
import Synchronization
import Testing

/// The locking service against real servers: contention, fairness, expiry, fencing, ownership.
@Suite(.serialized) struct LockTests {
    @Test func tryLockReportsHoldersAndWaiterGetsTheLockOnRelease() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let alice = cluster.client(home: cluster.tempPath("alice"))
        let bob = cluster.client(home: cluster.tempPath("bob"))
        let held = try alice.lock("/f", mode: .write)
        let busy = #expect(throws: DFSClientError.self) { try bob.lock("/f", mode: .write, waitMs: 0) }
        #expect(busy?.status == 409 && busy?.code == "lock_busy")
        #expect(busy?.message.contains("client \(held.info.clientId)") == true)

        let granted = Mutex<LockInfo?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let waiter = cluster.client(home: cluster.tempPath("bob"))
            let lease = try? waiter.lock("/f", mode: .write, waitMs: 10_000, autoRenew: false)
            lease?.detach()  // keep the lease after this thread drops the handle
            granted.withLock { $0 = lease?.info }
            done.signal()
        }
        try waitUntil { try alice.locks("/f").waiters.count == 1 }
        #expect(granted.withLock { $0 } == nil, "granted while the lock was held")
        try held.release()
        #expect(done.wait(timeout: .now() + 5) == .success)
        let lease = try #require(granted.withLock { $0 })
        #expect(lease.token > held.info.token)
        #expect(try alice.locks("/f").holders.map(\.lockId) == [lease.lockId])
    }

    @Test func waitingWriterIsNotStarvedByNewReaders() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let reader = try cluster.client(home: cluster.tempPath("r1")).lock("/f", mode: .read)
        let order = Mutex<[String]>([])
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let writer = cluster.client(home: cluster.tempPath("w"))
            if let lease = try? writer.lock("/f", mode: .write, waitMs: 10_000) {
                order.withLock { $0.append("writer") }
                Thread.sleep(forTimeInterval: 0.2)  // hold it a moment so the reader's grant clearly comes after
                order.withLock { $0.append("writer-release") }
                try? lease.release()
            }
            finished.signal()
        }
        let observer = cluster.client(home: cluster.tempPath("obs"))
        try waitUntil { try observer.locks("/f").waiters.count == 1 }
        Thread.detachNewThread {
            let late = cluster.client(home: cluster.tempPath("r2"))
            if let lease = try? late.lock("/f", mode: .read, waitMs: 10_000) {
                order.withLock { $0.append("late-reader") }
                try? lease.release()
            }
            finished.signal()
        }
        try waitUntil { try observer.locks("/f").waiters.count == 2 }
        #expect(order.withLock { $0 }.isEmpty, "a reader compatible with the holder jumped the queue")
        try reader.release()
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(order.withLock { $0 } == ["writer", "writer-release", "late-reader"])
    }

    @Test func expiredLeaseHandsTheLockOver() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let crashed = cluster.client(home: cluster.tempPath("crashed"))
        let lease = try crashed.lock("/f", mode: .write, ttlMs: 300, autoRenew: false)
        let next = cluster.client(home: cluster.tempPath("next"))
        let start = Date()
        let handed = try next.lock("/f", mode: .write, waitMs: 10_000)
        #expect(Date().timeIntervalSince(start) >= 0.2, "granted before the lease ran out")
        #expect(handed.info.token > lease.info.token)
        let late = #expect(throws: DFSClientError.self) { try lease.release() }
        #expect(late?.status == 404)
    }

    /// A waiter that hung up while queued is skipped when its turn comes: the lock goes on to the next waiter at once
    /// instead of staying taken, by nobody who knows, for the lease the gone waiter asked for (60 s here).
    @Test func aWaiterThatHungUpIsSkipped() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let alice = cluster.client(home: cluster.tempPath("alice"))
        let held = try alice.lock("/g", mode: .write, autoRenew: false)
        let bobHome = cluster.tempPath("bob")
        _ = try cluster.client(home: bobHome).clientId()
        let bobToken = try #require(
            (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bobHome + "/client.json")))
                as? [String: Any])?["token"] as? String)

        // Bob asks with curl, then curl is killed while the request is queued: its socket closes.
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = [
            "curl", "-s", "-o", "/dev/null", "-X", "POST", "-H", "Authorization: Bearer \(bobToken)",
            "-d", #"{"path":"/g","mode":"write","wait_ms":30000,"ttl_ms":60000}"#, cluster.directory.url + "/locks",
        ]
        try curl.run()
        try waitUntil { try alice.locks("/g").waiters.count == 1 }
        kill(curl.processIdentifier, SIGKILL)
        curl.waitUntilExit()

        // Carol queues behind Bob, for less than Bob's lease.
        let granted = Mutex<Result<LockInfo, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let carol = cluster.client(home: cluster.tempPath("carol"))
            let result = Result { () throws -> LockInfo in
                let lease = try carol.lock("/g", mode: .write, waitMs: 20_000, autoRenew: false)
                lease.detach()
                return lease.info
            }
            granted.withLock { $0 = result }
            done.signal()
        }
        try waitUntil { try alice.locks("/g").waiters.count == 2 }
        try held.release()
        #expect(done.wait(timeout: .now() + 30) == .success)
        let carol = try #require(granted.withLock { $0 }).get()
        #expect(try alice.locks("/g").holders.map(\.lockId) == [carol.lockId])
    }

    @Test func onlyTheOwnerRenewsOrReleases() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let owner = cluster.client(home: cluster.tempPath("owner"))
        let lease = try owner.lock("/f", mode: .write)
        let other = try cluster.rawClient()
        let http = HTTPClient()
        let url = cluster.directory.url
        let release = try http.send(method: "DELETE", url: url + "/locks/\(lease.info.lockId)", headers: other.headers)
        #expect(release.status == 403)
        let renew = try http.send(
            method: "PUT", url: url + "/locks/\(lease.info.lockId)", headers: other.headers,
            body: .data(try WireJSON.encode(RenewRequest())))
        #expect(renew.status == 403)
        // Claiming to be the owner does not help: the token decides who you are.
        let impersonate = try http.send(
            method: "DELETE", url: url + "/locks/\(lease.info.lockId)?client_id=\(lease.info.clientId)",
            headers: other.headers)
        #expect(impersonate.status == 403)
        let anonymous = try http.send(method: "DELETE", url: url + "/locks/\(lease.info.lockId)")
        #expect(anonymous.status == 401)
        #expect(try owner.locks("/f").holders.count == 1)
        try lease.release()
        #expect(try owner.locks("/f").holders.isEmpty)
    }

    @Test func writeLockedFileRefusesOthersAndStaleTokensAreFenced() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let setup = cluster.client(home: cluster.tempPath("setup"))
        try setup.write("/f", data: Data("original".utf8))
        let fileId = try #require(try setup.stat("/f").fileId)

        // A holder's lock keeps unlocked writers out: 423 locked.
        let holder = cluster.client(home: cluster.tempPath("holder"))
        let lease = try holder.lock("/f", mode: .write, ttlMs: 400, autoRenew: false)
        let intruder = cluster.client(home: cluster.tempPath("intruder"), lockWaitMs: -1)
        let refused = #expect(throws: DFSClientError.self) { try intruder.write("/f", data: Data("intruder".utf8)) }
        #expect(refused?.status == 423 && refused?.code == "locked")

        // The holder gets an upload ticket, then pauses past its lease.
        let http = HTTPClient()
        let json = try cluster.headers(home: cluster.tempPath("holder"))
        let ticketResponse = try http.send(
            method: "POST", url: cluster.directory.url + "/writes", headers: json,
            body: .data(
                try WireJSON.encode(
                    WriteRequest(path: "/f", clientId: try holder.clientId(), lockToken: lease.info.token))))
        #expect(ticketResponse.status == 201)
        let staleTicket = try WireJSON.decode(WriteTicket.self, from: ticketResponse.body)
        #expect(staleTicket.fileId == fileId)

        // Meanwhile the lease expires, a new writer locks and writes.
        let newer = cluster.client(home: cluster.tempPath("newer"))
        let newLease = try newer.lock("/f", mode: .write, waitMs: 10_000)
        #expect(newLease.info.token > lease.info.token)
        try newer.write("/f", data: Data("newer writer".utf8))
        try newLease.release()

        // The paused holder wakes up and uploads with its old token: the file server refuses it.
        let target = try #require(staleTicket.targets.first)
        let upload = try http.send(
            method: "PUT",
            url: "\(target.url)/files/\(fileId)?version=\(staleTicket.version)&ticket=\(target.ticket)&fence=\(lease.info.token)",
            body: .data(Data("stale".utf8)))
        #expect(upload.status == 409)
        #expect(try WireJSON.decode(ErrorBody.self, from: upload.body).error.code == "stale_lock")
        // And the directory refuses new writes under the stale token.
        let again = try http.send(
            method: "POST", url: cluster.directory.url + "/writes", headers: json,
            body: .data(
                try WireJSON.encode(
                    WriteRequest(path: "/f", clientId: try holder.clientId(), lockToken: lease.info.token))))
        #expect(again.status == 409)
        #expect(try setup.read("/f") == Data("newer writer".utf8))
    }

    @Test func writesTakeAndReleaseTheLockOrWaitForIt() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let alice = cluster.client(home: cluster.tempPath("alice"))
        try alice.write("/w", data: Data("one".utf8))
        #expect(try alice.locks().holders.isEmpty, "a plain write leaves no lock behind")

        let held = try alice.lock("/w", mode: .write)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let bob = cluster.client(home: cluster.tempPath("bob"))
            _ = try? bob.write("/w", data: Data("bob".utf8))
            done.signal()
        }
        try waitUntil { try alice.locks("/w").waiters.count == 1 }
        try alice.write("/w", data: Data("alice".utf8))
        try held.release()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(try alice.read("/w") == Data("bob".utf8), "bob wrote after alice released")
        #expect(try alice.locks().holders.isEmpty)
    }

    @Test func eightClientsIncrementACounterFourHundredTimes() throws {
        let cluster = try TestCluster(fileServers: 2)
        defer { cluster.shutdown() }
        try cluster.client().write("/counter", data: Data("0".utf8))
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let dfs = cluster.client(home: cluster.tempPath("counter-\(index)"))
            do {
                for _ in 0..<50 {
                    let lease = try dfs.lock("/counter", mode: .write, waitMs: 60_000)
                    defer { try? lease.release() }
                    let value = Int(String(decoding: try dfs.read("/counter"), as: UTF8.self)) ?? -1_000_000
                    try dfs.write("/counter", data: Data(String(value + 1).utf8))
                }
            } catch {
                failures.add("client \(index): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        #expect(String(decoding: try cluster.client().read("/counter"), as: UTF8.self) == "400")
    }

    @Test func readersWaitWhileAWriterHoldsTheFile() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let writer = cluster.client(home: cluster.tempPath("writer"))
        try writer.write("/doc", data: Data("v1".utf8))
        let lease = try writer.lock("/doc", mode: .write)
        let result = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let reader = cluster.client(home: cluster.tempPath("reader"))
            result.withLock { $0 = (try? reader.read("/doc")).map { String(decoding: $0, as: UTF8.self) } }
            done.signal()
        }
        try waitUntil { try writer.locks("/doc").waiters.count == 1 }
        try writer.write("/doc", data: Data("v2".utf8))  // uses the held lock
        try lease.release()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(result.withLock { $0 } == "v2", "the reader saw the state before the writer finished")
    }
}

/// Polls `condition` until true, at most `timeout` seconds (for observing server-side queue state).
func waitUntil(timeout: Double = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: 0.01)
    }
    throw FixtureError("condition not met within \(timeout) s")
}
