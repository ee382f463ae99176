/// The envelope of a received message, independent of the protocol that carried it.
public struct MailEnvelope: Sendable, Hashable {
    /// The reverse-path; the empty string for the null sender `<>` (bounces).
    public var mailFrom: String
    /// Recipients in the order they were accepted (duplicates removed).
    public var rcptTo: [String]
    /// The client's `LHLO` name.
    public var lhlo: String
    /// Whether the client declared `SMTPUTF8`.
    public var smtpUTF8: Bool
    /// The declared `BODY=` value, if any.
    public var body: String?
    /// The original SMTP client as told by XFORWARD (fields absent when unknown).
    public var client: Client

    /// XFORWARD attributes.
    public struct Client: Sendable, Hashable {
        public var name: String?
        public var addr: String?
        public var port: String?
        public var proto: String?
        public var helo: String?
        /// The MTA's queue id (Postfix `IDENT`).
        public var ident: String?
        public var source: String?

        public init(
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

    public init(
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
