import Curl
import DFSClient
import DFSProtocol
import Foundation

/// Cold read (cache empty) versus cached read of an unchanged file, 1 MiB and 100 MiB: time and bytes served by
/// the file servers. The cold read is the reference, measured in the same run. Loopback only for now.
struct CacheBench {
    let repetitions: Int

    func run() throws {
        let cluster = try BenchDirectory(fileServers: 1)
        defer { cluster.stop() }
        var writerSettings = ClientSettings(directory: cluster.url, home: cluster.root + "/writer", environment: [:])
        writerSettings.cacheMaxBytes = 0
        let writer = DFSClient(settings: writerSettings)
        try waitForFileServer(writer)
        let reader = DFSClient(
            settings: ClientSettings(directory: cluster.url, home: cluster.root + "/reader", environment: [:]))

        print("cache benchmark: \(repetitions) repetitions each, loopback, directory \(cluster.url)")
        print("| file | cold read ms (median, min-max) | bytes served | cached read ms (median, min-max) | bytes served | speed-up |")
        print("|---|---|---|---|---|---|")
        for (label, size) in [("1 MiB", 1 << 20), ("100 MiB", 100 << 20)] {
            let path = "/bench-\(size)"
            var block = Data((0..<(1 << 20)).map { UInt8($0 % 253) })
            var written = 0
            try writer.write(path, length: Int64(size)) { max in
                guard written < size else { return Data() }
                block[0] = UInt8(written >> 20 & 0xFF)
                written += block.count
                return block
            }
            var cold: [Double] = []
            var cached: [Double] = []
            var coldBytes: Int64 = 0
            var cachedBytes: Int64 = 0
            for _ in 0..<repetitions {
                try reader.clearCache()
                let before = try served(writer)
                cold.append(try timeRead(reader, path))
                coldBytes = try served(writer) - before
                let beforeCached = try served(writer)
                cached.append(try timeRead(reader, path))
                cachedBytes = try served(writer) - beforeCached
            }
            let c = Stats(cold)
            let h = Stats(cached)
            print(
                "| \(label) | \(format(c.median, 2)) (\(format(c.min, 2))-\(format(c.max, 2))) | \(coldBytes) | \(format(h.median, 2)) (\(format(h.min, 2))-\(format(h.max, 2))) | \(cachedBytes) | \(format(c.median / h.median, 1))x |"
            )
        }
    }

    private func timeRead(_ client: DFSClient, _ path: String) throws -> Double {
        let start = now()
        var count = 0
        try client.read(path) { count += $0.count }
        return now() - start
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
