import DFSProtocol
import Foundation
import MicroHTTPD
import ServerKit

/// The file server's whole route table.
enum FileServerRoutes {
    static func routes(_ service: FileService) -> [Route] {
        [
            .simple("GET", "/health") { _, _ in .json(OKResponse()) },
            .simple("GET", "/stats") { _, _ in .json(service.stats()) },
            Route("PUT", "/files/{id}") { request, params in try service.put(request, params) },
            Route("PUT", "/creates") { request, _ in try service.create(request) },
            .simple("GET", "/files/{id}") { request, params in try service.get(request, params) },
            .simple("DELETE", "/files/{id}") { request, params in try service.delete(request, params) },
            .simple("GET", "/inventory") { request, _ in try service.inventory(request) },
            .simple("GET", "/inventory/digests") { request, _ in try service.inventoryDigests(request) },
            Route("POST", "/replicate") { request, _ in
                // The cluster token is checked before the body is read, so strangers get 401 whatever they send.
                try service.requireClusterToken(request, "replication")
                return .collectBody(limit: 1 << 20, tooLarge: { .error(.tooLarge("request body is larger than 1 MiB")) }) {
                    data in
                    Router.answer {
                        guard !data.isEmpty else { throw DFSError.badRequest("a JSON body is required") }
                        guard let order = try? Route.decodeBody(ReplicateRequest.self, data) else {
                            throw DFSError.badRequest(
                                "malformed JSON body: expected {file_id, version, sha256, size, source_url}")
                        }
                        return try service.replicate(request, order)
                    }
                }
            },
            .simple("GET", "/scrub") { _, _ in .json(service.scrubber.status) },
            Route("POST", "/verify") { request, _ in
                try service.requireClusterToken(request, "verification")
                return .collectBody(limit: 1 << 16, tooLarge: { .error(.tooLarge("request body is larger than 64 KiB")) }) {
                    data in
                    Router.answer {
                        guard let order = try? Route.decodeBody(VerifyRequest.self, data) else {
                            throw DFSError.badRequest("malformed JSON body: expected {file_id, version}")
                        }
                        return .json(service.verify(order))
                    }
                }
            },
        ]
    }
}
