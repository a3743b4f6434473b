import DFSCore
import Testing

/// The lock table as a state machine: every step passes the time in.
@Suite struct LockTableTests {
    typealias Mode = LockTable.Mode

    func granted(_ result: LockTable.Acquisition, sourceLocation: SourceLocation = #_sourceLocation) -> LockTable.Lease? {
        if case .granted(let lease) = result { return lease }
        Issue.record("expected a grant, got \(result)", sourceLocation: sourceLocation)
        return nil
    }

    func queued(_ result: LockTable.Acquisition, sourceLocation: SourceLocation = #_sourceLocation) -> LockTable.Waiter? {
        if case .queued(let waiter) = result { return waiter }
        Issue.record("expected to queue, got \(result)", sourceLocation: sourceLocation)
        return nil
    }

    @Test func readersShareWritersExclude() throws {
        var table = LockTable()
        let r1 = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .read, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        _ = try #require(granted(table.acquire(path: "/f", clientId: 2, mode: .read, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        let busy = table.acquire(path: "/f", clientId: 3, mode: .write, ttlMs: 1000, waitMs: 0, nowMs: 0)
        guard case .busy(let holders) = busy else { Issue.record("writer got in beside readers"); return }
        #expect(holders.map(\.clientId) == [1, 2])
        // Other paths are independent.
        _ = try #require(granted(table.acquire(path: "/g", clientId: 3, mode: .write, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        #expect(r1.mode == .read)
    }

    @Test func writerExcludesReadersAndWriters() throws {
        var table = LockTable()
        _ = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .write, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        for mode in Mode.allCases {
            guard case .busy = table.acquire(path: "/f", clientId: 2, mode: mode, ttlMs: 1000, waitMs: 0, nowMs: 0) else {
                Issue.record("\(mode) granted while write-locked")
                continue
            }
        }
    }

    @Test func fifoQueueDoesNotStarveAWaitingWriter() throws {
        var table = LockTable()
        let reader = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .read, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        let writer = try #require(queued(table.acquire(path: "/f", clientId: 2, mode: .write, ttlMs: 1000, waitMs: 500, nowMs: 1)))
        // A new reader is compatible with the holder but must queue behind the writer.
        let lateReader = try #require(queued(table.acquire(path: "/f", clientId: 3, mode: .read, ttlMs: 1000, waitMs: 500, nowMs: 2)))
        let lateReader2 = try #require(queued(table.acquire(path: "/f", clientId: 4, mode: .read, ttlMs: 1000, waitMs: 500, nowMs: 2)))

        let afterReader = try table.release(lockId: reader.lockId, clientId: 1, nowMs: 10)
        #expect(afterReader.count == 1)
        guard case .granted(let requestId, let writeLease) = afterReader.first else { Issue.record("no grant"); return }
        #expect(requestId == writer.requestId && writeLease.clientId == 2 && writeLease.mode == .write)

        // Releasing the writer grants both queued readers together.
        let afterWriter = try table.release(lockId: writeLease.lockId, clientId: 2, nowMs: 20)
        let grantedIds = afterWriter.compactMap { outcome -> Int64? in
            if case .granted(let id, _) = outcome { return id }
            return nil
        }
        #expect(grantedIds == [lateReader.requestId, lateReader2.requestId])
    }

    @Test func queueOrderIsArrivalOrderAmongWriters() throws {
        var table = LockTable()
        let first = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .write, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        let w2 = try #require(queued(table.acquire(path: "/f", clientId: 2, mode: .write, ttlMs: 1000, waitMs: 900, nowMs: 0)))
        let w3 = try #require(queued(table.acquire(path: "/f", clientId: 3, mode: .write, ttlMs: 1000, waitMs: 900, nowMs: 0)))
        let outcomes = try table.release(lockId: first.lockId, clientId: 1, nowMs: 5)
        #expect(outcomes.count == 1)
        guard case .granted(let id, let lease) = outcomes[0] else { Issue.record("no grant"); return }
        #expect(id == w2.requestId)
        let next = try table.release(lockId: lease.lockId, clientId: 2, nowMs: 6)
        guard case .granted(let id3, _) = next.first else { Issue.record("no grant"); return }
        #expect(id3 == w3.requestId)
    }

    @Test func expiredLeasePassesToTheNextWaiter() throws {
        var table = LockTable()
        let crashed = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .write, ttlMs: 100, waitMs: 0, nowMs: 0)))
        let waiter = try #require(queued(table.acquire(path: "/f", clientId: 2, mode: .write, ttlMs: 100, waitMs: 1000, nowMs: 10)))
        #expect(table.nextDeadlineMs == 100)
        #expect(table.tick(nowMs: 99).isEmpty)
        let outcomes = table.tick(nowMs: 100)
        guard case .granted(let id, let lease) = outcomes.first else { Issue.record("not handed over"); return }
        #expect(id == waiter.requestId && lease.clientId == 2)
        #expect(lease.token > crashed.token)
        // The crashed holder's lease is gone: it can neither renew nor release.
        #expect(throws: LockTable.LockError.notFound) { try table.renew(lockId: crashed.lockId, clientId: 1, ttlMs: 100, nowMs: 101) }
    }

    @Test func waitersTimeOutWithTheHolders() throws {
        var table = LockTable()
        _ = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .write, ttlMs: 10_000, waitMs: 0, nowMs: 0)))
        let waiter = try #require(queued(table.acquire(path: "/f", clientId: 2, mode: .read, ttlMs: 100, waitMs: 50, nowMs: 0)))
        let outcomes = table.tick(nowMs: 50)
        guard case .timedOut(let id, let path, let holders) = outcomes.first else { Issue.record("no timeout"); return }
        #expect(id == waiter.requestId && path == "/f" && holders.map(\.clientId) == [1])
        #expect(table.snapshot(path: "/f").waiters.isEmpty)
    }

    @Test func timedOutWriterUnblocksReadersBehindIt() throws {
        var table = LockTable()
        _ = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .read, ttlMs: 10_000, waitMs: 0, nowMs: 0)))
        _ = try #require(queued(table.acquire(path: "/f", clientId: 2, mode: .write, ttlMs: 100, waitMs: 50, nowMs: 0)))
        let reader = try #require(queued(table.acquire(path: "/f", clientId: 3, mode: .read, ttlMs: 100, waitMs: 500, nowMs: 0)))
        let outcomes = table.tick(nowMs: 50)
        #expect(outcomes.contains { if case .granted(reader.requestId, _) = $0 { return true } else { return false } })
    }

    @Test func renewalExtendsAndOnlyTheOwnerMayRenewOrRelease() throws {
        var table = LockTable()
        let lease = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .write, ttlMs: 100, waitMs: 0, nowMs: 0)))
        #expect(throws: LockTable.LockError.notOwner) { try table.renew(lockId: lease.lockId, clientId: 2, ttlMs: 100, nowMs: 50) }
        #expect(throws: LockTable.LockError.notOwner) { try table.release(lockId: lease.lockId, clientId: 2, nowMs: 50) }
        let renewed = try table.renew(lockId: lease.lockId, clientId: 1, ttlMs: 100, nowMs: 90)
        #expect(renewed.expiresAtMs == 190)
        #expect(table.tick(nowMs: 150).isEmpty)
        #expect(table.holders(of: "/f").count == 1)
        _ = table.tick(nowMs: 190)
        #expect(table.holders(of: "/f").isEmpty)
    }

    @Test func tokensIncreaseAcrossGrantsAndStartAboveTheBase() throws {
        var table = LockTable(tokenBase: 1 << 32)
        var last: Int64 = 1 << 32
        for client in 1...5 {
            let lease = try #require(granted(table.acquire(path: "/f", clientId: Int64(client), mode: .write, ttlMs: 10, waitMs: 0, nowMs: 0)))
            #expect(lease.token > last)
            last = lease.token
            _ = try table.release(lockId: lease.lockId, clientId: Int64(client), nowMs: 1)
        }
        #expect(table.snapshot().holders.isEmpty)
    }

    @Test func cancelledWaiterLeavesTheQueue() throws {
        var table = LockTable()
        let holder = try #require(granted(table.acquire(path: "/f", clientId: 1, mode: .write, ttlMs: 1000, waitMs: 0, nowMs: 0)))
        let gone = try #require(queued(table.acquire(path: "/f", clientId: 2, mode: .write, ttlMs: 1000, waitMs: 1000, nowMs: 0)))
        #expect(table.cancel(requestId: gone.requestId, path: "/f", nowMs: 1).isEmpty)
        #expect(try table.release(lockId: holder.lockId, clientId: 1, nowMs: 2).isEmpty)
        #expect(table.snapshot().waiters.isEmpty && table.snapshot().holders.isEmpty)
    }
}
