import Foundation
import SQLite
import Testing

@Suite("SQLite: Database on a temp file")
struct SQLiteTests {
    /// A fresh directory for one test's database file; removed by the caller's `defer`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sqlite-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static let schema = """
        PRAGMA journal_mode=WAL;
        CREATE TABLE IF NOT EXISTS items(
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER, ratio REAL, data BLOB, note TEXT);
        """

    struct Abort: Error {}

    /// Memory statistics are off in every process that uses the wrapper (they took a global mutex per allocation).
    @Test func sqliteKeepsNoProcessWideMemoryCount() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try Database(path: dir.appendingPathComponent("m.sqlite").path)
        try db.execute("CREATE TABLE t(x BLOB)")
        for _ in 0..<100 { try db.run("INSERT INTO t(x) VALUES (?)", [.blob(Data(count: 4096))]) }
        #expect(try db.query("SELECT COUNT(*) FROM t").first?.int(0) == 100)
        #expect(!Database.countsMemory)
    }

    @Test func insertAndQueryEveryType() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = try Database(path: directory.appendingPathComponent("db.sqlite").path)
        try db.execute(Self.schema)

        let blob = Data([0, 1, 2, 255, 0])
        try db.run(
            "INSERT INTO items(name, size, ratio, data, note) VALUES (?, ?, ?, ?, ?)",
            [.text("a\u{0}é"), .integer(Int64.max), .real(0.25), .blob(blob), .null])
        #expect(db.lastInsertRowID == 1)
        #expect(db.changes == 1)
        try db.run(
            "INSERT INTO items(name, size, data, note) VALUES (?, ?, ?, ?)",
            [.text("empty"), .integer(-1), .blob(Data()), .text("")])

        let rows = try db.query("SELECT id, name, size, ratio, data, note FROM items ORDER BY id")
        #expect(rows.count == 2)
        #expect(rows[0].int(0) == 1)
        #expect(rows[0].text(1) == "a\u{0}é")
        #expect(rows[0][2] == .integer(Int64.max))
        #expect(rows[0][3] == .real(0.25))
        #expect(rows[0].blob(4) == blob)
        #expect(rows[0][5] == .null)
        #expect(rows[0].text(2) == nil)
        #expect(rows[0][99] == .null)
        #expect(rows[1].blob(4) == Data())
        #expect(rows[1].text(5) == "")
        #expect(rows[1][3] == .null)

        // Same SQL again: served from the statement cache, with fresh bindings.
        let one = try db.query("SELECT name FROM items WHERE size = ?", [.integer(-1)])
        #expect(one.map { $0.text(0) } == ["empty"])
        let other = try db.query("SELECT name FROM items WHERE size = ?", [.integer(Int64.max)])
        #expect(other.map { $0.text(0) } == ["a\u{0}é"])

        try db.run("UPDATE items SET size = size + 1 WHERE size < ?", [.integer(100)])
        #expect(db.changes == 1)
    }

    @Test func transactionCommitsOrRollsBack() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = try Database(path: directory.appendingPathComponent("db.sqlite").path)
        try db.execute(Self.schema)

        let id = try db.transaction { () throws -> Int64 in
            try db.run("INSERT INTO items(name) VALUES (?)", [.text("kept")])
            return db.lastInsertRowID
        }
        #expect(id == 1)

        #expect(throws: Abort.self) {
            try db.transaction {
                try db.run("INSERT INTO items(name) VALUES (?)", [.text("dropped")])
                throw Abort()
            }
        }
        // A failing statement inside also rolls back the earlier ones.
        #expect(throws: SQLiteError.self) {
            try db.transaction {
                try db.run("INSERT INTO items(name) VALUES (?)", [.text("dropped too")])
                try db.run("INSERT INTO items(name) VALUES (?)", [.text("kept")])
            }
        }
        // Nested: the inner failure undoes only the inner part.
        try db.transaction {
            try db.run("INSERT INTO items(name) VALUES (?)", [.text("outer")])
            try? db.transaction {
                try db.run("INSERT INTO items(name) VALUES (?)", [.text("inner")])
                throw Abort()
            }
        }
        let names = try db.query("SELECT name FROM items ORDER BY id").compactMap { $0.text(0) }
        #expect(names == ["kept", "outer"])
        // The connection is out of any transaction: a new one can begin.
        try db.transaction { try db.run("DELETE FROM items WHERE name = ?", [.text("outer")]) }
    }

    @Test func dataPersistsAcrossReopen() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("db.sqlite").path
        do {
            let db = try Database(path: path)
            try db.execute(Self.schema)
            try db.transaction {
                for index in 0..<100 {
                    try db.run(
                        "INSERT INTO items(name, size) VALUES (?, ?)", [.text("f\(index)"), .integer(Int64(index))])
                }
            }
        }
        let reopened = try Database(path: path)
        let rows = try reopened.query("SELECT count(*), sum(size) FROM items")
        #expect(rows.first?.int(0) == 100)
        #expect(rows.first?.int(1) == 4950)
    }

    @Test func constraintViolationSurfacesAsSQLiteError() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = try Database(path: directory.appendingPathComponent("db.sqlite").path)
        try db.execute(Self.schema)
        try db.run("INSERT INTO items(name) VALUES (?)", [.text("same")])
        let error = try #require(throws: SQLiteError.self) {
            try db.run("INSERT INTO items(name) VALUES (?)", [.text("same")])
        }
        #expect(error.code == 19)
        #expect(error.extendedCode == 2067)
        #expect(error.isConstraintViolation)
        #expect(error.message.contains("UNIQUE"))
        // The cached statement was reset: it works again with another value.
        try db.run("INSERT INTO items(name) VALUES (?)", [.text("different")])
    }

    @Test func misuseIsReportedNotIgnored() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = try Database(path: directory.appendingPathComponent("db.sqlite").path)
        try db.execute(Self.schema)
        let wrongCount = try #require(throws: SQLiteError.self) {
            try db.run("INSERT INTO items(name, size) VALUES (?, ?)", [.text("x")])
        }
        #expect(wrongCount.code == 25)
        let twoStatements = try #require(throws: SQLiteError.self) {
            try db.run("DELETE FROM items; DELETE FROM items")
        }
        #expect(twoStatements.code == 21)
        #expect(throws: SQLiteError.self) { try db.query("SELECT nope FROM items") }
        #expect(throws: SQLiteError.self) { try db.execute("CREATE TABLE items(id)") }
        #expect(throws: SQLiteError.self) {
            try Database(path: directory.appendingPathComponent("no/such/dir/db").path)
        }
        try db.run("DELETE FROM items;  ")
    }
}
