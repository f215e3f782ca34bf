//! How the hot paths' cached statements are planned. A statement prepared once
//! per connection is, by default, planned for its values five times and then
//! given a generic plan when PostgreSQL guesses it no worse. That guess went wrong
//! for the claim (session 7), and planning every call instead was most of
//! PostgreSQL's planning time and a fifth of its CPU (sessions 12 and 14). So the
//! claim's and the completion's transactions, and ingest from its first
//! statement, ask for one generic plan per statement and connection
//! ([`GENERIC_PLANS`]), with only index scans joined by nested loops allowed.
//!
//! Each of these statements is a walk of an index by keys it is given (rows by
//! primary key, a webhook's due rows or leases, the due index in order), so its
//! best plan does not depend on its values. But a connection keeps a generic plan
//! until the table is next analyzed, so the plan built on a fresh, empty database
//! must already be the plan of a large one: `tests/it/pg_plans.rs` checks that for
//! every statement in [`GENERIC_PLANNED`]. The check is needed. Two statements got
//! plans on empty tables that walked a partial index with the ids as a non-leading
//! condition instead of the primary key, because one of their conditions implied
//! the index's predicate `next_attempt_at IS NOT NULL`: the completion's write and
//! the claim's lease. Their conditions are written so the planner does not match
//! them to it (`claims::COMPLETE`, `batch::LEASE`).
//!
//! The settings are `SET LOCAL`, sent in the same round trip as the first statement
//! they govern and undone by the commit. With `postgres_statements = "unnamed"`
//! nothing is cached: each call is planned again, under the same settings (so a
//! generic plan, the plan the test checks).

use super::{batch, claims, ingest};

/// The settings of [`GENERIC_PLANS`], as a literal for `concat!`.
macro_rules! generic_plans {
    () => {
        "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; \
         SET LOCAL enable_bitmapscan = off; SET LOCAL enable_hashjoin = off; \
         SET LOCAL enable_mergejoin = off"
    };
}

/// One generic plan per statement and connection, from index scans and nested
/// loops only.
pub const GENERIC_PLANS: &str = generic_plans!();

/// How a claim's and an outcome's transactions open: lazily durable (a claim or
/// an outcome lost in a crash is only made again: the row is due again when its
/// lease runs out), with generic plans.
pub(crate) const LAZY_GENERIC: &str =
    concat!("SET LOCAL synchronous_commit = off; ", generic_plans!());

/// Every statement that reads or writes a table under [`GENERIC_PLANS`].
pub const GENERIC_PLANNED: &[&str] = &[
    batch::NEXT_DUE,
    batch::FIRST_LOOK,
    batch::WINDOW_LOOK,
    batch::LATER_LOOK,
    batch::LOCK_WEBHOOKS,
    batch::WEBHOOK_INFO,
    batch::CANCEL_DUE,
    batch::SAVE_BUCKETS,
    batch::PICK,
    batch::LEASE,
    claims::LOCK_ROWS,
    claims::COMPLETE,
    claims::GIVE_BACK,
    ingest::LIVE_KEYS,
    ingest::CLAIM_KEY,
    ingest::SEEN_KEY,
    ingest::RELEASE_KEY,
    ingest::INSERT_EVENTS,
    ingest::INSERT_DELIVERIES,
];
