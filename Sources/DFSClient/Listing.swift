import Curl
import DFSProtocol
import Foundation
import Synchronization

extension DFSClient {
    /// The entries of a directory (or the entry itself for a file), in name order: every page of the listing.
    public func list(_ path: String) throws -> [EntryInfo] {
        var entries: [EntryInfo] = []
        try list(path) { entries.append(contentsOf: $0) }
        return entries
    }

    /// Streams a listing page by page (up to `ListResponse.defaultLimit` entries each, in name order), so a huge
    /// directory is never held whole. While one page is decoded and handed to `page`, a second connection already
    /// fetches the next ones (at most two pages ahead): the directory's encoding overlaps the client's decoding.
    /// A `page` that throws stops the listing.
    public func list(_ path: String, page: ([EntryInfo]) throws -> Void) throws {
        let first = try transport.send("GET", "/ls", query: ["path": path])
        try page(try decodePage(first.body))
        guard let after = Self.nextCursor(first) else { return }
        let fetcher = PageFetcher(
            url: transport.directory + "/ls", path: path, after: after, token: transport.token,
            caFile: settings.caFile)
        defer { fetcher.cancel() }
        while let body = try fetcher.next() {
            try page(try decodePage(body))
        }
    }

    private func decodePage(_ body: Data) throws -> [EntryInfo] {
        do {
            return try WireJSON.decode(ListResponse.self, from: body).entries
        } catch {
            throw DFSClientError(status: 200, code: "bad_response", message: "unexpected answer from /ls")
        }
    }

    /// The cursor of the page after this one, from the `X-DFS-Next` header (percent-encoded).
    static func nextCursor(_ response: HTTPResponse) -> String? {
        response.headers["x-dfs-next"].flatMap { $0.removingPercentEncoding }
    }
}

/// Fetches the pages of a listing after `after` on its own thread and connection, at most two pages ahead.
final class PageFetcher: Sendable {
    private enum Item: Sendable {
        case page(Data)
        case failed(DFSClientError)
        case end
    }

    private let items = Mutex<[Item]>([])
    private let available = DispatchSemaphore(value: 0)
    private let slots = DispatchSemaphore(value: 2)
    private let cancelled = Atomic<Bool>(false)

    init(url: String, path: String, after: String, token: String?, caFile: String?) {
        Thread.detachNewThread { [self] in
            run(url: url, path: path, after: after, token: token, caFile: caFile)
        }
    }

    /// The next page's raw JSON; nil after the last one.
    func next() throws -> Data? {
        available.wait()
        let item = items.withLock { $0.removeFirst() }
        slots.signal()
        switch item {
        case .page(let body): return body
        case .failed(let error): throw error
        case .end: return nil
        }
    }

    /// Stops fetching (the thread ends after the request in flight, if any).
    func cancel() {
        cancelled.store(true, ordering: .relaxed)
        slots.signal()
    }

    private func run(url: String, path: String, after: String, token: String?, caFile: String?) {
        let http = HTTPClient(connectTimeout: 5, timeout: 0, caFile: caFile)
        var headers: [HTTPHeader] = []
        if let token { headers.append(HTTPHeader("Authorization", "Bearer \(token)")) }
        var cursor: String? = after
        while let current = cursor {
            slots.wait()
            if cancelled.load(ordering: .relaxed) { return }
            let item: Item
            do {
                let query = Transport.queryString(["path": path, "after": current])
                let response = try http.send(method: "GET", url: url + query, headers: headers)
                try Transport.check(response)
                item = .page(response.body)
                cursor = DFSClient.nextCursor(response)
            } catch let error as DFSClientError {
                item = .failed(error)
                cursor = nil
            } catch let error as CurlError {
                item = .failed(DFSClientError.unreachable("the directory at \(url)", error.message))
                cursor = nil
            } catch {
                item = .failed(DFSClientError.io("listing \(path): \(error)"))
                cursor = nil
            }
            items.withLock { $0.append(item) }
            available.signal()
        }
        slots.wait()
        items.withLock { $0.append(.end) }
        available.signal()
    }
}
