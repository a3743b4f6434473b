import ArgumentParser
import DFSClient
import DFSProtocol
import Foundation

struct Lock: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a lock on a path.",
        discussion: """
            Without a command: takes the lock, prints its id and fencing token, and exits; the lock stays held until
            `dfs unlock PATH` or until its lease (--ttl) runs out.
            With `-- COMMAND ...`: holds the lock (renewing it) while COMMAND runs, then releases it and exits with
            COMMAND's status. dfs commands run by COMMAND use the held lock instead of waiting for it.
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Shared lock (many readers).") var read = false
    @Flag(help: "Exclusive lock (one writer; the default).") var write = false
    @Option(help: "Lease length in milliseconds (default: the directory's lock_lease_ms).") var ttl: Int64?
    @Option(help: "Wait up to this many milliseconds for the lock (default 0: fail at once if taken).")
    var wait: Int64 = 0
    @Argument(help: "The path to lock.") var path: String
    @Argument(parsing: .postTerminator, help: "A command to run while holding the lock.") var command: [String] = []

    func validate() throws {
        if read && write { throw ValidationError("choose one of --read and --write") }
        if wait < 0 { throw ValidationError("--wait must not be negative") }
    }

    func run() throws {
        let mode: LockMode = read ? .read : .write
        var status: Int32 = 0
        try global.withClient { client in
            let handle = try client.lock(path, mode: mode, ttlMs: ttl, waitMs: wait, autoRenew: !command.isEmpty)
            if command.isEmpty {
                handle.detach()
                Output.line("lock \(handle.info.lockId) token \(handle.info.token) (\(mode.rawValue), \(handle.info.path), expires in \(handle.info.expiresInMs) ms)")
                return
            }
            defer { try? handle.release() }
            status = try runCommand(command, lending: handle.info)
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Runs the command with the lock lent through `DFS_LOCKS`.
    private func runCommand(_ command: [String], lending lock: LockInfo) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        var environment = ProcessInfo.processInfo.environment
        environment["DFS_LOCKS"] = String(decoding: try WireJSON.encode([lock]), as: UTF8.self)
        if let directory = global.directory { environment["DFS_DIRECTORY"] = directory }
        process.environment = environment
        do {
            try process.run()
        } catch {
            throw DFSClientError(status: nil, code: "io", message: "cannot run \(command[0]): \(error.localizedDescription)")
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

struct Unlock: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Release this client's locks on a path.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The locked path.") var path: String

    func run() throws {
        try global.withClient { client in
            let released = try client.unlock(path)
            if released == 0 { global.fail("no lock of this client is held on \(path)") }
        }
    }
}

struct Locks: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List lock holders and waiters.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Only this path.") var path: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try global.withClient { client in
            let table = try client.locks(path)
            if json { return try Output.json(table) }
            Output.line("STATE    MODE   CLIENT  LOCK   TOKEN                 MS  PATH")
            for holder in table.holders {
                Output.line(
                    "held     \(holder.mode.rightPad(6)) \(String(holder.clientId).leftPad(6)) \(String(holder.lockId).leftPad(5)) \(String(holder.token).leftPad(14)) \(String(holder.expiresInMs).leftPad(9))  \(holder.path)"
                )
            }
            for waiter in table.waiters {
                Output.line(
                    "waiting  \(waiter.mode.rightPad(6)) \(String(waiter.clientId).leftPad(6)) \("-".leftPad(5)) \("-".leftPad(14)) \(String(waiter.waitsForMs).leftPad(9))  \(waiter.path)"
                )
            }
        }
    }
}
