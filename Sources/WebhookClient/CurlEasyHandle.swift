import CCurl
import MessageData

/// One libcurl easy handle, kept across requests so its connection cache is reused.
///
/// Thread confinement: libcurl forbids using a handle from two threads at once. Each delivery
/// thread owns exactly one `CurlEasyHandle` (see ``WebhookClient``); it is never shared.
final class CurlEasyHandle {
    private let handle: UnsafeMutableRawPointer
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

    init?() {
        CurlGlobal.initialize()
        guard let handle = curl_easy_init() else { return nil }
        self.handle = handle
    }

    deinit { curl_easy_cleanup(handle) }

    /// Collects the first `limit` bytes of the response body and the count of the rest.
    private final class BodyCollector {
        let limit: Int
        var bytes: [UInt8] = []
        var received = 0
        /// Set when the body went past ``CurlEasyHandle/maximumResponseBytes`` and the transfer was stopped.
        var overflowed = false
        init(limit: Int) { self.limit = limit }
    }

    /// Response bodies are read up to this many bytes, then the transfer is stopped: the status is
    /// what counts, so a receiver that answers with a huge body costs neither memory nor time.
    static let maximumResponseBytes = 1024 * 1024

    /// POSTs the request, blocking the calling thread until done or timed out.
    func post(_ request: WebhookRequest, snippetLimit: Int) -> WebhookResponse {
        curl_easy_reset(handle)  // clears options, keeps live connections and caches
        guard request.url.lowercased().hasPrefix("http://") || request.url.lowercased().hasPrefix("https://") else {
            return WebhookResponse(
                status: 0,
                error: WebhookTransportError(kind: .refusedURL, message: "only http and https URLs are allowed")
            )
        }
        var headers = request.headers
        if let signing = request.signing {
            do {
                let signature = try signing.signer.signature(
                    id: signing.id,
                    timestamp: signing.timestamp,
                    body: request.body
                )
                headers.append(WebhookHeader("webhook-signature", signature))
            } catch {
                return WebhookResponse(
                    status: 0,
                    error: WebhookTransportError(kind: .other, message: "cannot read the message to sign it: \(error)")
                )
            }
        }
        let collector = BodyCollector(limit: snippetLimit)
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        var sawContentType = false
        for header in headers {
            // A header value with CR/LF would split the request; drop such a header.
            if header.name.isEmpty
                || header.name.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: ":") || $0 >= 0x7F })
                || header.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 })
            {
                continue
            }
            if header.name.lowercased() == "content-type" { sawContentType = true }
            headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
        }
        if !sawContentType { headerList = curl_slist_append(headerList, "Content-Type: application/json") }
        headerList = curl_slist_append(headerList, "Expect:")  // never wait for 100-continue

        var code: CURLcode = ccurl_setopt_string(handle, CURLOPT_URL, request.url)
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
        set(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(ccurl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(ccurl_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        set(ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        set(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, request.connectTimeoutMilliseconds)))
        set(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, request.totalTimeoutMilliseconds)))
        set(ccurl_setopt_long(handle, CURLOPT_POST, 1))
        if request.method != "POST" { set(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)) }
        set(ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList))
        set(ccurl_setopt_string(handle, CURLOPT_USERAGENT, "lmtphook/\(WebhookClient.version)"))
        set(
            ccurl_setopt_write_cb(handle) { data, size, count, context in
                guard let data, let context else { return 0 }
                let collector = Unmanaged<BodyCollector>.fromOpaque(context).takeUnretainedValue()
                let total = size * count
                collector.received += total
                if collector.received > CurlEasyHandle.maximumResponseBytes {
                    collector.overflowed = true
                    return 0  // stops the transfer (CURLE_WRITE_ERROR)
                }
                let room = collector.limit - collector.bytes.count
                if room > 0 {
                    data.withMemoryRebound(to: UInt8.self, capacity: total) { bytes in
                        collector.bytes.append(contentsOf: UnsafeBufferPointer(start: bytes, count: min(room, total)))
                    }
                }
                return total
            }
        )
        let context = Unmanaged.passUnretained(collector).toOpaque()
        set(ccurl_setopt_ptr(handle, CURLOPT_WRITEDATA, context))
        let refusedAddress = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        refusedAddress.initialize(to: 0)
        defer { refusedAddress.deallocate() }
        if request.denyPrivateAddresses { set(ccurl_setopt_private_address_guard(handle, refusedAddress)) }
        errorBuffer[0] = 0

        let started = ContinuousClock.now
        let streamed = request.body.inMemory == nil ? StreamedBody(RequestBodyReader(request.body)) : nil
        let result: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            (request.body.inMemory ?? []).withUnsafeBufferPointer { body in
                guard code == CURLE_OK else { return code }
                var setup = ccurl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
                if setup == CURLE_OK {
                    setup = ccurl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
                }
                if let streamed {
                    // Read while sending: file parts are read (and base64-encoded) a chunk at a time.
                    if setup == CURLE_OK { setup = Self.setReader(handle, streamed) }
                } else if setup == CURLE_OK {
                    // POSTFIELDS is not copied: `body` stays alive for the whole transfer.
                    let bodyPointer = body.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
                    setup = ccurl_setopt_ptr(
                        handle,
                        CURLOPT_POSTFIELDS,
                        bodyPointer ?? UnsafeMutableRawPointer(mutating: ("" as StaticString).utf8Start)
                    )
                }
                guard setup == CURLE_OK else { return setup }
                let performed = withExtendedLifetime(streamed) { curl_easy_perform(handle) }
                _ = ccurl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, nil)
                return performed
            }
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

        var status = 0
        var statusValue: Int = 0
        if ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &statusValue) == CURLE_OK { status = statusValue }
        var retryAfter: curl_off_t = 0
        let retryAfterSeconds: Int? =
            ccurl_getinfo_off_t(handle, CURLINFO_RETRY_AFTER, &retryAfter) == CURLE_OK && retryAfter > 0
            ? Int(retryAfter) : nil
        let snippet = String(decoding: collector.bytes, as: UTF8.self)

        if result == CURLE_WRITE_ERROR && collector.overflowed && status > 0 {
            // The receiver answered; only its body was too long to read. The status stands.
            return WebhookResponse(
                status: status,
                snippet: snippet,
                retryAfterSeconds: retryAfterSeconds,
                seconds: seconds
            )
        }
        if refusedAddress.pointee != 0 {
            let error = WebhookTransportError(
                kind: .refusedAddress,
                curlCode: Int(result.rawValue),
                message:
                    "the webhook host resolves to a private, loopback or link-local address (access.private_webhooks: deny)"
            )
            return WebhookResponse(status: 0, error: error, seconds: seconds)
        }
        if let failure = streamed?.failure {
            let error = WebhookTransportError(
                kind: .other,
                curlCode: Int(result.rawValue),
                message: "cannot read the message to send: \(failure)"
            )
            return WebhookResponse(status: 0, error: error, seconds: seconds)
        }
        guard result == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
            let error = WebhookTransportError(
                kind: Self.kind(of: result),
                curlCode: Int(result.rawValue),
                message: message
            )
            return WebhookResponse(
                status: status,
                snippet: snippet,
                error: error,
                retryAfterSeconds: retryAfterSeconds,
                seconds: seconds
            )
        }
        return WebhookResponse(status: status, snippet: snippet, retryAfterSeconds: retryAfterSeconds, seconds: seconds)
    }

    /// A body read while it is sent, and why reading it failed, if it did.
    private final class StreamedBody {
        let reader: RequestBodyReader
        var failure: String?
        init(_ reader: RequestBodyReader) { self.reader = reader }
    }

    /// Sets the read and seek callbacks that feed `streamed` to curl.
    private static func setReader(_ handle: UnsafeMutableRawPointer, _ streamed: StreamedBody) -> CURLcode {
        let context = Unmanaged.passUnretained(streamed).toOpaque()
        var code = ccurl_setopt_read_cb(handle) { data, size, count, context in
            guard let data, let context else { return Int(CURL_READFUNC_ABORT) }
            let streamed = Unmanaged<StreamedBody>.fromOpaque(context).takeUnretainedValue()
            do {
                return try streamed.reader.read(into: UnsafeMutableRawBufferPointer(start: data, count: size * count))
            } catch {
                streamed.failure = "\(error)"
                return Int(CURL_READFUNC_ABORT)
            }
        }
        if code == CURLE_OK { code = ccurl_setopt_ptr(handle, CURLOPT_READDATA, context) }
        if code == CURLE_OK {
            // curl rewinds when it sends the body again (a reused connection that was closed).
            code = ccurl_setopt_seek_cb(handle) { context, offset, origin in
                guard let context, offset == 0, origin == SEEK_SET else { return CURL_SEEKFUNC_CANTSEEK }
                Unmanaged<StreamedBody>.fromOpaque(context).takeUnretainedValue().reader.rewind()
                return CURL_SEEKFUNC_OK
            }
        }
        if code == CURLE_OK { code = ccurl_setopt_ptr(handle, CURLOPT_SEEKDATA, context) }
        return code
    }

    private static func kind(of code: CURLcode) -> WebhookTransportError.Kind {
        switch code {
        case CURLE_COULDNT_CONNECT: return .connect
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: return .resolve
        case CURLE_OPERATION_TIMEDOUT: return .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return .tls
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT: return .refusedURL
        default: return .other
        }
    }
}

/// `curl_global_init`, exactly once per process, before any handle exists.
package enum CurlGlobal {
    private static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()

    /// Initialises libcurl; safe to call many times from any thread (Swift runs the initialiser once).
    @discardableResult
    package static func initialize() -> Bool { initialized }
}
