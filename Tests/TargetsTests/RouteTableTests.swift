import Targets
import Testing

@Suite("Route table")
struct RouteTableTests {
    static let table = RouteTable(
        routes: [
            Route(name: "support", conditions: [RouteCondition(address: "support@example.com")], endpoints: ["zammad"]),
            Route(
                name: "billing-urgent",
                conditions: [RouteCondition(address: "billing@example.com", tag: "urgent")],
                endpoints: ["phone"]
            ),
            Route(
                name: "billing",
                conditions: [RouteCondition(address: "billing@example.com")],
                endpoints: ["erp", "archive"]
            ),
            Route(
                name: "alerts",
                conditions: [
                    RouteCondition(domain: "example.com", localPart: "alert*"),
                    RouteCondition(domain: "alerts.example.com"),
                ],
                endpoints: ["slack"]
            ),
            Route(name: "sub", conditions: [RouteCondition(domain: "*.lists.example.com")], endpoints: ["lists"]),
            Route(
                name: "monitoring",
                conditions: [
                    RouteCondition(regex: try! AddressPattern("^(nagios|zabbix)-[a-z0-9]+@monitoring\\.example\\.com$"))
                ],
                endpoints: ["discord"]
            ),
            Route(
                name: "one-char",
                conditions: [RouteCondition(domain: "example.net", localPart: "?ops")],
                endpoints: ["ops"]
            ),
        ],
        delimiters: ["+", "-"]
    )

    static let cases: [(String, String?, [String], String?)] = [
        // address, route, endpoints, tag
        ("support@example.com", "support", ["zammad"], nil),
        ("SUPPORT@Example.COM", "support", ["zammad"], nil),  // case-insensitive
        ("support+Refunds@example.com", "support", ["zammad"], "Refunds"),  // plus-tag, spelling kept
        ("support-x@example.com", "support", ["zammad"], "x"),  // second delimiter
        ("supportx@example.com", nil, [], nil),  // not a tag: no delimiter
        ("support@example.org", nil, [], nil),  // other domain
        ("billing+urgent@example.com", "billing-urgent", ["phone"], "urgent"),  // tag condition, first match wins
        ("billing+later@example.com", "billing", ["erp", "archive"], "later"),  // fan-out
        ("billing@example.com", "billing", ["erp", "archive"], nil),
        // glob matches the local part without its tag: "alert"
        ("alert-disk@example.com", "alerts", ["slack"], "disk"),
        ("alerts@example.com", "alerts", ["slack"], nil),
        ("anything@alerts.example.com", "alerts", ["slack"], nil),  // second condition
        ("x@deep.lists.example.com", "sub", ["lists"], nil),  // subdomain wildcard
        ("x@lists.example.com", nil, [], nil),  // the wildcard needs a subdomain
        ("nagios-web1@monitoring.example.com", "monitoring", ["discord"], "web1"),
        ("Zabbix-DB@Monitoring.Example.com", "monitoring", ["discord"], "DB"),  // regex is case-insensitive
        ("nagios@monitoring.example.com", nil, [], nil),  // regex must match the whole address
        ("dops@example.net", "one-char", ["ops"], nil),
        ("devops@example.net", nil, [], nil),
        ("+tag@example.com", nil, [], nil),  // a leading delimiter is not a tag
        ("", nil, [], nil),
    ]

    @Test(arguments: cases.indices)
    func routes(_ index: Int) {
        let (address, route, endpoints, tag) = Self.cases[index]
        let match = Self.table.resolve(address)
        #expect(match?.route == route, "\(address)")
        #expect(match?.endpoints ?? [] == endpoints, "\(address)")
        #expect(match?.tag == tag, "\(address)")
        #expect(!Self.table.hasCatchAll)
    }

    @Test func catchAllTakesEverythingElse() {
        var table = Self.table
        table.routes.append(Route(name: "rest", conditions: [RouteCondition()], endpoints: ["archive"]))
        #expect(table.hasCatchAll)
        #expect(table.resolve("nobody@nowhere.test")?.route == "rest")
        #expect(table.resolve("support@example.com")?.route == "support", "earlier routes still win")
    }

    @Test func invalidRegexIsRejected() {
        #expect(throws: (any Error).self) { try AddressPattern("([a-z") }
    }
}
