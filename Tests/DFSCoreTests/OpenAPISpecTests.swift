import DFSProtocol
import Foundation
import Testing

/// `docs/openapi.yaml` documents exactly the routes the two servers' route tables declare: no route is
/// served without being documented, and no documented route is missing from the code.
///
/// Reads the sources rather than the running routers, so it needs neither server target. `GET` implies
/// `HEAD` (the router serves `HEAD` wherever it serves `GET`): the spec may document `HEAD` for a `GET`
/// route, but does not have to.
@Suite struct OpenAPISpecTests {
    /// One method on one route pattern, such as `GET /files/{id}`.
    struct Endpoint: Hashable, Comparable, CustomStringConvertible {
        let method: String
        let path: String

        static func < (lhs: Endpoint, rhs: Endpoint) -> Bool {
            (lhs.path, lhs.method) < (rhs.path, rhs.method)
        }

        var description: String { "\(method) \(path)" }
    }

    /// The package root: this file is `<root>/Tests/DFSCoreTests/OpenAPISpecTests.swift`.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    static let specFile = "docs/openapi.yaml"
    static let routeFiles = ["Sources/DirectoryServer/Routes.swift", "Sources/FileServer/Routes.swift"]

    static func read(_ relativePath: String) throws -> String {
        try String(contentsOf: packageRoot.appendingPathComponent(relativePath), encoding: .utf8)
    }

    // MARK: Extraction

    /// The routes a `Routes.swift` declares: `.simple("GET", "/stat")`, `.json("POST", "/mkdir", ...)` and
    /// `Route("PUT", "/files/{id}")`. Whole-line `//` comments are skipped.
    static func codeRoutes(_ source: String) throws -> Set<Endpoint> {
        let code = source.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
            .joined(separator: "\n")
        let declaration = try Regex(#"(?:simple|jsonDeferred|json|Route)\(\s*"([A-Z]+)"\s*,\s*"(/[^"]*)""#)
        var found = Set<Endpoint>()
        for match in code.matches(of: declaration) {
            guard let method = match.output[1].substring, let path = match.output[2].substring else { continue }
            found.insert(Endpoint(method: String(method), path: String(path)))
        }
        return found
    }

    /// The operations of an OpenAPI document: keys at 2-space indent under the top-level `paths:`, and the
    /// HTTP-method keys at 4-space indent under each. A line-based reading, enough for this document.
    static func specRoutes(_ yaml: String) -> Set<Endpoint> {
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        var found = Set<Endpoint>()
        var inPaths = false
        var currentPath: String?
        for rawLine in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let indent = line.prefix(while: { $0 == " " }).count
            if indent == 0 {
                inPaths = trimmed == "paths:" || trimmed.hasPrefix("paths: ")
                currentPath = nil
                continue
            }
            guard inPaths, trimmed.hasSuffix(":") else { continue }
            let key = unquote(String(trimmed.dropLast()))
            if indent == 2 {
                currentPath = key.hasPrefix("/") ? key : nil
            } else if indent == 4, let path = currentPath, methods.contains(key.lowercased()) {
                found.insert(Endpoint(method: key.uppercased(), path: path))
            }
        }
        return found
    }

    static func unquote(_ text: String) -> String {
        let key = text.trimmingCharacters(in: .whitespaces)
        if key.count >= 2, let first = key.first, first == key.last, first == "'" || first == "\"" {
            return String(key.dropFirst().dropLast())
        }
        return key
    }

    // MARK: Tests

    @Test func specDocumentsExactlyTheServedRoutes() throws {
        var code = Set<Endpoint>()
        for file in Self.routeFiles {
            let routes = try Self.codeRoutes(try Self.read(file))
            #expect(!routes.isEmpty, "no route declarations found in \(file): has the route table's syntax changed?")
            code.formUnion(routes)
        }
        let spec = Self.specRoutes(try Self.read(Self.specFile))
        #expect(!spec.isEmpty, "no operations found under 'paths:' in \(Self.specFile)")

        let impliedHead = Set(code.filter { $0.method == "GET" }.map { Endpoint(method: "HEAD", path: $0.path) })
        let undocumented = code.subtracting(spec).sorted()
        let unserved = spec.subtracting(code).subtracting(impliedHead).sorted()

        #expect(
            undocumented.isEmpty,
            "routes in the code but not in \(Self.specFile): \(undocumented.map(\.description).joined(separator: ", "))")
        #expect(
            unserved.isEmpty,
            "operations in \(Self.specFile) that no route serves: \(unserved.map(\.description).joined(separator: ", "))")
    }

    @Test func specListsEveryErrorCode() throws {
        let listed = Set(
            try Self.read(Self.specFile).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        let missing = ErrorCode.allCases.map(\.rawValue).filter { !listed.contains("- \($0)") }
        #expect(missing.isEmpty, "error codes missing from the Error schema's enum: \(missing.joined(separator: ", "))")
    }

    @Test func extractorsReadTheExpectedShapes() throws {
        let source = """
            .simple("GET", "/stat") { request, _ in .json(x) },
            // .simple("GET", "/commented-out") { _, _ in x },
            .json(
                "POST", "/mkdir", MkdirRequest.self) { _, _, body in x },
            Route("PUT", "/files/{id}") { request, params in x },
            """
        #expect(
            try Self.codeRoutes(source) == [
                Endpoint(method: "GET", path: "/stat"), Endpoint(method: "POST", path: "/mkdir"),
                Endpoint(method: "PUT", path: "/files/{id}"),
            ])

        let yaml = """
            openapi: 3.0.3
            paths:
              /stat:
                servers:
                  - url: http://127.0.0.1:5000
                get:
                  description: |
                    text
              '/files/{id}':
                parameters: []
                put:
                  summary: x
                head:
                  summary: y
            components:
              schemas:
                X:
                  get:
                    type: string
            """
        #expect(
            Self.specRoutes(yaml) == [
                Endpoint(method: "GET", path: "/stat"), Endpoint(method: "PUT", path: "/files/{id}"),
                Endpoint(method: "HEAD", path: "/files/{id}"),
            ])
    }
}
