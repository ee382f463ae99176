import Spool

/// Tunables of the delivery policy.
package struct DeliverySettings: Sendable, Equatable {
    /// Time the MTA waits for the first attempt before the message is queued instead.
    package var syncBudget: Duration
    package var retry: RetryPolicy
    /// Consecutive failures that open the circuit (new mail goes straight to the spool).
    package var breakerThreshold: Int
    /// How long an open circuit stays open before one message may try again.
    package var breakerCooldown: Duration
    /// Retry attempts in flight at most (all endpoints together; sync and late attempts are not
    /// counted). Each endpoint with queued entries gets a fair share of them.
    package var retryConcurrency: Int
    /// Requests in flight per endpoint at most, unless the endpoint sets its own; `nil`: three
    /// quarters of `delivery.threads`, so one endpoint that hangs cannot take every request slot.
    package var maxInFlightPerEndpoint: Int?
    /// How long the journal remembers which endpoint took which recipient of a message: at
    /// least the MTA's queue lifetime (Postfix's `maximal_queue_lifetime`, 5 days by default).
    package var journalWindow: Duration = .seconds(5 * 86_400)
    /// Message bytes being read, parsed and sent at once, over every kind of attempt
    /// (`limits.max_delivery_memory`); see ``DeliveryMemory``.
    package var maxDeliveryMemory: Int = 64 * 1024 * 1024

    package init(
        syncBudget: Duration = .seconds(5),
        retry: RetryPolicy = RetryPolicy(),
        breakerThreshold: Int = 5,
        breakerCooldown: Duration = .seconds(30),
        retryConcurrency: Int = 8
    ) {
        self.syncBudget = syncBudget
        self.retry = retry
        self.breakerThreshold = breakerThreshold
        self.breakerCooldown = breakerCooldown
        self.retryConcurrency = retryConcurrency
    }
}
