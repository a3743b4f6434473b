import DFSCore
import DFSProtocol
import Logging
import MicroHTTPD
import ServerKit

/// The directory server's whole route table.
enum DirectoryRoutes {
    static func routes(_ directory: Directory) -> [Route] {
        [
            .simple("GET", "/health") { _, _ in .json(OKResponse()) },
            .simple("GET", "/register_client") { _, _ in try registerClient(directory) },
            Route("POST", "/register_client") { _, _ in
                // The seed system took no body; any body is ignored.
                .collectBody(limit: 1 << 16, tooLarge: .error(.tooLarge("body too large"))) { _ in
                    Router.answer { try registerClient(directory) }
                }
            },
            .json("POST", "/register_fileserver", RegisterFileServerRequest.self) { _, _, body in
                .json(try directory.registerFileServer(body), status: 201)
            },
            .json("POST", "/heartbeat", HeartbeatRequest.self) { _, _, body in
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
            .simple("GET", "/ls") { request, _ in .json(try directory.list(try path(query: request))) },
            .json("POST", "/mkdir", MkdirRequest.self) { _, _, body in
                .json(try directory.mkdir(try path(body.path), parents: body.parents ?? false), status: 201)
            },
            .simple("DELETE", "/entries") { request, _ in
                let recursive = try flag(request, "recursive")
                return .json(RemoveResponse(removed: try directory.remove(try path(query: request), recursive: recursive)))
            },
            .json("POST", "/mv", MoveRequest.self) { _, _, body in
                .json(try directory.move(from: try path(body.from), to: try path(body.to)))
            },
            .json("POST", "/writes", WriteRequest.self) { _, _, body in
                .json(try directory.beginWrite(body), status: 201)
            },
            .json("POST", "/commits", CommitRequest.self) { _, _, body in
                .json(try directory.commit(body))
            },
            .jsonDeferred("POST", "/locks", LockRequest.self) { _, _, body in try directory.locks.acquire(body) },
            .json("PUT", "/locks/{id}", RenewRequest.self) { _, params, body in
                .json(try directory.locks.renew(lockId: try id(params), body))
            },
            .simple("DELETE", "/locks/{id}") { request, params in
                try directory.locks.release(lockId: try id(params), clientId: try clientId(request))
                return .json(OKResponse())
            },
            .simple("DELETE", "/locks") { request, _ in
                let released = try directory.locks.releaseAll(
                    path: try path(query: request).description, clientId: try clientId(request))
                return .json(ReleaseResponse(released: released))
            },
            .simple("GET", "/locks") { request, _ in
                let filter = try request.query["path"].map { try path($0).description }
                return .json(directory.locks.list(path: filter))
            },
        ]
    }

    private static func registerClient(_ directory: Directory) throws -> Response {
        .json(RegisterClientResponse(clientId: try directory.registerClient()))
    }

    /// Validates a namespace path, as a 400 `invalid_path` when it is not acceptable.
    static func path(_ text: String) throws -> DFSPath {
        do {
            return try DFSPath(text)
        } catch {
            throw DFSError.invalidPath(error.message)
        }
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

    static func clientId(_ request: Request) throws -> Int64 {
        guard let text = request.query["client_id"], let value = Int64(text) else {
            throw DFSError.badRequest("query parameter 'client_id' (an integer) is required")
        }
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
