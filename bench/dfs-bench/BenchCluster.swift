import Foundation
import Synchronization

/// A directory server started from the built `dfsd` next to this binary, on an ephemeral loopback port.
final class BenchDirectory {
    let process = Process()
    let url: String
    let root: String

    init() throws {
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        root = FileManager.default.temporaryDirectory.appendingPathComponent("dfs-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try "listen = 127.0.0.1:0\ndata_dir = \(root)/directory\n".write(
            toFile: root + "/directory.conf", atomically: true, encoding: .utf8)
        process.executableURL = bin.appendingPathComponent("dfsd")
        process.arguments = ["directory", "--config", root + "/directory.conf", "--log-level", "warning"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while !text.contains("\n"), Date() < deadline {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        guard let range = text.range(of: "listening on ") else { throw BenchError("dfsd did not start") }
        url = String(text[range.upperBound...].prefix { $0 != "\n" })
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
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
