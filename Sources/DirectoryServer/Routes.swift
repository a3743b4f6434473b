import DFSCore
import DFSProtocol
import Foundation
import Logging
import MicroHTTPD
import ServerKit

/// The directory server's whole route table.
enum DirectoryRoutes {
    static func routes(_ directory: Directory) -> [Route] {
        [
            .simple("GET", "/health") { _, _ in .json(OKResponse()) },
            .simple("GET", "/register_client") { _, _ in .json(try directory.registerClient()) },
            Route("POST", "/register_client") { _, _ in
                // The seed system took no body; any body is ignored.
                .collectBody(limit: 1 << 16, tooLarge: { .error(.tooLarge("body too large")) }) { _ in
                    Router.answer { .json(try directory.registerClient()) }
                }
            },
            .json("POST", "/register_fileserver", RegisterFileServerRequest.self) { request, _, body in
                try requireClusterToken(request, directory)
                return .json(try directory.registerFileServer(body), status: 201)
            },
            .json("POST", "/heartbeat", HeartbeatRequest.self) { request, _, body in
                try requireClusterToken(request, directory)
                try directory.heartbeat(body)
                return .json(OKResponse())
            },
            .simple("GET", "/fileservers") { _, _ in .json(FileServersResponse(fileServers: directory.fileServers())) },
            .simple("GET", "/stat") { request, _ in
                let target = try path(query: request)
                var entry = try directory.stat(target)
                entry.writeLockedBy = directory.locks.writer(of: target.description)?.clientId
                return .json(entry)
            },
            .simple("GET", "/content") { request, _ in
                try content(try directory.content(try path(query: request), ifNoneMatch: request.header("if-none-match")))
            },
            .simple("GET", "/ls") { request, _ in
                let limit = try integer(request, "limit", default: ListResponse.defaultLimit, 1...ListResponse.maxLimit)
                let page = try directory.list(try path(query: request), after: request.query["after"], limit: limit)
                var headers = [HTTPHeader("Content-Type", "application/json")]
                if let next = page.next {
                    // Also in a header, so a client can ask for the next page before it has parsed this one.
                    headers.append(HTTPHeader("X-DFS-Next", next.addingPercentEncoding(withAllowedCharacters: headerSafe) ?? ""))
                }
                return Response(status: 200, headers: headers, body: .data(page.encodedJSON()))
            },
            .json("POST", "/mkdir", MkdirRequest.self) { request, _, body in
                _ = try client(request, directory)
                return .json(try directory.mkdir(try path(body.path), parents: body.parents ?? false), status: 201)
            },
            .simple("DELETE", "/entries") { request, _ in
                _ = try client(request, directory)
                let recursive = try flag(request, "recursive")
                return .json(RemoveResponse(removed: try directory.remove(try path(query: request), recursive: recursive)))
            },
            .json("POST", "/mv", MoveRequest.self) { request, _, body in
                _ = try client(request, directory)
                return .json(try directory.move(from: try path(body.from), to: try path(body.to)))
            },
            .json("POST", "/writes", WriteRequest.self) { request, _, body in
                var write = body
                write.clientId = try client(request, directory)
                return .json(try directory.beginWrite(write), status: 201)
            },
            .json("POST", "/commits", CommitRequest.self) { request, _, body in
                .json(try directory.commit(body, clientId: try client(request, directory)))
            },
            .simple("GET", "/placement") { _, _ in .json(try directory.placement()) },
            .json("POST", "/ids", IdBlockRequest.self) { request, _, body in
                try requireClusterToken(request, directory)
                return .json(try directory.idBlock(count: body.count), status: 201)
            },
            .json("POST", "/commits/batch", BatchCommitRequest.self) { request, _, body in
                try requireClusterToken(request, directory)
                guard body.commits.count <= Directory.maxBatch else {
                    throw DFSError.badRequest("a batch holds at most \(Directory.maxBatch) commits")
                }
                return .json(
                    BatchCommitResponse(
                        outcomes: try directory.commitBatch(body.commits),
                        inlineMaxBytes: directory.config.inlineMaxBytes))
            },
            .jsonDeferred("POST", "/locks", LockRequest.self) { request, _, body in
                let caller = try client(request, directory, claimed: body.clientId)
                return try directory.locks.acquire(body, clientId: caller)
            },
            .json("PUT", "/locks/{id}", RenewRequest.self) { request, params, body in
                let caller = try client(request, directory, claimed: body.clientId)
                return .json(try directory.locks.renew(lockId: try id(params), clientId: caller, ttlMs: body.ttlMs))
            },
            .simple("DELETE", "/locks/{id}") { request, params in
                let caller = try client(request, directory, claimed: try clientId(request))
                try directory.locks.release(lockId: try id(params), clientId: caller)
                return .json(OKResponse())
            },
            .simple("DELETE", "/locks") { request, _ in
                let caller = try client(request, directory, claimed: try clientId(request))
                let released = try directory.locks.releaseAll(path: try path(query: request).description, clientId: caller)
                return .json(ReleaseResponse(released: released))
            },
            .json("POST", "/reports", ProblemReport.self) { request, _, body in
                // A file server (its scrubber) reports its own blobs with the cluster secret and is believed; a
                // client's report (read failover) is only a hint: the file server re-checks the blob first.
                let fromServer = directory.secret.matches(request.header(ClusterSecret.header))
                if !fromServer { _ = try client(request, directory) }
                try directory.report(body, verified: fromServer)
                return .json(OKResponse())
            },
            .simple("GET", "/replication") { _, _ in .json(try directory.replicationStatus()) },
            .simple("GET", "/locks") { request, _ in
                let filter = try request.query["path"].map { try path($0).description }
                return .json(directory.locks.list(path: filter))
            },
        ]
    }

    /// The HTTP answer to `GET /content` (see `ContentHeader`).
    static func content(_ content: Directory.Content) throws -> Response {
        switch content {
        case .bytes(let entry, let data):
            return Response(
                status: 200, headers: versionHeaders(entry) + [HTTPHeader("Content-Type", "application/octet-stream")],
                body: .data(data))
        case .notModified(let entry):
            return Response(status: 304, headers: versionHeaders(entry))
        case .elsewhere(let entry):
            guard let fileId = entry.fileId, let version = entry.version, let first = entry.replicas?.first else {
                throw DFSError(503, .unavailable, "no copy of \(entry.path) is known")
            }
            let body = try WireJSON.encode(entry)
            return Response(
                status: 307,
                headers: versionHeaders(entry) + [
                    HTTPHeader("Location", "\(first.url)/files/\(fileId)?version=\(version)"),
                    HTTPHeader("Content-Type", "application/json"),
                ], body: .data(body))
        }
    }

    /// The version a `GET /content` answer is about.
    private static func versionHeaders(_ entry: EntryInfo) -> [HTTPHeader] {
        guard let fileId = entry.fileId, let version = entry.version else { return [] }
        return [
            HTTPHeader("ETag", ContentHeader.etag(fileId: fileId, version: version)),
            HTTPHeader(ContentHeader.fileId, String(fileId)),
            HTTPHeader(ContentHeader.version, String(version)),
            HTTPHeader(ContentHeader.sha256, entry.sha256 ?? ""),
            HTTPHeader(ContentHeader.size, String(entry.size ?? 0)),
            HTTPHeader(ContentHeader.mtimeMs, String(entry.mtimeMs)),
        ]
    }

    /// The client a request's bearer token proves (401 without a valid one). When the request also names a
    /// client id (`claimed`), it must be the same (403).
    static func client(_ request: Request, _ directory: Directory, claimed: Int64? = nil) throws -> Int64 {
        let header = request.header("authorization")
        guard let header, header.lowercased().hasPrefix("bearer ") else {
            throw DFSError.unauthorized(
                "this request changes state and needs 'Authorization: Bearer <token>' (from POST /register_client)")
        }
        guard let id = directory.secret.clientTokens.clientId(authorization: header) else {
            throw DFSError.unauthorized("the bearer token is not valid for this cluster")
        }
        if let claimed, claimed != id {
            throw DFSError.forbidden("the token belongs to client \(id), not client \(claimed)")
        }
        return id
    }

    /// Server-to-server routes need the cluster secret (401 otherwise, and nothing changes).
    static func requireClusterToken(_ request: Request, _ directory: Directory) throws {
        guard directory.secret.matches(request.header(ClusterSecret.header)) else {
            throw DFSError.unauthorized("this route is for the cluster's servers: '\(ClusterSecret.header)' is missing or wrong")
        }
    }

    /// Validates a namespace path, as a 400 `invalid_path` when it is not acceptable.
    static func path(_ text: String) throws -> DFSPath {
        do {
            return try DFSPath(text)
        } catch {
            throw DFSError.invalidPath(error.message)
        }
    }

    /// What a header value may carry unescaped (ASCII only).
    static let headerSafe = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// An optional integer query parameter within `range`.
    static func integer(_ request: Request, _ name: String, default fallback: Int, _ range: ClosedRange<Int>) throws
        -> Int
    {
        guard let text = request.query[name] else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw DFSError.badRequest("query parameter '\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    static func path(query request: Request) throws -> DFSPath {
        guard let text = request.query["path"] else { throw DFSError.badRequest("query parameter 'path' is required") }
        return try path(text)
    }

    static func id(_ params: PathParameters) throws -> Int64 {
        guard let text = params["id"], let value = Int64(text), value > 0 else {
            throw DFSError.badRequest("the id in the URL must be a positive integer")
        }
        return value
    }

    /// The optional `client_id` query parameter.
    static func clientId(_ request: Request) throws -> Int64? {
        guard let text = request.query["client_id"] else { return nil }
        guard let value = Int64(text) else { throw DFSError.badRequest("query parameter 'client_id' must be an integer") }
        return value
    }

    static func flag(_ request: Request, _ name: String) throws -> Bool {
        switch request.query[name] {
        case nil, "false", "0": return false
        case "true", "1", "": return true
        case let other?: throw DFSError.badRequest("query parameter '\(name)' must be true or false, got '\(other)'")
        }
    }
}
