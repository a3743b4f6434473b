import DFSProtocol
import Foundation
import Logging
import MicroHTTPD

/// Path parameters captured by `{name}` segments of a route pattern.
public typealias PathParameters = [String: String]

/// One route: a method, a pattern such as `/files/{id}`, and its handler.
public struct Route: Sendable {
    public typealias Handler = @Sendable (Request, PathParameters) throws -> Disposition

    let method: String
    let segments: [Substring]
    let handler: Handler

    /// A route whose handler decides how to treat the body itself.
    public init(_ method: String, _ pattern: String, handler: @escaping Handler) {
        self.method = method
        self.segments = pattern.split(separator: "/")
        self.handler = handler
    }

    /// A route without a request body that answers at once.
    public static func simple(
        _ method: String, _ pattern: String,
        _ handler: @escaping @Sendable (Request, PathParameters) throws -> Response
    ) -> Route {
        Route(method, pattern) { request, params in .respond(try handler(request, params)) }
    }

    /// A route that decodes a JSON body and may park the request (`.suspend`) instead of answering at once.
    public static func jsonDeferred<Body: Decodable>(
        _ method: String, _ pattern: String, _ body: Body.Type, limit: Int = 1 << 20,
        _ handler: @escaping @Sendable (Request, PathParameters, Body) throws -> Disposition
    ) -> Route {
        Route(method, pattern) { request, params in
            .collectBodyThen(limit: limit, tooLarge: { .error(.tooLarge("request body is larger than \(limit) bytes")) }) {
                data in
                do {
                    return try handler(request, params, try decodeBody(Body.self, data))
                } catch let error as DFSError {
                    return .respond(.error(error))
                } catch {
                    return .respond(.error(DFSError(500, .internal, "internal error")))
                }
            }
        }
    }

    public static func decodeBody<Body: Decodable>(_ type: Body.Type, _ data: Data) throws -> Body {
        guard !data.isEmpty else { throw DFSError.badRequest("a JSON body is required") }
        guard !hasNonIntegerNumber(data) else {
            throw DFSError.badRequest("malformed JSON body: every number in a request is an integer (no fraction or exponent)")
        }
        do {
            return try WireJSON.decode(Body.self, from: data)
        } catch {
            throw DFSError.badRequest("malformed JSON body: \(Router.describe(error))")
        }
    }

    /// True when the JSON text has a number with a fraction or an exponent (`1.0`, `1e2`) outside its strings.
    ///
    /// No field of the wire protocol is fractional, and `JSONDecoder` reads `1.0` into an integer field: without this
    /// a request the API documents as invalid (`"size_hint": 0.0`) was taken (found by the long fuzz run).
    public static func hasNonIntegerNumber(_ data: Data) -> Bool {
        // Over an array, strings skipped in a tight loop: iterating `Data` byte by byte was a fifth of the
        // directory's CPU on batches of creates carrying their bytes (base64 strings).
        let bytes = [UInt8](data)
        var index = 0
        var previous: UInt8 = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") {
                // Skip to the closing quote, past escaped characters.
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                index += 1
            } else if byte == UInt8(ascii: ".") {
                return true  // outside strings, only a number has a dot
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E"), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(previous) {
                return true  // an exponent (the e of true and false follows a letter)
            }
            previous = byte
        }
        return false
    }

    /// A route that decodes a JSON body (at most `limit` bytes) and answers with the handler's response.
    public static func json<Body: Decodable>(
        _ method: String, _ pattern: String, _ body: Body.Type, limit: Int = 1 << 20,
        _ handler: @escaping @Sendable (Request, PathParameters, Body) throws -> Response
    ) -> Route {
        Route(method, pattern) { request, params in
            .collectBody(limit: limit, tooLarge: { .error(.tooLarge("request body is larger than \(limit) bytes")) }) {
                data in
                Router.answer { try handler(request, params, try decodeBody(Body.self, data)) }
            }
        }
    }

    /// The captured parameters when `pathSegments` fits this route's pattern.
    func parameters(for pathSegments: [Substring]) -> PathParameters? {
        guard pathSegments.count == segments.count else { return nil }
        var params: PathParameters = [:]
        for (pattern, actual) in zip(segments, pathSegments) {
            if pattern.hasPrefix("{") && pattern.hasSuffix("}") {
                params[String(pattern.dropFirst().dropLast())] = String(actual)
            } else if pattern != actual {
                return nil
            }
        }
        return params
    }
}

/// One route table per server: finds the route, answers 404/405, and turns thrown errors into the error shape.
public struct Router: Sendable {
    private let routes: [Route]
    private let logger: Logger
    private let maxHeaderBytes: Int

    /// - Parameter maxHeaderBytes: requests whose URL and headers together are larger get 431.
    public init(routes: [Route], logger: Logger, maxHeaderBytes: Int = 16 << 10) {
        self.routes = routes
        self.logger = logger
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// The methods and patterns served, for documentation checks.
    public var table: [(method: String, pattern: String)] {
        routes.map { ($0.method, "/" + $0.segments.joined(separator: "/")) }
    }

    /// Dispatches one request.
    public func handle(_ request: Request) -> Disposition {
        let headerBytes = request.headers.reduce(request.path.utf8.count) { $0 + $1.key.utf8.count + $1.value.utf8.count + 4 }
            + request.query.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 }
        guard headerBytes <= maxHeaderBytes else {
            return .respond(
                .error(DFSError(431, .tooLarge, "request URL and headers are larger than \(maxHeaderBytes) bytes")))
        }
        let pathSegments = request.path.split(separator: "/")
        var allowed: [String] = []
        for route in routes {
            guard let params = route.parameters(for: pathSegments) else { continue }
            let method = request.method == "HEAD" ? "GET" : request.method
            guard route.method == method else {
                allowed.append(route.method)
                continue
            }
            do {
                return try route.handler(request, params)
            } catch let error as DFSError {
                return .respond(.error(error))
            } catch {
                logger.error("unhandled error in \(request.method) \(request.path): \(error)")
                return .respond(.error(DFSError(500, .internal, "internal error")))
            }
        }
        if !allowed.isEmpty {
            let allow = Set(allowed + (allowed.contains("GET") ? ["HEAD"] : [])).sorted().joined(separator: ", ")
            return .respond(
                .error(
                    DFSError(405, .methodNotAllowed, "\(request.method) is not allowed on \(request.path)"),
                    headers: [HTTPHeader("Allow", allow)]))
        }
        return .respond(.error(.notFound("no route for \(request.method) \(request.path)")))
    }

    /// Runs a handler body, mapping thrown errors to the error shape.
    public static func answer(_ body: () throws -> Response) -> Response {
        do {
            return try body()
        } catch let error as DFSError {
            return .error(error)
        } catch {
            return .error(DFSError(500, .internal, "internal error"))
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "wrong type for '\(path)'"
        case DecodingError.dataCorrupted: return "not valid JSON"
        default: return "cannot decode"
        }
    }
}
