internal import CMicroHTTPD
import Foundation

extension Response {
    /// Header names libmicrohttpd sets itself from the body; adding them would make it refuse the header.
    private static let managedHeaders: Set<String> = ["content-length", "transfer-encoding"]

    /// Queues this response on `connection` and hands its resources (a `.file` descriptor) to libmicrohttpd.
    /// Falls back to a 500 if the response cannot be built.
    func queue(on connection: OpaquePointer) -> MHD_Result {
        guard let mhdResponse = makeMHDResponse() else {
            if case .file = body {
                return Response.internalServerError.queue(on: connection)
            }
            return .NO
        }
        defer { MHD_destroy_response(mhdResponse) }
        for header in headers where !Response.managedHeaders.contains(header.name.lowercased()) {
            // A refused header (CR/LF in it) is dropped rather than failing the whole response.
            _ = MHD_add_response_header(mhdResponse, header.name, header.value)
        }
        let code = (100...599).contains(status) ? UInt32(status) : 500
        return MHD_queue_response(connection, code, mhdResponse)
    }

    /// Creates the MHD response for the body. On failure a `.file` descriptor is closed here.
    private func makeMHDResponse() -> OpaquePointer? {
        switch body {
        case .empty:
            return MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT)
        case .data(let data):
            return data.withUnsafeBytes { bytes in
                MHD_create_response_from_buffer(
                    bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                    .RESPMEM_MUST_COPY)
            }
        case .file(let descriptor, let offset, let length):
            // MHD owns (and closes) the descriptor only once the response exists.
            guard let response = MHD_create_response_from_fd_at_offset64(length, descriptor, offset) else {
                close(descriptor)
                return nil
            }
            return response
        }
    }
}
