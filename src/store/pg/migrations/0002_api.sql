-- hookbox on PostgreSQL, schema 2: what the API side needs beyond schema 1.

-- Portal sessions: the SHA-256 of the token is the key (the token is never stored).
-- A tenant's expired sessions are dropped whenever it creates one; revoking or
-- purging a tenant deletes by tenant.
CREATE TABLE portal_sessions (
    hash        bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    tenant      text NOT NULL,
    read_only   boolean NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL
);
CREATE INDEX portal_sessions_tenant ON portal_sessions (tenant, expires_at);
