internal import CCurl

/// The result of `curl_global_init`, run once before the first easy handle.
///
/// curl_global_init is not thread-safe and must run before any other libcurl call; a global `let` is initialised
/// lazily and exactly once (swift_once), so the first `EasyHandle` on any thread triggers it safely.
private let globalInitResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

/// Owns one `CURL*` easy handle and its error buffer; typed, throwing setters over the shim's setopt forwarders.
///
/// The handle keeps its connection cache across `reset()`, which is what makes keep-alive work.
final class EasyHandle {
    let raw: UnsafeMutableRawPointer
    /// `CURLOPT_ERRORBUFFER` target: curl writes a detailed message here when a transfer fails.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws {
        guard globalInitResult == CURLE_OK else { throw CurlError(globalInitResult, detail: "curl_global_init failed") }
        guard let raw = curl_easy_init() else { throw CurlError(CURLE_FAILED_INIT, detail: "curl_easy_init failed") }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// Drops every option (and with them any context pointers and copied POST data) but keeps open connections.
    /// - SeeAlso: https://curl.se/libcurl/c/curl_easy_reset.html
    func reset() {
        curl_easy_reset(raw)
    }

    /// Runs the transfer configured by the setters; callbacks run on this thread before it returns.
    /// - SeeAlso: https://curl.se/libcurl/c/curl_easy_perform.html
    func perform() -> CURLcode {
        errorBuffer[0] = 0
        let code = curl_easy_perform(raw)
        return code
    }

    /// What curl wrote into the error buffer during the last `perform()`, or "".
    var errorDetail: String { String(cString: errorBuffer) }

    /// Points `CURLOPT_ERRORBUFFER` at this handle's buffer (needed again after every `reset()`).
    /// - SeeAlso: https://curl.se/libcurl/c/CURLOPT_ERRORBUFFER.html
    func enableErrorBuffer() throws {
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    /// `CURLINFO_RESPONSE_CODE` of the last (or current, from a callback) response; 0 before any status line.
    /// - SeeAlso: https://curl.se/libcurl/c/CURLINFO_RESPONSE_CODE.html
    var responseCode: Int {
        var status = 0
        _ = dfs_curl_easy_getinfo_long(raw, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    /// Sets an option that takes a `long`.
    func set(_ option: CURLoption, _ value: Int) throws {
        try check(dfs_curl_easy_setopt_long(raw, option, value), option)
    }

    /// Sets an option that takes a `curl_off_t` (the `*_LARGE` options).
    func set(_ option: CURLoption, large value: Int64) throws {
        try check(dfs_curl_easy_setopt_off_t(raw, option, curl_off_t(value)), option)
    }

    /// Sets an option that takes a C string; libcurl copies it (except `CURLOPT_POSTFIELDS`, which is never used).
    func set(_ option: CURLoption, _ value: String) throws {
        try check(value.withCString { dfs_curl_easy_setopt_string(raw, option, $0) }, option)
    }

    /// Sets an option that takes an opaque pointer; the pointee must outlive the transfer.
    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws {
        try check(dfs_curl_easy_setopt_pointer(raw, option, value), option)
    }

    /// Sets `CURLOPT_HTTPHEADER`; libcurl does not copy the list, so it must outlive the transfer.
    /// - SeeAlso: https://curl.se/libcurl/c/CURLOPT_HTTPHEADER.html
    func set(headers list: UnsafeMutablePointer<curl_slist>?) throws {
        try check(dfs_curl_easy_setopt_slist(raw, CURLOPT_HTTPHEADER, list), CURLOPT_HTTPHEADER)
    }

    /// Sets a write-shaped callback (`CURLOPT_WRITEFUNCTION`, `CURLOPT_HEADERFUNCTION`).
    func set(_ option: CURLoption, write callback: curl_write_callback) throws {
        try check(dfs_curl_easy_setopt_write_callback(raw, option, callback), option)
    }

    /// Sets `CURLOPT_READFUNCTION`.
    /// - SeeAlso: https://curl.se/libcurl/c/CURLOPT_READFUNCTION.html
    func set(read callback: curl_read_callback) throws {
        try check(dfs_curl_easy_setopt_read_callback(raw, CURLOPT_READFUNCTION, callback), CURLOPT_READFUNCTION)
    }

    private func check(_ code: CURLcode, _ option: CURLoption) throws {
        guard code == CURLE_OK else { throw CurlError(code, detail: "curl_easy_setopt(\(option.rawValue))") }
    }
}
