import Curl
import DFSProtocol
import Foundation
import ServerKit
import Synchronization

/// One hop of a pipelined upload: a file server's base URL and the ticket it will check.
struct ForwardTarget: Equatable, Sendable {
    let url: String
    let ticket: String

    /// The most hops one header may name.
    static let maxHops = 16

    /// Parses an `X-DFS-Forward` value: `<url> <ticket>, <url> <ticket>, ...` (empty: no hops).
    static func parse(_ header: String?) throws -> [ForwardTarget] {
        guard let header, !header.trimmingCharacters(in: .whitespaces).isEmpty else { return [] }
        let hops = try header.split(separator: ",").map { try parseHop(String($0)) }
        guard hops.count <= maxHops else {
            throw DFSError.badRequest("\(PipelineHeader.name) names \(hops.count) servers; at most \(maxHops)")
        }
        return hops
    }

    /// Parses the `X-DFS-Forward` value of a create: `<url>, <url>, ...` (this server writes the tickets).
    static func parseURLs(_ header: String?) throws -> [String] {
        guard let header, !header.trimmingCharacters(in: .whitespaces).isEmpty else { return [] }
        let urls = try header.split(separator: ",").map { part -> String in
            var url = part.trimmingCharacters(in: .whitespaces)
            while url.hasSuffix("/") { url.removeLast() }
            guard let valid = validURL(url) else {
                throw DFSError.badRequest("\(PipelineHeader.name): '\(url)' is not a URL like http://127.0.0.1:5002")
            }
            return valid
        }
        guard urls.count <= maxHops else {
            throw DFSError.badRequest("\(PipelineHeader.name) names \(urls.count) servers; at most \(maxHops)")
        }
        return urls
    }

    private static func parseHop(_ text: String) throws -> ForwardTarget {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else {
            throw DFSError.badRequest("\(PipelineHeader.name) entries must be '<url> <ticket>', got '\(text)'")
        }
        var url = String(parts[0])
        while url.hasSuffix("/") { url.removeLast() }
        guard let url = validURL(url) else {
            throw DFSError.badRequest("\(PipelineHeader.name): '\(parts[0])' is not a URL like http://127.0.0.1:5002")
        }
        let ticket = String(parts[1])
        guard !ticket.isEmpty, ticket.allSatisfy({ $0 == "." || $0.isHexDigit }) else {
            throw DFSError.badRequest("\(PipelineHeader.name): '\(ticket)' is not a ticket")
        }
        return ForwardTarget(url: url, ticket: ticket)
    }

    /// `http(s)://host:port` with nothing after the port, else nil.
    static func validURL(_ text: String) -> String? {
        for scheme in ["http://", "https://"] where text.hasPrefix(scheme) {
            return ListenAddress(String(text.dropFirst(scheme.count))) != nil ? text : nil
        }
        return nil
    }
}

/// Passes a pipelined upload on to the next server, on its own thread with its own `HTTPClient`, reading the
/// body from a bounded `ChunkQueue` the receiving side fills.
final class Forwarder: Sendable {
    /// How the forward ended.
    enum Outcome: Sendable {
        case stored(PipelineResult)
        case failed(String)
    }

    let target: ForwardTarget
    let queue: ChunkQueue
    private let url: String
    private let headers: [Curl.HTTPHeader]
    private let length: Int64?
    private let caFile: String?
    private let outcome = Mutex<Outcome?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - rest: the hops after `target`, passed on in its `X-DFS-Forward` header.
    ///   - length: the body's length when known (`Content-Length`), else nil (chunked).
    init(
        name: BlobName, fence: Int64?, target: ForwardTarget, rest: [ForwardTarget], length: Int64?,
        expectedSHA256: String?, caFile: String?, bufferBytes: Int
    ) {
        self.target = target
        self.length = length
        self.caFile = caFile
        queue = ChunkQueue(capacity: bufferBytes)
        url =
            "\(target.url)/files/\(name.fileId)?version=\(name.version)&ticket=\(target.ticket)"
            + (fence.map { "&fence=\($0)" } ?? "")
        var headers = [Curl.HTTPHeader("Content-Type", "application/octet-stream")]
        if !rest.isEmpty {
            headers.append(Curl.HTTPHeader(PipelineHeader.name, PipelineHeader.value(rest.map { ($0.url, $0.ticket) })))
        }
        if let expectedSHA256 { headers.append(Curl.HTTPHeader("X-DFS-SHA256", expectedSHA256)) }
        self.headers = headers
    }

    func start() {
        let thread = Thread { [self] in
            let result = run()
            queue.readerDone()
            outcome.withLock { $0 = result }
            done.signal()
        }
        thread.name = "dfs-forward"
        thread.start()
    }

    /// The outcome once the forward ended, nil while it runs.
    var finished: Outcome? { outcome.withLock { $0 } }

    /// Waits for the downstream's answer, at most `timeout` seconds (nil when it did not come in time).
    func wait(timeout: Double) -> Outcome? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        done.signal()
        return finished
    }

    private func run() -> Outcome {
        let client = HTTPClient(connectTimeout: 5, timeout: 0, caFile: caFile)
        let queue = self.queue
        let response: HTTPResponse
        do {
            response = try client.send(
                method: "PUT", url: url, headers: headers, body: .stream(length: length) { _ in try queue.pop() },
                bodyLimit: 1 << 20)
        } catch is ChunkQueue.Aborted {
            return .failed("the upload to \(target.url) was aborted")
        } catch {
            return .failed("cannot forward to \(target.url): \(error)")
        }
        guard response.status == 201 else {
            let reason =
                (try? WireJSON.decode(ErrorBody.self, from: response.body)).map { "\($0.error.code): \($0.error.message)" }
                ?? "no error body"
            return .failed("\(target.url) answered \(response.status) (\(reason))")
        }
        guard let result = try? WireJSON.decode(PipelineResult.self, from: response.body) else {
            return .failed("\(target.url) answered 201 without a valid upload result")
        }
        return .stored(result)
    }
}
