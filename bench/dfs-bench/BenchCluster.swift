import Foundation
import Synchronization

/// A directory server (and optionally file servers) started from the built `dfsd` next to this binary, on
/// ephemeral loopback ports, with data in a temp directory.
final class BenchDirectory {
    private var processes: [Process] = []
    private(set) var url = ""
    private(set) var fileServerURLs: [String] = []
    let root: String
    private let bin: URL

    init(fileServers: Int = 0) throws {
        bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        root = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try "listen = 127.0.0.1:0\ndata_dir = \(root)/directory\nheartbeat_interval_ms = 200\n".write(
            toFile: root + "/directory.conf", atomically: true, encoding: .utf8)
        url = try start(["directory", "--config", root + "/directory.conf"])
        for index in 0..<fileServers {
            let conf = "listen = 127.0.0.1:0\ndirectory = \(url)\ndata_dir = \(root)/fs\(index)\nheartbeat_interval_ms = 200\n"
            try conf.write(toFile: root + "/fs\(index).conf", atomically: true, encoding: .utf8)
            fileServerURLs.append(try start(["fileserver", "--config", root + "/fs\(index).conf"]))
        }
    }

    /// Starts one dfsd and returns the URL from its ready line.
    private func start(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = bin.appendingPathComponent("dfsd")
        process.arguments = arguments + ["--log-level", "warning"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        processes.append(process)
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while !text.contains("\n"), Date() < deadline {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        guard let range = text.range(of: "listening on ") else { throw BenchError("dfsd did not start") }
        return String(text[range.upperBound...].prefix { $0 != "\n" })
    }

    func stop() {
        for process in processes.reversed() {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Percentiles of a sample, in the sample's unit.
struct Stats {
    let sorted: [Double]
    init(_ values: [Double]) { sorted = values.sorted() }
    func percentile(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        return sorted[Swift.min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }
    var median: Double { percentile(0.5) }
    var min: Double { sorted.first ?? .nan }
    var max: Double { sorted.last ?? .nan }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }

func format(_ value: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }
