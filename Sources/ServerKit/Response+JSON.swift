import DFSProtocol
import Foundation
import MicroHTTPD

extension Response {
    /// A JSON response with the wire encoding.
    public static func json<T: Encodable>(_ value: T, status: Int = 200) -> Response {
        do {
            // The hottest answers (stat, listings, write tickets, upload results, errors) have a hand-written encoder,
            // which WireJSON.encode picks: for a stat, Foundation's JSONEncoder was a quarter of the CPU.
            let body = try WireJSON.encode(value)
            return Response(
                status: status, headers: [HTTPHeader("Content-Type", "application/json")], body: .data(body))
        } catch {
            return .error(DFSError(500, .internal, "could not encode the response"))
        }
    }

    /// The one error shape, with its status.
    public static func error(_ error: DFSError, headers: [HTTPHeader] = []) -> Response {
        let body = (try? WireJSON.encode(ErrorBody(code: error.code, message: error.message, holders: error.holders)))
            ?? Data()
        return Response(
            status: error.status, headers: [HTTPHeader("Content-Type", "application/json")] + headers,
            body: .data(body))
    }
}
