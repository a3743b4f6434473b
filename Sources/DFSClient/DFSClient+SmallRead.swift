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

    /// Stores a verified small file in the cache, counting the miss with it; or only counts the miss.
    private func keep(_ entry: EntryInfo, _ data: Data) {
        guard let cache else { return }
        if let fileId = entry.fileId, let version = entry.version, let sha256 = entry.sha256,
            cacheable(Int64(data.count)),
            (try? cache.store(fileId: fileId, version: version, sha256: sha256, data: data, countingMiss: true)) != nil
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
