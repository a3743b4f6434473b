import Foundation

// dfs-bench: the client side of the benchmark harness (bench/run.py drives it; see bench/README.md).
// Every suite runs against a directory given by --directory (or, without it, a cluster it starts itself on loopback),
// is bounded in count, and prints ONE line of JSON on stdout with raw samples; run.py does the statistics and the table.
//
//   dfs-bench writes   --directory URL --prefix /w --files N [--clients 16] [--size 4096] [--home DIR]
//   dfs-bench reads    --directory URL --prefix /w --files N [--clients 16] [--size 4096] [--home DIR]
//   dfs-bench httpget  --urls-file FILE [--clients 16] [--size 4096]          (reference: the same GETs elsewhere)
//   dfs-bench rawfsync --dir DIR --files N [--clients 16] [--size 4096] [--dirsync 0|1]
//   dfs-bench ls       --directory URL --path /big [--rounds 5]
//   dfs-bench linkread --directory URL --prefix /l --files N [--size 4096] [--home DIR]
//   dfs-bench cache    --directory URL [--size BYTES] [--rounds 3] [--home DIR]
//   dfs-bench locks    [--directory URL] [--rounds 1000]

let arguments = Array(CommandLine.arguments.dropFirst())
guard let suite = arguments.first else {
    FileHandle.standardError.write(
        Data("usage: dfs-bench writes|reads|httpget|rawfsync|ls|linkread|cache|locks [--option value]...\n".utf8))
    exit(2)
}

/// `--name value` options.
struct Options {
    let values: [String: String]
    init(_ arguments: [String]) {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            if arguments[index].hasPrefix("--"), index + 1 < arguments.count {
                values[String(arguments[index].dropFirst(2))] = arguments[index + 1]
                index += 2
            } else {
                index += 1
            }
        }
        self.values = values
    }
    func string(_ name: String) -> String? { values[name] }
    func int(_ name: String, _ fallback: Int) -> Int { values[name].flatMap { Int($0) } ?? fallback }
    func require(_ name: String) throws -> String {
        guard let value = values[name] else { throw BenchError("missing --\(name)") }
        return value
    }
}

let options = Options(Array(arguments.dropFirst()))
let home = options.string("home") ?? FileManager.default.temporaryDirectory.appendingPathComponent(
    "dfs-bench-home-\(UUID().uuidString)"
).path

do {
    let result: [String: Any]
    switch suite {
    case "writes":
        result = try Workloads.writes(
            directory: try options.require("directory"), prefix: try options.require("prefix"),
            files: options.int("files", 1000), clients: options.int("clients", 16), size: options.int("size", 4096),
            home: home)
    case "reads":
        result = try Workloads.reads(
            directory: try options.require("directory"), prefix: try options.require("prefix"),
            files: options.int("files", 1000), clients: options.int("clients", 16), size: options.int("size", 4096),
            home: home)
    case "httpget":
        result = try Workloads.httpGet(
            urlsFile: try options.require("urls-file"), clients: options.int("clients", 16),
            size: options.int("size", 4096))
    case "rawfsync":
        result = try Workloads.rawFsync(
            dir: try options.require("dir"), files: options.int("files", 1000), threads: options.int("clients", 16),
            size: options.int("size", 4096), dirSync: options.int("dirsync", 0) != 0)
    case "ls":
        result = try Workloads.list(
            directory: try options.require("directory"), path: try options.require("path"),
            rounds: options.int("rounds", 5))
    case "linkread":
        result = try Workloads.linkRead(
            directory: try options.require("directory"), prefix: try options.require("prefix"),
            files: options.int("files", 20), size: options.int("size", 4096), home: home)
    case "cache":
        result = try CacheBench(
            directory: try options.require("directory"), size: options.int("size", 100 << 20),
            repetitions: max(1, min(options.int("rounds", 3), 20)), home: home
        ).run()
    case "locks":
        result = try LockBench(rounds: options.int("rounds", 1000), directory: options.string("directory")).run()
    default:
        throw BenchError("unknown suite \(suite)")
    }
    let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    FileHandle.standardOutput.write(json + Data("\n".utf8))
} catch {
    FileHandle.standardError.write(Data("dfs-bench \(suite): \(error)\n".utf8))
    exit(1)
}
