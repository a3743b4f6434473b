import Foundation
import Testing

/// Runs the built `dfs` binary against a real cluster.
@Suite(.serialized) struct CLITests {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String

        /// The child's peak resident memory in bytes, when run with `measureMemory`.
        var peakResidentBytes: Int64? {
            guard let line = stderr.split(separator: "\n").last, line.hasPrefix("dfs-peak-rss-kib ") else { return nil }
            return Int64(line.dropFirst("dfs-peak-rss-kib ".count)).map { $0 * 1024 }
        }
    }

    static let peakRSSScript = """
        import resource, subprocess, sys
        code = subprocess.run(sys.argv[1:]).returncode
        sys.stderr.write("dfs-peak-rss-kib %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        sys.exit(code)
        """

    /// Runs `dfs` with `arguments`, feeding `input` on stdin; bounded by `timeout` seconds.
    @discardableResult
    func dfs(
        _ cluster: TestCluster, _ arguments: [String], input: Data? = nil, timeout: Double = 120,
        extraEnvironment: [String: String] = [:], measureMemory: Bool = false
    ) throws -> Result {
        let process = Process()
        if measureMemory {
            // python3 runs dfs as its only child and reports that child's peak RSS (KiB) on the last stderr line.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments =
                ["python3", "-c", Self.peakRSSScript, Binaries.dfs] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Binaries.dfs)
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["DFS_DIRECTORY"] = cluster.directory.url
        environment["DFS_HOME"] = cluster.tempPath("cli-home")
        environment.merge(extraEnvironment) { $1 }
        process.environment = environment
        let out = cluster.tempPath("cli-\(UUID().uuidString).out")
        let err = out + ".err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        if process.isRunning && done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            throw FixtureError("dfs \(arguments) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    @Test func tourOfTheCommands() throws {
        let cluster = try TestCluster(fileServers: 2)
        defer { cluster.shutdown() }
        let local = cluster.tempPath("hello.txt")
        try Data("hello, dfs\n".utf8).write(to: URL(fileURLWithPath: local))

        #expect(try dfs(cluster, ["mkdir", "-p", "/docs/sub"]).status == 0)
        #expect(try dfs(cluster, ["put", local, "/docs/hello.txt"]).status == 0)
        #expect(try dfs(cluster, ["cat", "/docs/hello.txt"]).stdout == "hello, dfs\n")
        #expect(try dfs(cluster, ["write", "/docs/piped.txt"], input: Data("from stdin".utf8)).status == 0)
        #expect(try dfs(cluster, ["cat", "/docs/piped.txt"]).stdout == "from stdin")

        let listing = try dfs(cluster, ["ls", "/docs"]).stdout
        #expect(listing.contains("hello.txt") && listing.contains("piped.txt") && listing.contains("sub/"))

        let stat = try dfs(cluster, ["stat", "/docs/hello.txt"]).stdout
        for field in ["file id:", "file server:", "size:        11", "version:", "sha256:", "mtime:"] {
            #expect(stat.contains(field), "stat output lacks \(field): \(stat)")
        }
        let json = try dfs(cluster, ["stat", "--json", "/docs/hello.txt"]).stdout
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["size"] as? Int == 11)
        #expect(object?["file_id"] != nil && object?["version"] != nil && object?["sha256"] != nil)

        let downloaded = cluster.tempPath("downloaded.txt")
        #expect(try dfs(cluster, ["get", "/docs/hello.txt", downloaded]).status == 0)
        #expect(try String(contentsOfFile: downloaded, encoding: .utf8) == "hello, dfs\n")
        // A destination that is not a regular file (a FIFO here, /dev/null alike) is written into, never replaced.
        let fifo = cluster.tempPath("get.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = ["-c", "cat \"$0\" > \"$0.out\"", fifo]
        let readerDone = DispatchSemaphore(value: 0)
        reader.terminationHandler = { _ in readerDone.signal() }
        try reader.run()
        #expect(try dfs(cluster, ["get", "/docs/hello.txt", fifo], timeout: 30).status == 0)
        if readerDone.wait(timeout: .now() + 10) == .timedOut {
            reader.terminate()  // nobody wrote into the FIFO
            Issue.record("dfs get did not write into the FIFO")
        }
        #expect(try String(contentsOfFile: fifo + ".out", encoding: .utf8) == "hello, dfs\n")
        #expect(isFIFO(fifo), "the FIFO is still a FIFO")

        #expect(try dfs(cluster, ["mv", "/docs/hello.txt", "/docs/sub/renamed.txt"]).status == 0)
        #expect(try dfs(cluster, ["cat", "/docs/sub/renamed.txt"]).stdout == "hello, dfs\n")
        #expect(try dfs(cluster, ["rm", "-r", "/docs/sub"]).status == 0)

        let servers = try dfs(cluster, ["servers"]).stdout
        #expect(servers.split(separator: "\n").filter { $0.contains("live") }.count == 2, "\(servers)")
    }

    @Test func errorsPrintDfsPrefixAndFail() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let missing = try dfs(cluster, ["cat", "/missing.txt"])
        #expect(missing.status != 0)
        #expect(missing.stderr.hasPrefix("dfs: ") && missing.stderr.contains("/missing.txt"))
        let badPath = try dfs(cluster, ["mkdir", "relative"])
        #expect(badPath.status != 0 && badPath.stderr.hasPrefix("dfs: "))
        #expect(try dfs(cluster, ["mkdir", "/d"]).status == 0)
        let notEmpty = try dfs(cluster, ["write", "/d/f"], input: Data("x".utf8))
        #expect(notEmpty.status == 0)
        let rm = try dfs(cluster, ["rm", "/d"])
        #expect(rm.status != 0 && rm.stderr.contains("not empty"))
        let down = try dfs(cluster, ["ls", "/", "--directory", "http://127.0.0.1:1"])
        #expect(down.status != 0 && down.stderr.hasPrefix("dfs: cannot reach the directory"))
    }

    @Test func lockUnlockLocksAndCommandUnderLock() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let taken = try dfs(cluster, ["lock", "/f", "--write", "--ttl", "60000"])
        #expect(taken.status == 0 && taken.stdout.hasPrefix("lock ") && taken.stdout.contains("token"))
        let table = try dfs(cluster, ["locks", "/f"]).stdout
        #expect(table.contains("held") && table.contains("write") && table.contains("/f"))
        let json = try dfs(cluster, ["locks", "--json"]).stdout
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect((object?["holders"] as? [Any])?.count == 1)

        // Another client cannot take it: a clear message and a failure.
        let busy = try dfs(cluster, ["lock", "/f"], extraEnvironment: ["DFS_HOME": cluster.tempPath("other-home")])
        #expect(busy.status != 0 && busy.stderr.hasPrefix("dfs: ") && busy.stderr.contains("locked"))

        #expect(try dfs(cluster, ["unlock", "/f"]).status == 0)
        #expect(try dfs(cluster, ["unlock", "/f"]).status != 0, "nothing left to unlock")

        // `--` runs a command while holding the lock; dfs inside it uses the lent lock instead of waiting.
        let script = "echo locked-write | \(Binaries.dfs) write /f && \(Binaries.dfs) locks /f"
        let run = try dfs(cluster, ["lock", "/f", "--wait", "1000", "--", "sh", "-c", script])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("held"))
        #expect(try dfs(cluster, ["cat", "/f"]).stdout == "locked-write\n")
        #expect(!(try dfs(cluster, ["locks", "/f"]).stdout.contains("held")), "released after the command")
        let failing = try dfs(cluster, ["lock", "/f", "--", "sh", "-c", "exit 3"])
        #expect(failing.status == 3)
    }

    /// Writes an executable shell script and returns its path.
    func script(_ cluster: TestCluster, _ name: String, _ body: String) throws -> String {
        let path = cluster.tempPath(name)
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    @Test func editUploadsChangesOnlyWhenTheEditorSucceeds() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        #expect(try dfs(cluster, ["write", "/notes.txt"], input: Data("first line\n".utf8)).status == 0)

        // An editor command with arguments, as EDITOR="code --wait" would be.
        let append = try script(cluster, "append.sh", #"[ "$1" = "--mode" ] && shift 2; echo "added by $(basename "$1")" >> "$1""#)
        let edited = try dfs(cluster, ["edit", "/notes.txt"], extraEnvironment: ["EDITOR": "\(append) --mode fast", "VISUAL": ""])
        #expect(edited.status == 0, "\(edited.stderr)")
        #expect(try dfs(cluster, ["cat", "/notes.txt"]).stdout == "first line\nadded by notes.txt\n")

        // VISUAL wins over EDITOR; a failing editor uploads nothing and dfs fails.
        let failing = try script(cluster, "fail.sh", "echo garbage > \"$1\"; exit 4")
        let failed = try dfs(cluster, ["edit", "/notes.txt"], extraEnvironment: ["VISUAL": failing, "EDITOR": append])
        #expect(failed.status != 0 && failed.stderr.contains("nothing was uploaded"))
        #expect(try dfs(cluster, ["cat", "/notes.txt"]).stdout == "first line\nadded by notes.txt\n")
        #expect(!(try dfs(cluster, ["locks"]).stdout.contains("held")), "the lock was released")

        // An unchanged file is not rewritten; a new path is created.
        let version = try dfs(cluster, ["stat", "--json", "/notes.txt"]).stdout
        #expect(try dfs(cluster, ["edit", "/notes.txt"], extraEnvironment: ["EDITOR": "true", "VISUAL": ""]).status == 0)
        #expect(try dfs(cluster, ["stat", "--json", "/notes.txt"]).stdout == version)
        let create = try script(cluster, "create.sh", "printf 'brand new' > \"$1\"")
        #expect(try dfs(cluster, ["edit", "/new.txt"], extraEnvironment: ["EDITOR": create, "VISUAL": ""]).status == 0)
        #expect(try dfs(cluster, ["cat", "/new.txt"]).stdout == "brand new")
    }

    @Test func viewOpensAReadOnlyCopy() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        #expect(try dfs(cluster, ["write", "/readme"], input: Data("look, don't touch".utf8)).status == 0)
        let capture = cluster.tempPath("captured")
        let viewer = try script(
            cluster, "viewer.sh",
            "cp \"$1\" \(capture); echo; stat -c ' mode %a' \"$1\" >> \(capture); echo change >> \"$1\" 2>/dev/null; exit 0")
        let viewed = try dfs(cluster, ["view", "/readme"], extraEnvironment: ["EDITOR": viewer, "VISUAL": ""])
        #expect(viewed.status == 0)
        // The copy is mode 0444 (root may still write it: a view never uploads anything).
        #expect(try String(contentsOfFile: capture, encoding: .utf8) == "look, don't touch mode 444\n")
        #expect(try dfs(cluster, ["cat", "/readme"]).stdout == "look, don't touch")
    }

    @Test func cacheStatsAndClear() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        #expect(try dfs(cluster, ["write", "/c"], input: Data("cached".utf8)).status == 0)
        #expect(try dfs(cluster, ["cat", "/c"]).stdout == "cached")
        let stats = try dfs(cluster, ["cache", "stats", "--json"]).stdout
        let object = try JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any]
        #expect(object?["entries"] as? Int == 1 && object?["hits"] as? Int == 1 && object?["bytes_saved"] as? Int == 6)
        #expect(try dfs(cluster, ["cat", "--attr-cache-ms", "60000", "/c"]).stdout == "cached")
        #expect(try dfs(cluster, ["cache", "clear"]).status == 0)
        #expect(try dfs(cluster, ["cache", "stats"]).stdout.contains("entries:     0"))
        let servers = try dfs(cluster, ["servers"]).stdout
        #expect(servers.contains("SERVED"))
    }

    /// A 1 GiB file goes up and comes back byte-exact, and no process grows past 100 MiB resident.
    @Test func oneGibibyteStreamsInBoundedMemory() throws {
        let cluster = try TestCluster(fileServers: 1)
        defer { cluster.shutdown() }
        let source = cluster.tempPath("big.bin")
        _ = FileManager.default.createFile(atPath: source, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: source))
        var block = Data(count: 1 << 20)
        for index in 0..<1024 {
            block[0] = UInt8(index & 0xFF)
            block[1] = UInt8(index >> 8)
            try handle.write(contentsOf: block)
        }
        try handle.close()

        let put = try dfs(cluster, ["put", source, "/big.bin"], timeout: 300, measureMemory: true)
        #expect(put.status == 0)
        let copy = cluster.tempPath("big.copy")
        let get = try dfs(cluster, ["get", "/big.bin", copy], timeout: 300, measureMemory: true)
        #expect(get.status == 0)
        #expect(try FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int == 1 << 30)
        #expect(FileManager.default.contentsEqual(atPath: source, andPath: copy))

        let limit: Int64 = 100 << 20
        for server in [cluster.directory] + cluster.fileServers {
            let peak = try #require(server.peakResidentBytes)
            #expect(peak < limit, "dfsd peak RSS \(peak >> 20) MiB")
        }
        for (name, run) in [("put", put), ("get", get)] {
            let peak = try #require(run.peakResidentBytes, "no peak RSS reported: \(run.stderr)")
            #expect(peak < limit, "dfs \(name) peak RSS \(peak >> 20) MiB")
        }
    }
}

/// Whether `path` is a FIFO itself (not followed if a symlink).
private func isFIFO(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO
}
