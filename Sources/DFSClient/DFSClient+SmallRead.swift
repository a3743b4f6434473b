import ClientCache
import Crypto
import Curl
import DFSProtocol
import Foundation

extension DFSClient {
    /// A whole read of a file of at most `ClientCache.inlineLimit` bytes: fetched into memory, verified, kept inline
    /// in the cache (counting the read's miss in the same transaction), then handed to `sink` in one piece.
    ///
    /// Replicas are tried as by `download`: one that cannot be reached is skipped; one that lacks the version, or
    /// sends more bytes than the entry's size or bytes whose sha256 does not match, is skipped and reported to the
    /// directory. No byte reaches `sink` before it is verified, so the caller never has to start over.
    func downloadSmall(_ entry: EntryInfo, size: Int64, into sink: (Data) throws -> Void) throws {
        let (fileId, version, replicas) = try located(entry)
        var lastError: Error?
        for replica in replicas {
            let data: Data
            do {
                data = try fetchedSmall(entry, fileId: fileId, version: version, size: size, from: replica)
            } catch {
                lastError = error
                continue
            }
            keep(entry, data)
            if !data.isEmpty { try sink(data) }
            return
        }
        cache?.record(hit: false)
        throw lastError
            ?? DFSClientError(status: nil, code: "unavailable", message: "no copy of \(entry.path) is readable")
    }

    /// How a `GET /content` went.
    enum ContentRead {
        /// The whole file went to the sink: the directory sent its bytes, or named the version the cache has.
        case served(EntryInfo)
        /// The bytes are on the file servers: the entry, as a `stat` would have it.
        case entry(EntryInfo)
    }

    /// A whole read through the directory, in one round trip when it can be (`GET /content`): the directory sends a
    /// small file's bytes itself (verified here against the sha256 it names, then cached), or answers 304 when
    /// `If-None-Match` names the version this client last saw and still has in its cache; otherwise it answers
    /// with the entry, for the caller to read from a file server as after a `stat`.
    func readThroughDirectory(_ path: String, into sink: (Data) throws -> Void, conditional: Bool = true) throws
        -> ContentRead
    {
        let key = Self.key(path)
        var headers: [HTTPHeader] = []
        if conditional, let seen = cache?.lastSeen(key) {
            headers.append(HTTPHeader("If-None-Match", ContentHeader.etag(fileId: seen.fileId, version: seen.version)))
        }
        let response = try transport.send(
            "GET", "/content", query: ["path": path], headers: headers, accepting: [304, 307])
        if response.status == 307 {
            do {
                return .entry(try WireJSON.decode(EntryInfo.self, from: response.body))
            } catch {
                throw DFSClientError(status: 307, code: "bad_response", message: "unexpected answer from /content")
            }
        }
        let entry = try Self.contentEntry(key, response.headers)
        if response.status == 304 {
            if try serveFromCache(entry, range: nil, into: sink) { return .served(entry) }
            // Evicted since: ask again for the bytes.
            return try readThroughDirectory(path, into: sink, conditional: false)
        }
        let data = response.body
        guard Int64(data.count) == entry.size, Data(SHA256.hash(data: data)).hexString == entry.sha256 else {
            throw DFSClientError(
                status: nil, code: "checksum_mismatch",
                message: "the directory sent bytes of \(entry.path) that do not match its size and sha256")
        }
        keep(entry, data)
        if !data.isEmpty { try sink(data) }
        return .served(entry)
    }

    /// The version a `GET /content` answer (200 or 304) is about, from its headers.
    private static func contentEntry(_ path: String, _ headers: [String: String]) throws -> EntryInfo {
        let names = Self.contentHeaders
        guard let fileId = headers[names.fileId].flatMap(Int64.init),
            let version = headers[names.version].flatMap(Int64.init),
            let size = headers[names.size].flatMap(Int64.init), let sha256 = headers[names.sha256]
        else {
            throw DFSClientError(status: nil, code: "bad_response", message: "unexpected answer from /content")
        }
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        return EntryInfo(
            path: path, name: name, type: "file", mtimeMs: headers[names.mtimeMs].flatMap(Int64.init) ?? 0,
            fileId: fileId, version: version, size: size, sha256: sha256)
    }

    /// `ContentHeader`'s names as `HTTPClient` reports them (lowercased), made once.
    struct ContentHeaderNames: Sendable {
        let fileId = ContentHeader.fileId.lowercased()
        let version = ContentHeader.version.lowercased()
        let sha256 = ContentHeader.sha256.lowercased()
        let size = ContentHeader.size.lowercased()
        let mtimeMs = ContentHeader.mtimeMs.lowercased()
    }

    private static let contentHeaders = ContentHeaderNames()

    /// Stores a verified small file in the cache, counting the miss with it; or only counts the miss.
    private func keep(_ entry: EntryInfo, _ data: Data) {
        guard let cache else { return }
        if let fileId = entry.fileId, let version = entry.version, let sha256 = entry.sha256,
            cacheable(Int64(data.count)),
            (try? cache.store(
                fileId: fileId, version: version, sha256: sha256, data: data, countingMiss: true, path: entry.path))
                != nil
        {
            return
        }
        cache.record(hit: false)
    }

    /// One GET of a small file from one replica into memory, refused past `size` bytes, verified against the entry's
    /// sha256; bad or missing copies are reported to the directory.
    private func fetchedSmall(
        _ entry: EntryInfo, fileId: Int64, version: Int64, size: Int64, from replica: Replica
    ) throws -> Data {
        var body = Data(capacity: Int(size))
        let response: HTTPResponse
        do {
            response = try transport.http.send(
                method: "GET", url: "\(replica.url)/files/\(fileId)?version=\(version)",
                bodyLimit: Int(ClientCache.inlineLimit)
            ) { chunk in
                guard Int64(body.count + chunk.count) <= size else { throw Oversized() }
                body.append(chunk)
            }
        } catch let error as CurlError {
            throw DFSClientError.unreachable("file server \(replica.fileServerId) at \(replica.url)", error.message)
        } catch is Oversized {
            throw corrupt(entry, replica)
        }
        if response.status == 404 {
            reportProblem(entry, replica, "missing")
        }
        try Transport.check(response)
        if let expected = entry.sha256, Data(SHA256.hash(data: body)).hexString != expected {
            throw corrupt(entry, replica)
        }
        return body
    }
}

/// A replica sent more bytes than the file has (reported once the transfer has stopped).
private struct Oversized: Error {}
