/// The envelope of a received message, independent of the protocol that carried it.
package struct MailEnvelope: Sendable, Hashable {
    /// The reverse-path; the empty string for the null sender `<>` (bounces).
    package var mailFrom: String
    /// Recipients in the order they were accepted (duplicates removed).
    package var rcptTo: [String]
    /// The client's `LHLO` name.
    package var lhlo: String
    /// Whether the client declared `SMTPUTF8`.
    package var smtpUTF8: Bool
    /// The declared `BODY=` value, if any.
    package var body: String?
    /// The original SMTP client as told by XFORWARD (fields absent when unknown).
    package var client: Client

    /// XFORWARD attributes.
    package struct Client: Sendable, Hashable {
        package var name: String?
        package var addr: String?
        package var port: String?
        package var proto: String?
        package var helo: String?
        /// The MTA's queue id (Postfix `IDENT`).
        package var ident: String?
        package var source: String?

        package init(
            name: String? = nil,
            addr: String? = nil,
            port: String? = nil,
            proto: String? = nil,
            helo: String? = nil,
            ident: String? = nil,
            source: String? = nil
        ) {
            self.name = name
            self.addr = addr
            self.port = port
            self.proto = proto
            self.helo = helo
            self.ident = ident
            self.source = source
        }
    }

    package init(
        mailFrom: String,
        rcptTo: [String],
        lhlo: String,
        smtpUTF8: Bool = false,
        body: String? = nil,
        client: Client = Client()
    ) {
        self.mailFrom = mailFrom
        self.rcptTo = rcptTo
        self.lhlo = lhlo
        self.smtpUTF8 = smtpUTF8
        self.body = body
        self.client = client
    }
}
