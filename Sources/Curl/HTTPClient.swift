internal import CCurl
import Foundation

/// One easy handle, reused (keep-alive). Not thread-safe: one per thread.
///
/// Every `send` is a synchronous `curl_easy_perform` on the calling thread. Between requests the handle is reset with
/// `curl_easy_reset`, which clears all options but keeps the connection cache, so consecutive requests to the same
/// host and port reuse one TCP connection.
///
/// ```swift
/// let client = HTTPClient(connectTimeout: 2, timeout: 30)
/// let response = try client.send(method: "GET", url: "http://127.0.0.1:8080/files/1") { chunk in
///     try file.write(contentsOf: chunk)
/// }
/// ```
public final class HTTPClient {
    /// Seconds allowed to establish the TCP connection (0 = libcurl's default of 300 s).
    public let connectTimeout: Double
    /// Seconds allowed for a whole request, body included (0 = no limit).
    public let timeout: Double
    /// A PEM file of CA certificates that `https://` servers must chain to, instead of the system's; nil = the
    /// system's CA store.
    public let caFile: String?

    /// Created on first use, so that a failing `curl_easy_init` surfaces as a thrown `CurlError`.
    private var easy: EasyHandle?
    /// Guards against calling `send` from inside `onBody`/`read` (libcurl forbids re-entering perform).
    private var isSending = false

    /// Creates a client; no connection is made until the first `send`.
    ///
    /// Server certificates are always verified (`CURLOPT_SSL_VERIFYPEER` and `CURLOPT_SSL_VERIFYHOST` stay on): the
    /// chain must lead to a trusted CA and the certificate must name the URL's host (an IP SAN for an IP URL). A
    /// server that fails either check makes `send` throw a ``CurlError`` (code 60, `CURLE_PEER_FAILED_VERIFICATION`).
    /// - Parameters:
    ///   - connectTimeout: Seconds to establish a connection (`CURLOPT_CONNECTTIMEOUT_MS`).
    ///   - timeout: Seconds for the whole request (`CURLOPT_TIMEOUT_MS`); 0 means no overall timeout.
    ///   - caFile: The CA bundle to trust for `https://` (`CURLOPT_CAINFO`); nil = the system's. A missing or
    ///     unreadable file makes every `https://` send fail with code 77 (`CURLE_SSL_CACERT_BADFILE`).
    /// - SeeAlso: https://curl.se/libcurl/c/CURLOPT_CAINFO.html
    public init(connectTimeout: Double = 5, timeout: Double = 0, caFile: String? = nil) {
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.caFile = caFile
    }

    /// Sends one request and waits for the whole response.
    ///
    /// - Parameters:
    ///   - method: The request method, sent as given (`GET`, `PUT`, `HEAD`…). `HEAD` reads no body.
    ///   - url: An `http://` or `https://` URL. Other schemes are refused.
    ///   - headers: Extra request headers. `Expect: 100-continue` is never sent, and a body without a `Content-Type`
    ///     header is sent without one (libcurl would otherwise label `.data` bodies as a form).
    ///   - body: The request body.
    ///   - bodyLimit: The most body bytes kept in memory. A non-2xx body is truncated to it; a 2xx body collected in
    ///     memory (no `onBody`) that exceeds it fails with `CurlError` code 63 (`CURLE_FILESIZE_EXCEEDED`).
    ///   - onBody: if given and the status is 2xx, body chunks go to it instead of memory.
    ///     Non-2xx bodies are always collected in `body` (up to bodyLimit).
    /// - Returns: The final response, with lowercased header names.
    /// - Throws: CurlError on transport failure; an error thrown by `read` or `onBody` aborts the transfer and is
    ///   rethrown as is.
    public func send(
        method: String, url: String, headers: [HTTPHeader] = [], body: RequestBody = .none,
        bodyLimit: Int = 16 << 20, onBody: ((Data) throws -> Void)? = nil
    ) throws -> HTTPResponse {
        guard !isSending else {
            throw CurlError(CURLE_RECURSIVE_API_CALL, detail: "HTTPClient.send called from inside a transfer")
        }
        isSending = true
        defer { isSending = false }

        let easy = try handle()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer {
            // Reset first so the handle holds no pointer to the list, the context or the copied body.
            easy.reset()
            curl_slist_free_all(headerList)
        }
        easy.reset()

        try configureTransport(easy, url: url)
        let transfer = try configureMethod(easy, method: method, body: body, bodyLimit: bodyLimit, onBody: onBody)
        headerList = try makeHeaderList(headers, hasBody: body.isPresent)
        try easy.set(headers: headerList)
        try transfer.install()

        let code = withExtendedLifetime(transfer) { easy.perform() }
        if code == CURLE_OK { transfer.finishBody() }
        if transfer.error != nil || code != CURLE_OK {
            // A failed transfer may leave its connection open in the cache (a half-sent upload, say), and the
            // peer would wait for the rest until it times out. Drop the handle: curl_easy_cleanup closes it.
            self.easy = nil
        }
        if let error = transfer.error {
            throw error
        }
        guard code == CURLE_OK else {
            throw CurlError(code, detail: easy.errorDetail)
        }
        return HTTPResponse(status: easy.responseCode, headers: transfer.headers, body: transfer.body)
    }

    private func handle() throws -> EasyHandle {
        if let easy { return easy }
        let created = try EasyHandle()
        easy = created
        return created
    }

    /// Options that do not depend on the request: URL, signals, timeouts, proxy, protocols, TLS trust.
    private func configureTransport(_ easy: EasyHandle, url: String) throws {
        try easy.enableErrorBuffer()
        try easy.set(CURLOPT_URL, url)
        // Only HTTP: a URL from a config file must not read file:// or talk other protocols.
        try easy.set(CURLOPT_PROTOCOLS_STR, "http,https")
        // Threaded program: no SIGALRM for DNS timeouts, and MSG_NOSIGNAL instead of SIGPIPE.
        try easy.set(CURLOPT_NOSIGNAL, 1)
        // dfs talks to its own servers: ignore http_proxy & co. from the environment.
        try easy.set(CURLOPT_PROXY, "")
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(connectTimeout))
        if timeout > 0 {
            try easy.set(CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout))
        }
        // Set explicitly, not left to the defaults: a TLS peer is always verified, whatever the handle saw before.
        try easy.set(CURLOPT_SSL_VERIFYPEER, 1)
        try easy.set(CURLOPT_SSL_VERIFYHOST, 2)
        if let caFile {
            try easy.set(CURLOPT_CAINFO, caFile)
        }
        // Bigger buffers: fewer callbacks and copies per byte on large transfers (defaults are 16 and 64 KiB).
        try easy.set(CURLOPT_BUFFERSIZE, 512 << 10)
        try easy.set(CURLOPT_UPLOAD_BUFFERSIZE, 512 << 10)
        // Requests are small and latency-bound; do not wait to fill packets.
        try easy.set(CURLOPT_TCP_NODELAY, 1)
    }

    /// The method and body options, and the per-request callback context.
    private func configureMethod(
        _ easy: EasyHandle, method: String, body: RequestBody, bodyLimit: Int, onBody: ((Data) throws -> Void)?
    ) throws -> Transfer {
        guard !method.isEmpty, !method.contains(where: { $0 == " " || $0.isNewline }) else {
            throw CurlError(CURLE_BAD_FUNCTION_ARGUMENT, detail: "invalid HTTP method \"\(method)\"")
        }
        if method == "HEAD" && body.isPresent {
            throw CurlError(CURLE_BAD_FUNCTION_ARGUMENT, detail: "a HEAD request cannot carry a body")
        }
        var upload: ((Int) throws -> Data)?
        var uploadLength: Int64?
        switch body {
        case .none where method == "HEAD":
            try easy.set(CURLOPT_NOBODY, 1)
        case .none where method == "GET":
            try easy.set(CURLOPT_HTTPGET, 1)
        case .none where ["POST", "PUT", "PATCH"].contains(method):
            // An empty copied body makes curl send Content-Length: 0, which servers expect for these methods.
            try setPostFields(easy, Data())
            try easy.set(CURLOPT_CUSTOMREQUEST, method)
        case .none:
            try easy.set(CURLOPT_CUSTOMREQUEST, method)
        case .data(let data):
            try setPostFields(easy, data)
            try easy.set(CURLOPT_CUSTOMREQUEST, method)
        case .stream(let length, let read):
            // UPLOAD makes a PUT whose body comes from READFUNCTION; CUSTOMREQUEST renames it (POST…).
            try easy.set(CURLOPT_UPLOAD, 1)
            if let length {
                try easy.set(CURLOPT_INFILESIZE_LARGE, large: length)
            }
            // Without a size curl sends Transfer-Encoding: chunked.
            try easy.set(CURLOPT_CUSTOMREQUEST, method)
            upload = read
            uploadLength = length
        }
        return Transfer(easy: easy, bodyLimit: bodyLimit, onBody: onBody, upload: upload, uploadLength: uploadLength)
    }

    /// `POSTFIELDSIZE_LARGE` then `COPYPOSTFIELDS`: curl copies exactly `data.count` bytes, zeros included.
    private func setPostFields(_ easy: EasyHandle, _ data: Data) throws {
        try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, large: Int64(data.count))
        // A NULL pointer would make curl read the body from stdin, so an empty body still passes a valid pointer.
        let bytes = data.isEmpty ? Data([0]) : data
        try bytes.withUnsafeBytes {
            // curl only reads (copies) through this pointer; the C prototype is merely not const.
            try easy.set(CURLOPT_COPYPOSTFIELDS, pointer: UnsafeMutableRawPointer(mutating: $0.baseAddress))
        }
    }

    /// The request header list; the caller frees it with `curl_slist_free_all` after the transfer.
    private func makeHeaderList(_ headers: [HTTPHeader], hasBody: Bool) throws -> UnsafeMutablePointer<curl_slist>? {
        var lines = ["Expect:"]  // An empty value removes the header: no 100-continue round trip.
        var hasContentType = false
        for header in headers {
            guard !header.name.isEmpty, Self.isSafe(header.name), Self.isSafe(header.value),
                !header.name.utf8.contains(UInt8(ascii: ":"))
            else {
                throw CurlError(CURLE_BAD_FUNCTION_ARGUMENT, detail: "invalid header \"\(header.name)\"")
            }
            hasContentType = hasContentType || Self.isContentType(header.name)
            // "Name:" would remove the header; "Name;" is curl's syntax for sending it empty.
            lines.append(header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)")
        }
        if hasBody && !hasContentType {
            lines.append("Content-Type:")
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines {
            guard let appended = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                throw CurlError(CURLE_OUT_OF_MEMORY, detail: "curl_slist_append failed")
            }
            list = appended
        }
        return list
    }

    /// No line break of any kind (checked byte-wise for the usual printable ASCII; Character by Character, which was
    /// 4% of a client's CPU, only otherwise).
    private static func isSafe(_ text: String) -> Bool {
        if text.utf8.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }) { return true }
        return !text.contains(where: { $0.isNewline })
    }

    private static func isContentType(_ name: String) -> Bool {
        let wanted = "content-type".utf8
        return name.utf8.count == wanted.count
            && zip(name.utf8, wanted).allSatisfy { $0.asciiLowercased == $1 }
    }

    private static func milliseconds(_ seconds: Double) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int(min((seconds * 1000).rounded(.up), Double(Int32.max)))
    }
}

extension RequestBody {
    fileprivate var isPresent: Bool {
        if case .none = self { return false }
        return true
    }
}
