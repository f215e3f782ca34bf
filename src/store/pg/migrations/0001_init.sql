-- hookbox on PostgreSQL, schema 1. Times are Unix milliseconds (bigint), as on redb;
-- ids are the same sortable strings (`wh_`, `evt_`, `dlv_`...), so ordering by id is
-- ordering by creation. Secret-bearing webhook fields are sealed with the master
-- key (ChaCha20-Poly1305) exactly as on redb, so every node needs the same key.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  bigint NOT NULL
);

-- Deleted tenants whose rows are still being purged; the id cannot be reused
-- until its row is gone.
CREATE TABLE tenant_purges (
    id          text PRIMARY KEY,
    deleted_at  bigint NOT NULL
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    name        text NOT NULL,
    scopes      text[] NOT NULL,
    hash        bytea NOT NULL UNIQUE,      -- SHA-256 of the key; the key is never stored
    prefix      text NOT NULL,
    created_at  bigint NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, id);

CREATE TABLE event_types (
    tenant      text NOT NULL,
    name        text NOT NULL,
    description text,
    schema      text,                        -- JSON Schema text as given
    created_at  bigint NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE webhooks (
    id                    text PRIMARY KEY,
    tenant                text NOT NULL,
    url                   text NOT NULL,
    event_types           text[] NOT NULL,
    channels              text[] NOT NULL,
    description           text,
    -- headers, OAuth settings and signing secrets, encoded with the record codec
    -- and sealed with the master key
    sealed                bytea NOT NULL,
    notification_email    text,
    enabled               boolean NOT NULL,
    disabled_reason       text,
    disabled_at           bigint,
    metadata              jsonb NOT NULL,   -- string map
    rate_limit_per_second integer,
    created_at            bigint NOT NULL,
    updated_at            bigint NOT NULL,
    deleted_at            bigint,
    failing_since         bigint,
    version               bigint NOT NULL,  -- the ETag; bumped on every write
    ordering              smallint NOT NULL DEFAULT 0,  -- 0 none, 1 fifo
    filter                text              -- canonical JSON text of the payload filter
);
CREATE INDEX webhooks_tenant ON webhooks (tenant, id);

CREATE TABLE events (
    id              text PRIMARY KEY,
    tenant          text NOT NULL,
    event_type      text NOT NULL,
    payload         text NOT NULL,          -- `data` exactly as received
    channels        text[] NOT NULL,
    idempotency_key text,
    created_at      bigint NOT NULL
);
CREATE INDEX events_tenant ON events (tenant, id);

-- Idempotency across nodes: the unique key is the primary key.
CREATE TABLE idempotency (
    tenant      text NOT NULL,
    key         text NOT NULL,
    body_hash   bytea NOT NULL,
    event_id    text NOT NULL,
    deliveries  integer NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- The delivery row is the job: a node claims due rows with FOR UPDATE SKIP LOCKED,
-- sets lease_id/lease_until, and completes them fenced by lease_id.
CREATE TABLE deliveries (
    id              text PRIMARY KEY,
    tenant          text NOT NULL,
    event_id        text NOT NULL,
    webhook_id      text NOT NULL,
    event_type      text NOT NULL,
    state           smallint NOT NULL,      -- 0 pending 1 succeeded 2 failed 3 exhausted 4 cancelled
    attempts        integer NOT NULL,
    schedule_step   integer NOT NULL,
    next_attempt_at bigint,                 -- set while not final
    last_status     smallint,
    last_error      text,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    lease_id        uuid,
    lease_until     bigint
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id, id);

CREATE TABLE attempts (
    delivery_id   text NOT NULL,
    number        integer NOT NULL,
    at            bigint NOT NULL,
    trigger       smallint NOT NULL,        -- 0 scheduled 1 manual 2 test
    status        smallint,
    error         text,
    latency_ms    bigint NOT NULL,
    response_body text NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

-- Failure streak and email throttle per webhook.
CREATE TABLE notify (
    webhook_id  text PRIMARY KEY,
    last_sent   bigint,
    suppressed  integer NOT NULL
);

-- rate_limit_per_second across nodes: one token bucket per webhook, reserved in
-- batches.
CREATE TABLE rate_buckets (
    webhook_id  text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  bigint NOT NULL
);

-- Background work (retention, auto-disable checks, failure emails) runs on one node
-- at a time: the node holding an unexpired row.
CREATE TABLE job_leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    until       bigint NOT NULL
);

-- Small store-wide values (the config seeds already applied).
CREATE TABLE meta (
    name        text PRIMARY KEY,
    value       bytea NOT NULL
);
