import Curl
import DFSClient
import DFSProtocol
import Foundation

/// Cold read (cache empty) versus cached read of an unchanged file of `size` bytes through the library, with the bytes
/// the file servers served during each (their `GET /stats` counters). The cold read is the reference, measured in the
/// same run, on the same link.
struct CacheBench {
    let directory: String
    let size: Int
    let repetitions: Int
    let home: String

    func run() throws -> [String: Any] {
        var writerSettings = ClientSettings(directory: directory, home: home + "/writer", environment: [:])
        writerSettings.cacheMaxBytes = 0
        let writer = DFSClient(settings: writerSettings)
        try waitForFileServer(writer)
        let reader = DFSClient(settings: ClientSettings(directory: directory, home: home + "/reader", environment: [:]))
        let path = "/cache-bench-\(size)"
        var block = Data((0..<(1 << 20)).map { UInt8($0 % 253) })
        var written = 0
        try writer.write(path, length: Int64(size)) { max in
            guard written < size else { return Data() }
            block[0] = UInt8(written >> 20 & 0xFF)
            let chunk = block.prefix(Swift.min(block.count, size - written))
            written += chunk.count
            return Data(chunk)
        }
        _ = try reader.stat("/")
        var cold: [Double] = []
        var cached: [Double] = []
        var coldBytes: [Int64] = []
        var cachedBytes: [Int64] = []
        for _ in 0..<repetitions {
            try reader.clearCache()
            var before = try served(writer)
            cold.append(try timeRead(reader, path))
            coldBytes.append(try served(writer) - before)
            before = try served(writer)
            cached.append(try timeRead(reader, path))
            cachedBytes.append(try served(writer) - before)
        }
        try writer.remove(path)
        return [
            "size": size, "cold_s": cold, "cached_s": cached, "cold_bytes_served": coldBytes,
            "cached_bytes_served": cachedBytes,
        ]
    }

    private func timeRead(_ client: DFSClient, _ path: String) throws -> Double {
        let start = now()
        var count = 0
        try client.read(path) { count += $0.count }
        guard count == size else { throw BenchError("read \(count) bytes of \(path), expected \(size)") }
        return (now() - start) / 1000
    }

    private func served(_ client: DFSClient) throws -> Int64 {
        try client.fileServers().reduce(0) { $0 + (try client.fileServerStats(url: $1.url).bytesServed) }
    }

    private func waitForFileServer(_ client: DFSClient) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let servers = try? client.fileServers(), servers.contains(where: { $0.state == "live" }) { return }
            usleep(50_000)
        }
        throw BenchError("no live file server")
    }
}
