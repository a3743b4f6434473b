import DFSProtocol
import MicroHTTPD
import ServerKit

/// The file server's whole route table.
enum FileServerRoutes {
    static func routes(_ service: FileService) -> [Route] {
        [
            .simple("GET", "/health") { _, _ in .json(OKResponse()) },
            .simple("GET", "/stats") { _, _ in .json(service.stats()) },
            Route("PUT", "/files/{id}") { request, params in try service.put(request, params) },
            .simple("GET", "/files/{id}") { request, params in try service.get(request, params) },
            .simple("DELETE", "/files/{id}") { request, params in try service.delete(request, params) },
        ]
    }
}
