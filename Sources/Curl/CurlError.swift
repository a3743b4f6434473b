internal import CCurl

/// A transport failure reported by libcurl (or a misuse caught before the transfer started).
public struct CurlError: Error, CustomStringConvertible {
    /// libcurl's `CURLcode`, e.g. 7 for "Couldn't connect to server", 28 for a timeout.
    /// - SeeAlso: https://curl.se/libcurl/c/libcurl-errors.html
    public let code: Int
    /// `curl_easy_strerror(code)`, followed by the detail from `CURLOPT_ERRORBUFFER` when curl gave one.
    public let message: String

    /// Creates an error from its parts.
    /// - Parameters:
    ///   - code: A `CURLcode` value.
    ///   - message: A human-readable explanation.
    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    /// `curl error <code>: <message>`.
    public var description: String { "curl error \(code): \(message)" }

    /// Whether the connect or overall timeout expired (`CURLE_OPERATION_TIMEDOUT`).
    public var isTimeout: Bool { code == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }

    /// Whether no connection could be made: host not resolved, refused or unreachable. The request was not sent.
    public var isConnectFailure: Bool {
        code == Int(CURLE_COULDNT_CONNECT.rawValue) || code == Int(CURLE_COULDNT_RESOLVE_HOST.rawValue)
    }
}

extension CurlError {
    /// Builds the error for `code`, adding the error buffer's text when it says more than the generic text.
    init(_ code: CURLcode, detail: String = "") {
        let generic = String(cString: curl_easy_strerror(code))
        let message = detail.isEmpty || detail == generic ? generic : "\(generic): \(detail)"
        self.init(code: Int(code.rawValue), message: message)
    }
}
