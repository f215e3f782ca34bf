-- hookbox on PostgreSQL: the indexes of the delivery claims across nodes
-- (`claim_batch`, `renew_leases`, completion). Nothing else changes.

-- A webhook's due rows, oldest first: what a claim takes for one webhook.
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at, id)
    WHERE next_attempt_at IS NOT NULL;

-- A webhook's unfinished rows in creation order: the head of a FIFO line.
CREATE INDEX deliveries_line ON deliveries (webhook_id, id)
    WHERE next_attempt_at IS NOT NULL;

-- Leased rows per webhook (the per-webhook in-flight bound across nodes) and per
-- node (one renewal statement per tick, the release at shutdown).
CREATE INDEX deliveries_leased_webhook ON deliveries (webhook_id)
    WHERE lease_id IS NOT NULL;
CREATE INDEX deliveries_leased_node ON deliveries (lease_id)
    WHERE lease_id IS NOT NULL;
