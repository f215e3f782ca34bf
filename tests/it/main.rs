//! Integration tests: the real server on port 0, a real redb file in a temp dir (or
//! a real PostgreSQL database: `on_postgres` runs the whole suite again on it), real
//! HTTP over loopback.

mod api;
mod api_persist;
mod api_seeds;
mod api_webhooks;
mod concurrency;
mod contract;
mod delivery;
mod delivery_ops;
mod delivery_outcomes;
mod disk;
mod email;
mod fairness;
mod faults;
mod fifo;
mod filters;
mod helpers;
mod hostile;
mod hostile_raw;
mod isolation;
mod memory;
mod metrics;
mod notify;
mod on_postgres;
mod openapi;
mod pg_claims;
mod pg_cluster;
mod pg_copy;
mod pg_ingest;
mod pg_schema;
mod pg_store;
mod portal_api;
mod profiles;
mod receiver;
mod receiver_auth;
mod retention;
mod security;
mod security_minor;
mod smtp;
mod stepping;
mod store_cli;
mod store_compact;
mod upgrade;
