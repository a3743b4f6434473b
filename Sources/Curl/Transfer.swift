internal import CCurl
import Foundation

/// Per-request state that libcurl's callbacks reach through their `void*` context.
///
/// It lives only for one synchronous `curl_easy_perform`: `HTTPClient` passes it unretained and keeps it alive with
/// `withExtendedLifetime`. Callbacks never throw into C: a Swift error is stored in `error` and the callback returns
/// curl's failure value (0 from a write callback, `CURL_READFUNC_ABORT` from the read callback).
final class Transfer {
    private let easy: EasyHandle
    private let bodyLimit: Int
    private let onBody: ((Data) throws -> Void)?
    private let upload: ((Int) throws -> Data)?
    private let uploadLength: Int64?

    /// Header fields of the current response, names lowercased.
    private(set) var headers = [String: String](minimumCapacity: 16)  // a typical answer has ~10
    /// The collected body (non-2xx, or 2xx without `onBody`).
    private(set) var body = Data()
    /// The first error thrown by a user closure or detected here; rethrown once the transfer has stopped.
    private(set) var error: (any Error)?

    /// Whether the current response's body goes to `onBody`; decided at its first byte, nil before.
    private var streamsBody: Bool?
    /// The status of the response whose body is arriving (valid once `streamsBody` is set).
    private var status = 0
    private var lastHeaderName: String?
    /// Bytes `upload` returned beyond what curl asked for, sent on the next read callbacks.
    private var pendingUpload = Data()
    /// Streamed body bytes not yet handed to `onBody`: they go in pieces of `streamedChunkBytes`.
    private var pendingBody = Data()
    /// curl hands the write callback at most 16 KiB at a time (`CURL_MAX_WRITE_SIZE`): a 1 GiB `dfs get` made 65,536
    /// writes and twice as many futex calls to its hashing thread. `onBody` gets 256 KiB pieces instead, and the last
    /// piece from `finishBody` once the transfer is done.
    static let streamedChunkBytes = 256 << 10
    private var uploadedBytes: Int64 = 0

    init(
        easy: EasyHandle, bodyLimit: Int, onBody: ((Data) throws -> Void)?, upload: ((Int) throws -> Data)?,
        uploadLength: Int64?
    ) {
        self.easy = easy
        self.bodyLimit = max(0, bodyLimit)
        self.onBody = onBody
        self.upload = upload
        self.uploadLength = uploadLength
    }

    /// Registers the callbacks and their context on the handle. The caller keeps `self` alive during perform.
    func install() throws {
        let context = Unmanaged.passUnretained(self).toOpaque()
        try easy.set(CURLOPT_WRITEDATA, pointer: context)
        try easy.set(
            CURLOPT_WRITEFUNCTION,
            write: { buffer, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                return transfer.receiveBody(UnsafeRawBufferPointer(start: buffer, count: size * count))
            })
        try easy.set(CURLOPT_HEADERDATA, pointer: context)
        try easy.set(
            CURLOPT_HEADERFUNCTION,
            write: { buffer, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                return transfer.receiveHeader(UnsafeRawBufferPointer(start: buffer, count: size * count))
            })
        if upload != nil {
            try easy.set(CURLOPT_READDATA, pointer: context)
            try easy.set(read: { buffer, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                return transfer.fill(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
            })
        }
    }

    // MARK: - Response

    /// `CURLOPT_WRITEFUNCTION`: returns `bytes.count` to go on, 0 to abort with `CURLE_WRITE_ERROR`.
    private func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        if streamsBody == nil {
            // Safe to ask here: the status line has been parsed before the first body byte.
            status = easy.responseCode
            streamsBody = (200..<300).contains(status) && onBody != nil
        }
        let success = (200..<300).contains(status)
        if streamsBody == true, let onBody {
            if pendingBody.isEmpty, bytes.count >= Self.streamedChunkBytes { return deliver(Data(bytes), to: onBody) }
            if pendingBody.isEmpty { pendingBody.reserveCapacity(Self.streamedChunkBytes) }
            pendingBody.append(contentsOf: bytes)
            guard pendingBody.count >= Self.streamedChunkBytes else { return bytes.count }
            let piece = pendingBody
            pendingBody = Data()
            return deliver(piece, to: onBody) == 0 ? 0 : bytes.count
        }
        let room = bodyLimit - body.count
        if bytes.count > room && success {
            // A truncated 2xx body would look like valid data to the caller: fail instead.
            error = CurlError(
                code: Int(CURLE_FILESIZE_EXCEEDED.rawValue),
                message: "response body of status \(status) exceeds bodyLimit (\(bodyLimit) bytes)")
            return 0
        }
        // Non-2xx bodies are diagnostics: keep the first bodyLimit bytes, drain the rest so the connection stays usable.
        body.append(contentsOf: bytes.prefix(max(0, room)))
        return bytes.count
    }

    /// Hands `piece` to `onBody`: its size to go on, 0 (stored error) to abort.
    private func deliver(_ piece: Data, to onBody: (Data) throws -> Void) -> Int {
        do {
            try onBody(piece)
        } catch {
            self.error = error
            return 0
        }
        return piece.count
    }

    /// After a transfer that went well: hands the body's last piece to `onBody` (an error it throws is stored).
    func finishBody() {
        guard error == nil, !pendingBody.isEmpty, let onBody else { return }
        let piece = pendingBody
        pendingBody = Data()
        _ = deliver(piece, to: onBody)
    }

    /// `CURLOPT_HEADERFUNCTION`: called once per header line, status line and final empty line included.
    /// Parsed byte-wise: Character-based searching and `lowercased()` were 6% of a client's CPU on small requests.
    private func receiveHeader(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let first = bytes.first else { return 0 }
        if bytes.starts(with: "HTTP/".utf8) {
            // A new response (after a 1xx, say): keep only the last one's headers and body.
            headers = [String: String](minimumCapacity: 16)
            body = Data()
            pendingBody = Data()
            streamsBody = nil
            lastHeaderName = nil
        } else if first == 0x20 || first == 0x09 {
            // Obsolete line folding: the line continues the previous field's value.
            if let name = lastHeaderName, let value = headers[name] {
                headers[name] = value + " " + Self.trimmed(bytes[...])
            }
        } else if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            let name = Self.trimmed(bytes[..<colon], lowercase: true)
            let value = Self.trimmed(bytes[(colon + 1)...])
            if let existing = headers[name] {
                headers[name] = existing + ", " + value
            } else {
                headers[name] = value
            }
            lastHeaderName = name
        }
        return bytes.count
    }

    /// The bytes without leading and trailing spaces, tabs, CR and LF, as a string (ASCII letters lowercased when
    /// asked: header names).
    /// (Index loops and a string written in place: the closures and lazy map this had were 3% of a client's CPU
    /// on 4 KiB reads.)
    private static func trimmed(_ bytes: Slice<UnsafeRawBufferPointer>, lowercase: Bool = false) -> String {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isBlank(bytes[start]) { start += 1 }
        while end > start, isBlank(bytes[end - 1]) { end -= 1 }
        let count = end - start
        guard count > 0 else { return "" }
        guard lowercase else { return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) }
        return String(unsafeUninitializedCapacity: count) { utf8 in
            for offset in 0..<count { utf8[offset] = bytes[start + offset].asciiLowercased }
            return count
        }
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }

    // MARK: - Upload

    /// `CURLOPT_READFUNCTION`: fills `buffer`; 0 ends the body, `CURL_READFUNC_ABORT` aborts the transfer.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let upload else { return 0 }
        if pendingUpload.isEmpty {
            do {
                pendingUpload = try upload(buffer.count)
            } catch {
                self.error = error
                return Int(CURL_READFUNC_ABORT)
            }
            if pendingUpload.isEmpty {
                if let uploadLength, uploadedBytes != uploadLength {
                    return abortUpload("upload stream ended after \(uploadedBytes) of \(uploadLength) bytes")
                }
                return 0
            }
        }
        let count = min(buffer.count, pendingUpload.count)
        pendingUpload.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]), count: count)
        pendingUpload = pendingUpload.dropFirst(count)
        uploadedBytes += Int64(count)
        if let uploadLength, uploadedBytes > uploadLength {
            return abortUpload("upload stream produced more than its length of \(uploadLength) bytes")
        }
        return count
    }

    private func abortUpload(_ message: String) -> Int {
        error = CurlError(code: Int(CURLE_READ_ERROR.rawValue), message: message)
        return Int(CURL_READFUNC_ABORT)
    }
}
