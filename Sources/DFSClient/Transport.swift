import Curl
import DFSProtocol
import Foundation

/// JSON calls to the directory and raw transfers to file servers, with errors mapped to `DFSClientError`.
final class Transport {
    let http: HTTPClient
    let directory: String
    /// The client's bearer token, sent with every directory call but a GET once known.
    var token: String?

    init(directory: String, caFile: String?) {
        self.directory = directory
        self.http = HTTPClient(connectTimeout: 5, timeout: 0, caFile: caFile)
    }

    /// Calls a directory route and decodes its JSON answer.
    func call<T: Decodable>(
        _ method: String, _ route: String, query: [String: String] = [:], body: (any Encodable)? = nil,
        as type: T.Type
    ) throws -> T {
        let response = try send(method, route, query: query, body: body)
        do {
            return try WireJSON.decode(T.self, from: response.body)
        } catch {
            throw DFSClientError(
                status: response.status, code: "bad_response", message: "unexpected answer from \(route)")
        }
    }

    /// Calls a directory route; the raw answer, once it is known to be a success (or one of `accepting`).
    func send(
        _ method: String, _ route: String, query: [String: String] = [:], body: (any Encodable)? = nil,
        headers extra: [HTTPHeader] = [], accepting: Set<Int> = []
    ) throws -> HTTPResponse {
        var headers = extra
        // Reads are open (docs/security.md): the token goes with the calls that change state only, and a GET costs
        // neither side a header it does not use.
        if method != "GET", let token { headers.append(HTTPHeader("Authorization", "Bearer \(token)")) }
        var payload = RequestBody.none
        if let body {
            payload = .data(try WireJSON.encode(body))
            headers.append(HTTPHeader("Content-Type", "application/json"))
        }
        let url = directory + route + Self.queryString(query)
        let response: HTTPResponse
        do {
            response = try http.send(method: method, url: url, headers: headers, body: payload)
        } catch let error as CurlError {
            throw DFSClientError.unreachable("the directory at \(directory)", error.message)
        }
        if !accepting.contains(response.status) { try Self.check(response) }
        return response
    }

    /// Throws the server's error when the status is not 2xx.
    static func check(_ response: HTTPResponse) throws {
        guard !(200..<300).contains(response.status) else { return }
        if let body = try? WireJSON.decode(ErrorBody.self, from: response.body) {
            var message = body.error.message
            if let holders = body.error.holders, !holders.isEmpty {
                message += " (held by " + holders.map { "client \($0.clientId) \($0.mode) lock \($0.lockId)" }
                    .joined(separator: ", ") + ")"
            }
            throw DFSClientError(status: response.status, code: body.error.code, message: message)
        }
        throw DFSClientError(status: response.status, code: "http_\(response.status)", message: "HTTP \(response.status)")
    }

    static func queryString(_ query: [String: String]) -> String {
        guard !query.isEmpty else { return "" }
        return "?" + query.sorted { $0.key < $1.key }.map { "\($0.key)=\(escape($0.value))" }.joined(separator: "&")
    }

    /// Percent-encodes a query value (everything but unreserved characters and `/`).
    static func escape(_ value: String) -> String {
        // Most paths need no escaping: checked byte-wise, as Foundation's encoder costs a few µs a call.
        guard !value.utf8.allSatisfy(isUnreserved) else { return value }
        return value.addingPercentEncoding(withAllowedCharacters: unescaped) ?? value
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    /// Built once: making a CharacterSet is costly next to a small request.
    private static let unescaped = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")
}
