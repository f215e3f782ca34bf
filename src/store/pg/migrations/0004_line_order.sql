-- hookbox on PostgreSQL: a FIFO line follows the order its deliveries were
-- written, not their id. An id is a ULID whose time part comes from the ingesting
-- node's clock, so an event acknowledged by one node and then sent to another
-- whose clock is behind could get a smaller id and be delivered first.
--
-- `line_seq` is drawn from one sequence inside the ingest transaction: an insert
-- that begins after another's commit (after its 202) always draws a larger number.
-- The sequence must keep CACHE 1 (the default): a per-session cache would hand out
-- numbers out of time order across connections.
--
-- Rows written before this migration keep line_seq NULL (no table rewrite) and
-- sort first, by id: they are older than every row written after it, and were
-- written under one clock order as before. `hookbox store copy` writes NULL too
-- (a redb store is one node: its ids are its order).
CREATE SEQUENCE deliveries_line_seq CACHE 1;
ALTER TABLE deliveries ADD COLUMN line_seq bigint;
ALTER TABLE deliveries ALTER COLUMN line_seq SET DEFAULT nextval('deliveries_line_seq');
ALTER SEQUENCE deliveries_line_seq OWNED BY deliveries.line_seq;

-- A webhook's unfinished rows in line order: the head of a FIFO line.
CREATE INDEX deliveries_line_order ON deliveries (webhook_id, line_seq NULLS FIRST, id)
    WHERE next_attempt_at IS NOT NULL;
