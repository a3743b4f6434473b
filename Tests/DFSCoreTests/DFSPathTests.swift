import DFSCore
import Testing

@Suite struct DFSPathTests {
    @Test(arguments: [
        ("/", "/"), ("/docs/hello.txt", "/docs/hello.txt"), ("//docs///a/", "/docs/a"), ("/a b/ü.txt", "/a b/ü.txt"),
    ])
    func normalizes(input: String, expected: String) throws {
        #expect(try DFSPath(input).description == expected)
    }

    @Test(arguments: ["", "docs/a", "/a/../b", "/a/./b", "/..", "/a\u{0}b", "/a\nb", "/\u{FFFD}\u{FFFD}", "/a/..//b"])
    func rejects(input: String) {
        #expect(throws: PathError.self) { try DFSPath(input) }
    }

    @Test func boundsLength() throws {
        let longName = String(repeating: "x", count: 256)
        #expect(throws: PathError.self) { try DFSPath("/" + longName) }
        #expect(try DFSPath("/" + String(repeating: "x", count: 255)).components.count == 1)
        let tooLong = String(repeating: "/abcdefgh", count: 500)
        #expect(throws: PathError.self) { try DFSPath(tooLong) }
    }

    @Test func boundsDepth() throws {
        let deep = String(repeating: "/d", count: DFSPath.maxDepth)
        #expect(try DFSPath(deep).components.count == DFSPath.maxDepth)
        #expect(throws: PathError.self) { try DFSPath(deep + "/d") }
    }

    @Test func backslashesAreOrdinaryCharacters() throws {
        #expect(try DFSPath(#"/a\..\..\b"#).components == [#"a\..\..\b"#])
    }

    @Test func parentNameAndContainment() throws {
        let path = try DFSPath("/docs/reports/q1.txt")
        #expect(path.name == "q1.txt")
        #expect(path.parent.description == "/docs/reports")
        #expect(DFSPath.root.parent == DFSPath.root)
        #expect(path.isWithin(try DFSPath("/docs")))
        #expect(!(try DFSPath("/docsx/a")).isWithin(try DFSPath("/docs")))
        #expect(try DFSPath("/docs").appending("a").description == "/docs/a")
    }
}

@Suite struct PlacementTests {
    func load(_ id: Int64, _ bytes: Int64, inflight: Int64 = 0, files: Int64 = 0, live: Bool = true) -> ServerLoad {
        ServerLoad(id: id, storedBytes: bytes, inflightBytes: inflight, files: files, isLive: live)
    }

    @Test func picksLeastLoadedLiveServer() {
        let servers = [load(1, 500), load(2, 100), load(3, 50, live: false)]
        #expect(Placement.choose(from: servers, count: 1) == [2])
    }

    @Test func countsInflightBytes() {
        let servers = [load(1, 100, inflight: 500), load(2, 300)]
        #expect(Placement.choose(from: servers, count: 1) == [2])
    }

    @Test func tiesGoToFewerFilesThenLowerId() {
        #expect(Placement.choose(from: [load(2, 0), load(1, 0)], count: 1) == [1])
        #expect(Placement.choose(from: [load(1, 0, files: 3), load(2, 0, files: 1)], count: 1) == [2])
    }

    @Test func distinctServersUpToCount() {
        let servers = [load(1, 3), load(2, 2), load(3, 1)]
        #expect(Placement.choose(from: servers, count: 2) == [3, 2])
        #expect(Placement.choose(from: servers, count: 5).count == 3)
        #expect(Placement.choose(from: [], count: 1).isEmpty)
    }

    /// 30 equal files placed one after another onto 3 servers spread 10/10/10.
    @Test func equalFilesSpreadEvenly() {
        var servers = [load(1, 0), load(2, 0), load(3, 0)]
        var counts: [Int64: Int] = [:]
        for _ in 0..<30 {
            let id = Placement.choose(from: servers, count: 1)[0]
            counts[id, default: 0] += 1
            let index = servers.firstIndex { $0.id == id }!
            servers[index].storedBytes += 1000
            servers[index].files += 1
        }
        #expect(counts.values.max()! - counts.values.min()! <= 1)
    }
}

@Suite struct LivenessTests {
    @Test func thresholds() {
        #expect(Liveness.of(lastHeartbeatMs: 1000, nowMs: 1500, staleAfterMs: 1000, deadAfterMs: 5000) == .live)
        #expect(Liveness.of(lastHeartbeatMs: 1000, nowMs: 2000, staleAfterMs: 1000, deadAfterMs: 5000) == .stale)
        #expect(Liveness.of(lastHeartbeatMs: 1000, nowMs: 6000, staleAfterMs: 1000, deadAfterMs: 5000) == .dead)
    }
}
