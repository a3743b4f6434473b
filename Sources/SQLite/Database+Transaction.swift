internal import CSQLite

extension Database {
    /// Runs `body` in a transaction: `BEGIN IMMEDIATE`, then `COMMIT`, or `ROLLBACK` if `body` (or the commit) throws.
    ///
    /// BEGIN and COMMIT are prepared once and kept, like every `run` statement (`execute` parses its text each time).
    ///
    /// `IMMEDIATE` takes the write lock up front, so a concurrent writer waits for the busy timeout at BEGIN
    /// instead of failing with SQLITE_BUSY in the middle. Called inside another transaction (nested, or after a
    /// manual `BEGIN`), it uses a savepoint instead: a throw then undoes only this inner part.
    /// - Parameter body: The work to do atomically.
    /// - Returns: What `body` returns.
    /// - Throws: The error thrown by `body`, or `SQLiteError` from BEGIN/COMMIT.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        if sqlite3_get_autocommit(handle) == 0 {
            return try savepoint(body)
        }
        try run("BEGIN IMMEDIATE")
        transactionDepth += 1
        defer { transactionDepth -= 1 }
        let value: T
        do {
            value = try body()
            try run("COMMIT")
        } catch {
            rollbackIfActive()
            throw error
        }
        return value
    }

    private func savepoint<T>(_ body: () throws -> T) throws -> T {
        // Prepared once per depth and kept (`run`): a batch of commits takes one savepoint per commit.
        let name = "dfs_savepoint_\(transactionDepth)"
        try run("SAVEPOINT \(name)")
        transactionDepth += 1
        defer { transactionDepth -= 1 }
        do {
            let value = try body()
            try run("RELEASE \(name)")
            return value
        } catch {
            // Some errors (SQLITE_FULL, IOERR…) already rolled the whole transaction back; then these fail harmlessly.
            try? run("ROLLBACK TO \(name)")
            try? run("RELEASE \(name)")
            throw error
        }
    }

    /// ROLLBACK unless SQLite already ended the transaction itself (it does on some errors).
    private func rollbackIfActive() {
        if sqlite3_get_autocommit(handle) == 0 {
            try? execute("ROLLBACK")
        }
    }
}
