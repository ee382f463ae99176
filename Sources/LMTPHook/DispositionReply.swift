import Delivery
import LMTPCore

extension LMTPRecipientResult {
    /// The LMTP reply for one recipient's disposition: `250` only when the endpoint accepted
    /// the message or it is durably queued; `451` when the MTA should keep it; `5xx` when the
    /// endpoint refused it for good (the MTA bounces).
    package init(_ disposition: Disposition) {
        switch disposition {
        case .delivered(let id):
            self = .delivered("delivered id=\(id)")
        case .queued(let spoolID, let id, let reason):
            self.init(code: 250, enhancedCode: "2.0.0", text: "queued as \(spoolID) (\(reason)) id=\(id)")
        case .deferred(let id, let reason):
            self = .temporaryFailure("\(reason) id=\(id)")
        case .notTaken(let id, let reason):
            self.init(code: 451, enhancedCode: "4.3.0", text: "\(reason) id=\(id)")
        case .bounced(let id, let status, let reason):
            let (code, enhanced) = Self.permanentReply(httpStatus: status)
            self.init(code: code, enhancedCode: enhanced, text: "\(reason) id=\(id)")
        }
    }

    /// The reply for a recipient the endpoint already took in an earlier transaction (the MTA
    /// retries it because another endpoint failed): `250`, and nothing is sent again.
    package init(alreadyTaken earlier: DeliveryJournal.Taken) {
        if let spoolID = earlier.spoolID {
            self.init(code: 250, enhancedCode: "2.0.0", text: "already queued as \(spoolID) id=\(earlier.webhookID)")
        } else {
            self.init(code: 250, enhancedCode: "2.0.0", text: "already delivered id=\(earlier.webhookID)")
        }
    }

    /// The code for an endpoint's permanent refusal: redirects 550 5.4.0; 404/410 550 5.1.1
    /// (no such recipient); 413 552 5.3.4 (too big); 400/422 550 5.6.0 (content); 401/403
    /// 550 5.7.1 (refused); anything else 550 5.0.0.
    package static func permanentReply(httpStatus status: Int) -> (code: Int, enhancedCode: String) {
        switch status {
        case 300..<400: (550, "5.4.0")
        case 404, 410: (550, "5.1.1")
        case 413: (552, "5.3.4")
        case 400, 422: (550, "5.6.0")
        case 401, 403: (550, "5.7.1")
        default: (550, "5.0.0")
        }
    }
}
