//! How the hot paths' cached statements are planned. A statement prepared once
//! per connection is, by default, planned for its values five times and then
//! given a generic plan when PostgreSQL guesses it no worse. Neither half suits
//! every statement here, so each transaction says which it wants:
//!
//! - **Generic** ([`GENERIC_PLANS`]): statements whose best plan does not depend
//!   on their values: the claim's first look and next due time (walks of the due
//!   index), the webhooks' locks and lease counts, the completion (its row locks,
//!   its write and the leases it gives back), ingest's lookups and inserts. Planned once per connection. Only index scans
//!   joined by nested loops are allowed, so that a plan built while the tables are
//!   empty is the plan of a large table: `tests/it/pg_plans.rs` checks that for
//!   every statement in [`GENERIC_PLANNED`]. Planning them on each call was most
//!   of PostgreSQL's planning time (BENCHMARKS.md, session 14).
//! - **Custom** ([`CUSTOM_PLANS`]): the claim's picks and lease (`LIMIT $n`, id
//!   arrays, how many rows a due time selects: their generic plans, built at a
//!   connection's first claims on a small table, read the wrong index until the
//!   table was analyzed, BENCHMARKS.md session 12) and the claim's later looks.
//!
//! The test is needed: the completion's write, which looks as safe as the rest,
//! got a generic plan on empty tables that found each row through
//! `deliveries_line_order` instead of the primary key, because one of its
//! conditions was that partial index's predicate (see `claims::COMPLETE`).
//!
//! The settings are `SET LOCAL`, sent in the same round trip as the statements
//! they govern and undone by the commit. On a connection's first call, a statement
//! not yet prepared is sent after its parse returns, so it may run under the next
//! statement's setting once: only its speed differs. With `postgres_statements =
//! "unnamed"` nothing is cached: each call is planned again, under the same
//! settings (so a generic plan where they ask for one, the plan the test checks).

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

/// Plans for each call's values again, within a transaction that opened with
/// [`LAZY_GENERIC`]: joins of any kind, still neither sequential nor bitmap scans
/// (every claim statement is built on an index walk, see `batch.rs`).
pub(crate) const CUSTOM_PLANS: &str = "SET LOCAL plan_cache_mode = force_custom_plan; \
     SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on";

/// How a claim's and an outcome's transactions open: lazily durable (a claim or
/// an outcome lost in a crash is only made again: the row is due again when its
/// lease runs out) and with generic plans until told otherwise.
pub(crate) const LAZY_GENERIC: &str =
    concat!("SET LOCAL synchronous_commit = off; ", generic_plans!());

/// Every statement that reads or writes a table under [`GENERIC_PLANS`].
pub const GENERIC_PLANNED: &[&str] = &[
    batch::NEXT_DUE,
    batch::FIRST_LOOK,
    batch::WINDOW_LOOK,
    batch::LOCK_WEBHOOKS,
    batch::WEBHOOK_INFO,
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
