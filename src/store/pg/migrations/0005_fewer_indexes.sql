-- hookbox on PostgreSQL: two indexes of `deliveries` that cost more than they give.
-- A claim and a completion are not HOT updates, so every index of `deliveries`
-- whose predicate holds takes a new entry on each (see ARCHITECTURE.md, "The SQL
-- schema and its history").
--
-- `deliveries_line (webhook_id, id) WHERE next_attempt_at IS NOT NULL` has the
-- leading column and the predicate of `deliveries_webhook_due` and
-- `deliveries_line_order` (schema 4): the loose scan over webhooks with unfinished
-- rows reads either of them, and a webhook's cancel (rare) sorts its rows by id.
DROP INDEX deliveries_line;

-- `deliveries_leased_node (lease_id) WHERE lease_id IS NOT NULL`: every statement
-- that names a lease also names its rows by id (the primary key). Every node's
-- leases share one lease id, so the planner, choosing this index for
-- `id = ANY($ids) AND lease_id = $node`, walked every entry the node's leases had
-- left since the last vacuum: about 2,850 per completion in the 10-subscription
-- benchmark, 4.1 million in a 50,000-delivery run.
DROP INDEX deliveries_leased_node;
