import CCurl
import MessageData

/// One libcurl easy handle, reused for transfer after transfer (the connections live in the
/// multi handle's cache, see ``CurlMultiLoop``).
///
/// Thread confinement: libcurl forbids using a handle from two threads at once. Handles are
/// created, started and finished on the multi loop's thread only.
final class CurlEasyHandle {
    let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        CurlGlobal.initialize()
        guard let handle = curl_easy_init() else { return nil }
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Collects the first `limit` bytes of the response body and the count of the rest.
    fileprivate final class BodyCollector {
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

    /// What a started transfer needs until it ends: everything curl was given a pointer to.
    final class Transfer {
        fileprivate let collector: BodyCollector
        fileprivate var headerList: UnsafeMutablePointer<curl_slist>? = nil
        fileprivate let refusedAddress: UnsafeMutablePointer<Int32>
        fileprivate var streamed: StreamedBody?
        /// An in-memory body, copied once so that it outlives the caller (`CURLOPT_POSTFIELDS`
        /// is not copied by curl).
        fileprivate var body: UnsafeMutableRawBufferPointer?
        fileprivate let started = ContinuousClock.now

        fileprivate init(snippetLimit: Int) {
            collector = BodyCollector(limit: snippetLimit)
            refusedAddress = .allocate(capacity: 1)
            refusedAddress.initialize(to: 0)
        }

        deinit {
            curl_slist_free_all(headerList)
            refusedAddress.deallocate()
            body?.deallocate()
        }
    }

    /// What ``start(_:snippetLimit:)`` gives: a transfer to add to a multi handle, or the
    /// response when it cannot even start (a refused URL, a body that cannot be read to sign it).
    enum Started {
        case transfer(Transfer)
        case answered(WebhookResponse)
    }

    /// Sets the handle up for `request`.
    func start(_ request: WebhookRequest, snippetLimit: Int) -> Started {
        curl_easy_reset(handle)  // clears options; connections live in the multi handle
        guard request.url.lowercased().hasPrefix("http://") || request.url.lowercased().hasPrefix("https://") else {
            return .answered(
                WebhookResponse(
                    status: 0,
                    error: WebhookTransportError(kind: .refusedURL, message: "only http and https URLs are allowed")
                )
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
                return .answered(
                    WebhookResponse(
                        status: 0,
                        error: WebhookTransportError(
                            kind: .other,
                            message: "cannot read the message to sign it: \(error)"
                        )
                    )
                )
            }
        }
        let transfer = Transfer(snippetLimit: snippetLimit)
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
            transfer.headerList = curl_slist_append(transfer.headerList, "\(header.name): \(header.value)")
        }
        if !sawContentType {
            transfer.headerList = curl_slist_append(transfer.headerList, "Content-Type: application/json")
        }
        transfer.headerList = curl_slist_append(transfer.headerList, "Expect:")  // never wait for 100-continue

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
        set(ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, transfer.headerList))
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
        set(ccurl_setopt_ptr(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(transfer.collector).toOpaque()))
        if request.denyPrivateAddresses { set(ccurl_setopt_private_address_guard(handle, transfer.refusedAddress)) }
        errorBuffer[0] = 0
        set(ccurl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        set(ccurl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
        if let bytes = request.body.inMemory {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
            bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
            transfer.body = copy
            set(ccurl_setopt_ptr(handle, CURLOPT_POSTFIELDS, copy.baseAddress))
        } else {
            // Read while sending: file parts are read (and base64-encoded) a chunk at a time.
            let streamed = StreamedBody(RequestBodyReader(request.body))
            transfer.streamed = streamed
            set(Self.setReader(handle, streamed))
        }
        guard code == CURLE_OK else { return .answered(finish(transfer, result: code)) }
        return .transfer(transfer)
    }

    /// The response of a transfer that ended with `result` (from `curl_multi_info_read`).
    func finish(_ transfer: Transfer, result: CURLcode) -> WebhookResponse {
        let elapsed = ContinuousClock.now - transfer.started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let collector = transfer.collector

        var status = 0
        var statusValue: Int = 0
        if ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &statusValue) == CURLE_OK { status = statusValue }
        var retryAfter: curl_off_t = 0
        let retryAfterSeconds: Int? =
            ccurl_getinfo_off_t(handle, CURLINFO_RETRY_AFTER, &retryAfter) == CURLE_OK && retryAfter > 0
            ? Int(retryAfter) : nil
        let snippet = String(decoding: collector.bytes, as: UTF8.self)
        let detail = String(cString: errorBuffer)
        _ = ccurl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, nil)

        if result == CURLE_WRITE_ERROR && collector.overflowed && status > 0 {
            // The receiver answered; only its body was too long to read. The status stands.
            return WebhookResponse(
                status: status,
                snippet: snippet,
                retryAfterSeconds: retryAfterSeconds,
                seconds: seconds
            )
        }
        if transfer.refusedAddress.pointee != 0 {
            let error = WebhookTransportError(
                kind: .refusedAddress,
                curlCode: Int(result.rawValue),
                message:
                    "the webhook host resolves to a private, loopback or link-local address (access.private_webhooks: deny)"
            )
            return WebhookResponse(status: 0, error: error, seconds: seconds)
        }
        if let failure = transfer.streamed?.failure {
            let error = WebhookTransportError(
                kind: .other,
                curlCode: Int(result.rawValue),
                message: "cannot read the message to send: \(failure)"
            )
            return WebhookResponse(status: 0, error: error, seconds: seconds)
        }
        guard result == CURLE_OK else {
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
    fileprivate final class StreamedBody {
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
