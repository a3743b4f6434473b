import Curl
import DFSClient
import DFSProtocol
import Foundation
import Synchronization

// dfs-bench: benchmarks against a cluster it starts itself on loopback (bounded in count and time).
//
//   dfs-bench locks [--rounds N]    lock hand-over latency and uncontended acquire+release rate
//   dfs-bench cache [--rounds N]    cold versus cached read of 1 MiB and 100 MiB files

let arguments = Array(CommandLine.arguments.dropFirst())
guard let suite = arguments.first else {
    FileHandle.standardError.write(Data("usage: dfs-bench locks|cache [--rounds N]\n".utf8))
    exit(2)
}
let rounds = arguments.firstIndex(of: "--rounds").flatMap { Int(arguments[$0 + 1]) } ?? 500

switch suite {
case "locks":
    try LockBench(rounds: rounds).run()
case "cache":
    try CacheBench(repetitions: max(1, min(rounds, 20))).run()
default:
    FileHandle.standardError.write(Data("dfs-bench: unknown suite \(suite)\n".utf8))
    exit(2)
}
