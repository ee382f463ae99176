import Targets
import Testing

@Suite("Success rules and rate limits")
struct DeliveryRuleTests {
    @Test func defaultRules() {
        let slack = TargetFormat.slack.defaultSuccessRule
        #expect(slack.violation(status: 200, body: "ok\n") == nil)
        #expect(slack.violation(status: 200, body: "<html>proxy error</html>") != nil)
        let discord = TargetFormat.discord.defaultSuccessRule
        #expect(discord.violation(status: 200, body: #"{"id":"1234","content":"x"}"#) == nil)
        #expect(discord.violation(status: 204, body: "") != nil, "204 without wait=true proves nothing")
        #expect(discord.violation(status: 200, body: #"{"id":null}"#) != nil)
        #expect(TargetFormat.teams.defaultSuccessRule.violation(status: 202, body: "") == nil)
        #expect(TargetFormat.json.defaultSuccessRule.violation(status: 204, body: "") == nil)
        #expect(SuccessRule(statuses: [201]).violation(status: 200, body: "") != nil)
    }

    @Test func discordURLWaits() {
        #expect(
            DiscordFormat.waitingURL("https://discord.com/api/webhooks/1/t")
                == "https://discord.com/api/webhooks/1/t?wait=true"
        )
        #expect(
            DiscordFormat.waitingURL("https://discord.com/api/webhooks/1/t?thread_id=5")
                == "https://discord.com/api/webhooks/1/t?thread_id=5&wait=true"
        )
        #expect(DiscordFormat.waitingURL("https://x/?wait=true") == "https://x/?wait=true")
    }

    @Test(arguments: [("1/s", 1, 1_000), ("5/2s", 5, 2_000), ("30/m", 30, 60_000), ("100/1h", 100, 3_600_000)])
    func parsesRates(_ text: String, _ requests: Int, _ period: Int64) {
        #expect(RateLimit.parse(text) == RateLimit(requests: requests, periodMilliseconds: period))
    }

    @Test(arguments: ["", "0/s", "1/", "x/s", "1/0s", "1/d", "-1/s", "1/s/s"])
    func rejectsBadRates(_ text: String) {
        #expect(RateLimit.parse(text) == nil)
    }

    @Test func bucketAllowsBurstThenSpacesRequests() {
        var bucket = TokenBucket(limit: RateLimit(requests: 5, periodMilliseconds: 2_000), nowMilliseconds: 0)
        for _ in 0..<5 { #expect(bucket.reserve(nowMilliseconds: 0) == 0) }
        #expect(bucket.reserve(nowMilliseconds: 0) == 400, "the sixth waits one token's time")
        #expect(bucket.reserve(nowMilliseconds: 0) == 800, "waiters queue")
        bucket.release()
        #expect(bucket.reserve(nowMilliseconds: 2_000) == 0, "refilled after the period")
    }
}
