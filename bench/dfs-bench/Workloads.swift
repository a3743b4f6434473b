import Curl
import DFSClient
import DFSProtocol
import Foundation
import Synchronization

#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// Runs `body(index)` on `count` threads at once. Each thread first runs `setup(index)` (untimed: clients register,
/// connect); then all start together and the wall time from the start to the last finish is returned, in seconds.
/// The first error of any thread is rethrown.
func runConcurrently<State>(
    _ count: Int, setup: @escaping @Sendable (Int) throws -> State,
    body: @escaping @Sendable (Int, State) throws -> Void
) throws -> Double {
    let ready = DispatchSemaphore(value: 0)
    let go = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    let failure = Mutex<String?>(nil)
    for index in 0..<count {
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            var state: UncheckedBox<State>?
            do {
                state = UncheckedBox(try setup(index))
            } catch {
                failure.withLock { $0 = $0 ?? "thread \(index) setup: \(error)" }
            }
            ready.signal()
            go.wait()
            guard let state else { return }
            do {
                try body(index, state.value)
            } catch {
                failure.withLock { $0 = $0 ?? "thread \(index): \(error)" }
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    for _ in 0..<count { ready.wait() }
    if let message = failure.withLock({ $0 }) {
        for _ in 0..<count { go.signal() }
        done.wait()
        throw BenchError(message)
    }
    let start = now()
    for _ in 0..<count { go.signal() }
    guard done.wait(timeout: .now() + 600) == .success else { throw BenchError("workload did not finish in 600 s") }
    let seconds = (now() - start) / 1000
    if let message = failure.withLock({ $0 }) { throw BenchError(message) }
    return seconds
}

/// The files thread `index` of `count` handles: every count-th one.
func share(_ files: Int, _ index: Int, _ count: Int) -> [Int] { Array(stride(from: index, to: files, by: count)) }

func payload(_ size: Int, seed: Int) -> Data { Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }) }

/// `base` with its first bytes replaced by `number` (little-endian), so that each file's bytes differ.
func stamped(_ base: Data, _ number: Int) -> Data {
    var data = base
    for index in 0..<min(8, data.count) { data[index] = UInt8(truncatingIfNeeded: UInt64(number) >> (8 * index)) }
    return data
}

/// `<prefix>/f000123`. (Zero-padded by hand: `String(format:)` was 3% of the client's CPU in the writes row.)
func fileName(_ prefix: String, _ index: Int) -> String {
    let digits = String(index)
    return prefix + "/f" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
}

enum Workloads {
    /// `clients` DFSClients (each its own DFS_HOME, default settings), together creating `files` files of `size` bytes
    /// under `prefix`, as `dfs put` does (each a `PUT /creates` to a file server, which commits it under the path's
    /// write lock).
    static func writes(directory: String, prefix: String, files: Int, clients: Int, size: Int, home: String) throws
        -> [String: Any]
    {
        let setupClient = DFSClient(settings: ClientSettings(directory: directory, home: home + "/setup", environment: [:]))
        try setupClient.mkdir(prefix, parents: true)
        let seconds = try runConcurrently(
            clients,
            setup: { index in
                let client = DFSClient(
                    settings: ClientSettings(directory: directory, home: home + "/w\(index)", environment: [:]))
                _ = try client.clientId()
                // Open (create) the client's cache before the clock starts, as registering: a client's one-time setup.
                _ = try client.cacheStats()
                return (client, payload(size, seed: index))
            },
            body: { index, setup in
                let (client, base) = setup
                for file in share(files, index, clients) {
                    // Every file different, without computing 4 KiB per file (the raw loop reuses one payload).
                    try client.write(fileName(prefix, file), data: stamped(base, file))
                }
                // The writer's cache copies still queued (written behind) are part of the work.
                _ = try? client.cacheStats()
            })
        return ["files": files, "clients": clients, "size": size, "seconds": seconds, "per_s": Double(files) / seconds]
    }

    /// `clients` DFSClients with fresh homes (so every read is uncached, default settings otherwise: revalidate, read
    /// lock, fetch, verify sha256, keep a cache copy) reading the files `writes` made, each once.
    static func reads(directory: String, prefix: String, files: Int, clients: Int, size: Int, home: String) throws
        -> [String: Any]
    {
        let seconds = try runConcurrently(
            clients,
            setup: { index in
                let client = DFSClient(
                    settings: ClientSettings(directory: directory, home: home + "/r\(index)", environment: [:]))
                _ = try client.clientId()
                _ = try client.cacheStats()  // the cache is opened (created) in setup, as in `writes`
                _ = try client.stat("/")
                return client
            },
            body: { index, client in
                for file in share(files, index, clients) {
                    let data = try client.read(fileName(prefix, file))
                    guard data.count == size else {
                        throw BenchError("\(fileName(prefix, file)): \(data.count) bytes, expected \(size)")
                    }
                }
                // The cache copies still queued (written behind) are part of the work: flush them in the timing.
                _ = try? client.cacheStats()
            })
        return ["files": files, "clients": clients, "size": size, "seconds": seconds, "per_s": Double(files) / seconds]
    }

    /// The reference for `reads`: the same number of threads, each with one kept-alive libcurl handle (the client
    /// library's own HTTP stack), GETting the URLs listed in `urlsFile` once each.
    static func httpGet(urlsFile: String, clients: Int, size: Int) throws -> [String: Any] {
        let urls = try String(contentsOfFile: urlsFile, encoding: .utf8).split(separator: "\n").map(String.init)
        let seconds = try runConcurrently(
            clients,
            setup: { _ in HTTPClient(connectTimeout: 5, timeout: 60) },
            body: { index, http in
                for file in share(urls.count, index, clients) {
                    let response = try http.send(method: "GET", url: urls[file])
                    guard response.status == 200, size == 0 || response.body.count == size else {
                        throw BenchError("GET \(urls[file]): HTTP \(response.status), \(response.body.count) bytes")
                    }
                }
            })
        return ["files": urls.count, "clients": clients, "seconds": seconds, "per_s": Double(urls.count) / seconds]
    }

    /// The reference for `writes`: `threads` threads creating `files` files of `size` bytes in `dir` the crash-safe
    /// way (write a temp file, fsync it, rename it into place; with dirSync also fsync the directory).
    static func rawFsync(dir: String, files: Int, threads: Int, size: Int, dirSync: Bool) throws -> [String: Any] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let seconds = try runConcurrently(
            threads,
            setup: { index in payload(size, seed: index) },
            body: { index, data in
                let dirFd = open(dir, O_RDONLY | O_DIRECTORY)
                guard dirFd >= 0 else { throw BenchError("open \(dir): errno \(errno)") }
                defer { close(dirFd) }
                for file in share(files, index, threads) {
                    let temp = "\(dir)/.tmp-\(file)"
                    let fd = open(temp, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
                    guard fd >= 0 else { throw BenchError("open \(temp): errno \(errno)") }
                    let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    guard written == data.count, fsync(fd) == 0 else {
                        close(fd)
                        throw BenchError("write/fsync \(temp): errno \(errno)")
                    }
                    close(fd)
                    guard rename(temp, "\(dir)/f\(file)") == 0 else { throw BenchError("rename: errno \(errno)") }
                    if dirSync, fsync(dirFd) != 0 { throw BenchError("fsync \(dir): errno \(errno)") }
                }
            })
        return ["files": files, "clients": threads, "size": size, "seconds": seconds, "per_s": Double(files) / seconds]
    }

    /// `ls` of a big directory: the library's `list` (every page: requests, transfers, JSON decoding), and the raw
    /// HTTP exchanges alone (the pages one after the other), `rounds` times each, in milliseconds.
    static func list(directory: String, path: String, rounds: Int) throws -> [String: Any] {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-bench-ls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: home) }
        let client = DFSClient(settings: ClientSettings(directory: directory, home: home, environment: [:]))
        _ = try client.stat("/")
        var library: [Double] = []
        var raw: [Double] = []
        var entries = 0
        var bytes = 0
        let http = HTTPClient(connectTimeout: 5, timeout: 60)
        let escaped = path.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? path
        for _ in 0..<rounds {
            var start = now()
            entries = try client.list(path).count
            library.append(now() - start)
            start = now()
            // The raw exchange: every page, one after the other, following the X-DFS-Next cursor.
            var cursor: String? = ""
            bytes = 0
            while let after = cursor {
                let encoded = after.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? after
                let query = after.isEmpty ? "" : "&after=" + encoded
                let response = try http.send(method: "GET", url: "\(directory)/ls?path=\(escaped)\(query)")
                guard response.status == 200 else { throw BenchError("GET /ls: HTTP \(response.status)") }
                bytes += response.body.count
                cursor = response.headers["x-dfs-next"].flatMap { $0.removingPercentEncoding }
            }
            raw.append(now() - start)
        }
        return ["entries": entries, "response_bytes": bytes, "library_ms": library, "http_ms": raw]
    }

    /// Reads over a (simulated) link, one at a time, by one client that is already connected: first each file
    /// uncached (a fresh cache), then each again revalidated from the cache (stat says unchanged: zero bytes move).
    /// The reference is the same client's trivial round trip (`GET /health` on the directory, kept alive).
    static func linkRead(directory: String, prefix: String, files: Int, size: Int, home: String) throws -> [String: Any] {
        let writer = DFSClient(settings: ClientSettings(directory: directory, home: home + "/writer", environment: [:]))
        try writer.mkdir(prefix, parents: true)
        for file in 0...files {
            try writer.write(fileName(prefix, file), data: payload(size, seed: file))
        }
        let reader = DFSClient(settings: ClientSettings(directory: directory, home: home + "/reader", environment: [:]))
        // Warm-up: register, and open the connections to the directory and the file server (file `files` is extra).
        _ = try reader.read(fileName(prefix, files))
        var uncached: [Double] = []
        var revalidated: [Double] = []
        for file in 0..<files {
            let start = now()
            let data = try reader.read(fileName(prefix, file))
            uncached.append(now() - start)
            guard data.count == size else { throw BenchError("short read of \(fileName(prefix, file))") }
        }
        for file in 0..<files {
            let start = now()
            let data = try reader.read(fileName(prefix, file))
            revalidated.append(now() - start)
            guard data.count == size else { throw BenchError("short read of \(fileName(prefix, file))") }
        }
        let http = HTTPClient(connectTimeout: 5, timeout: 60)
        _ = try http.send(method: "GET", url: directory + "/health")
        var trivial: [Double] = []
        for _ in 0..<max(files, 10) {
            let start = now()
            let response = try http.send(method: "GET", url: directory + "/health")
            trivial.append(now() - start)
            guard response.status == 200 else { throw BenchError("GET /health: HTTP \(response.status)") }
        }
        let stats = try reader.cacheStats()
        return [
            "files": files, "size": size, "uncached_ms": uncached, "revalidated_ms": revalidated,
            "health_ms": trivial, "cache_hits": stats.hits, "cache_misses": stats.misses,
        ]
    }
}
