//! The statements of `claim_batch`, each one round trip inside the claim's
//! transaction (or pipelined with its neighbours on the same connection, which the
//! server still runs one after the other). Hand-written and parameterised; they
//! decide nothing, `batch.rs` does. They never wait on a row lock except
//! `cancel_due`, which locks in id order like every other multi-row delivery write.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::pg::conn::{AsSql, Tx};

use super::bucket::Bucket;
use super::{Claimed, Left};
use crate::model::{Event, UnixMs};
use crate::store::StoreError;
use crate::store::pg::sql;

/// A candidate webhook with due unleased work, and its tenant.
pub(super) struct Candidate {
    pub(super) webhook: String,
    pub(super) tenant: String,
    /// Due unleased rows seen in this pass's window (at least 1).
    pub(super) due: u32,
    /// `due` is all the webhook's due unleased rows (its window was not cut), so
    /// asking for more would only hold slots that other webhooks could use.
    pub(super) all: bool,
}

/// The first window (`$1` now, `$3` its bound): the due index read oldest first,
/// unleased or lease expired rows only.
macro_rules! window {
    () => {
        "SELECT webhook_id, tenant, next_attempt_at, id FROM deliveries \
         WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
         ORDER BY next_attempt_at, id LIMIT $3"
    };
}

/// The window's webhooks (`s`), full tenants' rows (`$2`) left out after the read,
/// and the row of pass 2 with how many rows the window read (`first_look`).
macro_rules! window_groups {
    () => {
        "s AS ( \
             SELECT webhook_id, min(tenant) AS tenant, count(*) AS n, \
                 min(next_attempt_at) AS at, min(id) AS first FROM x \
             WHERE tenant <> ALL($2) GROUP BY webhook_id)"
    };
}

/// The count row `first_look` reads the window's cut from.
macro_rules! window_count {
    () => {
        "UNION ALL SELECT NULL, NULL, count(*), 2, NULL, NULL FROM x \
         ORDER BY pass, at, first"
    };
}

/// [`scan_first`]'s statement: `$1` now, `$2` full tenants, `$3` the window's
/// bound, `$4` the most webhooks looked at beyond it.
pub(in crate::store::pg) const FIRST_LOOK: &str = concat!(
    "WITH RECURSIVE x AS (",
    window!(),
    "), ",
    window_groups!(),
    ", \
     cut AS (SELECT count(*) >= $3 AS cut FROM x), \
     w(id) AS ( \
         (SELECT webhook_id FROM deliveries \
          WHERE next_attempt_at IS NOT NULL AND (SELECT cut FROM cut) \
          ORDER BY webhook_id, next_attempt_at LIMIT 1) \
         UNION ALL \
         SELECT (SELECT d.webhook_id FROM deliveries d \
                 WHERE d.next_attempt_at IS NOT NULL AND d.webhook_id > w.id \
                 ORDER BY d.webhook_id, d.next_attempt_at LIMIT 1) \
         FROM w WHERE w.id IS NOT NULL), \
     r AS ( \
         SELECT w.id AS webhook_id, f.tenant, 1::bigint AS n, \
             f.next_attempt_at AS at, f.id AS first FROM w, \
         LATERAL (SELECT tenant, next_attempt_at, id FROM deliveries \
                  WHERE webhook_id = w.id AND next_attempt_at <= $1 \
                    AND (lease_until IS NULL OR lease_until <= $1) \
                  ORDER BY webhook_id, next_attempt_at, id LIMIT 1) f \
         WHERE w.id IS NOT NULL AND f.tenant <> ALL($2) \
           AND NOT EXISTS (SELECT 1 FROM s WHERE s.webhook_id = w.id) \
         ORDER BY f.next_attempt_at, f.id LIMIT $4) \
     SELECT webhook_id, tenant, n, 0 AS pass, at, first FROM s \
     UNION ALL SELECT webhook_id, tenant, n, 1, at, first FROM r ",
    window_count!()
);

/// [`scan_window`]'s statement: `$1` now, `$2` full tenants, `$3` the window's
/// bound.
pub(in crate::store::pg) const WINDOW_LOOK: &str = concat!(
    "WITH x AS (",
    window!(),
    "), ",
    window_groups!(),
    " SELECT webhook_id, tenant, n, 0 AS pass, at, first FROM s ",
    window_count!()
);

/// The first look, in one statement: the due index read oldest first, at most
/// `scan` rows, grouped by webhook, full tenants' rows left out after the read (so
/// they count toward the bound: filtered inside it, a claim for a node whose only
/// busy tenant is full walked that tenant's whole due backlog, 33,000 rows and
/// 17 ms in the benchmark); and only when that read was cut by its bound,
/// one look at each other webhook with due work (as [`scan_webhooks`], at most
/// `limit`). Returns the candidates (the index's first, oldest due first, then the
/// others) as a [`FirstLook`].
pub(super) async fn scan_first(
    tx: &Tx<'_>,
    now: UnixMs,
    full: &[&str],
    scan: i64,
    limit: i64,
) -> Result<FirstLook, StoreError> {
    let rows = tx
        .sql()
        .cached_query(FIRST_LOOK, &[&now, &full, &scan, &limit])
        .await
        .map_err(sql)?;
    let (found, others, cut) = first_look(&rows, scan);
    Ok(FirstLook {
        found,
        unseen: others >= limit,
        cut,
    })
}

/// The first look when the last claim's window was not cut (a light load): only
/// the due index read oldest first, at most `scan` rows, grouped by webhook with
/// full tenants' rows left out after the read, as in [`scan_first`]. Without the
/// look beyond the window, its plan costs about a quarter of `scan_first`'s
/// (0.11 against 0.43 ms), and at a light load every claim is planned for little
/// else. Webhooks beyond a cut window are left to the later passes (`unseen`).
pub(super) async fn scan_window(
    tx: &Tx<'_>,
    now: UnixMs,
    full: &[&str],
    scan: i64,
) -> Result<FirstLook, StoreError> {
    let rows = tx
        .sql()
        .cached_query(WINDOW_LOOK, &[&now, &full, &scan])
        .await
        .map_err(sql)?;
    let (found, _, cut) = first_look(&rows, scan);
    Ok(FirstLook {
        found,
        unseen: cut,
        cut,
    })
}

/// What a claim's first look found.
pub(super) struct FirstLook {
    /// The candidates: the window's webhooks oldest due first, then any found
    /// beyond it.
    pub(super) found: Vec<Candidate>,
    /// Webhooks with due work may have been left unseen: the later passes look.
    pub(super) unseen: bool,
    /// The window was cut by its bound (more due rows than it read): the next
    /// claim's first look goes beyond it in the same statement.
    pub(super) cut: bool,
}

/// Reads a first look's rows of (webhook, tenant, rows seen, pass, ...): pass 0
/// the window's webhooks, pass 1 those beyond it, and one row of pass 2 (webhook
/// NULL) with how many rows the window read, there even when every one of them
/// was a full tenant's. Returns the candidates, how many came from beyond the
/// window, and whether the window was cut.
fn first_look(rows: &[tokio_postgres::Row], scan: i64) -> (Vec<Candidate>, i64, bool) {
    let mut found = Vec::with_capacity(rows.len());
    let (mut others, mut cut) = (0, false);
    for r in rows {
        match r.get::<_, i32>(3) {
            2 => cut = r.get::<_, i64>(2) >= scan,
            pass => {
                others += i64::from(pass == 1);
                found.push(candidate(r, pass == 0));
            }
        }
    }
    // The window's counts are whole only if it was not cut (the count row comes
    // last: `ORDER BY pass`).
    for c in &mut found {
        c.all &= !cut;
    }
    (found, others, cut)
}

/// [`scan_webhooks`]' statement: `$1` now, `$2` webhooks already considered, `$3`
/// full tenants, `$4` the most webhooks.
pub(in crate::store::pg) const LATER_LOOK: &str = "WITH RECURSIVE w(id) AS ( \
         (SELECT webhook_id FROM deliveries WHERE next_attempt_at IS NOT NULL \
          ORDER BY webhook_id, next_attempt_at LIMIT 1) \
         UNION ALL \
         SELECT (SELECT d.webhook_id FROM deliveries d \
                 WHERE d.next_attempt_at IS NOT NULL AND d.webhook_id > w.id \
                 ORDER BY d.webhook_id, d.next_attempt_at LIMIT 1) \
         FROM w WHERE w.id IS NOT NULL) \
     SELECT w.id, f.tenant, 1::bigint FROM w, \
     LATERAL (SELECT tenant, next_attempt_at, id FROM deliveries \
              WHERE webhook_id = w.id AND next_attempt_at <= $1 \
                AND (lease_until IS NULL OR lease_until <= $1) \
              ORDER BY webhook_id, next_attempt_at, id LIMIT 1) f \
     WHERE w.id IS NOT NULL AND w.id <> ALL($2) AND f.tenant <> ALL($3) \
     ORDER BY f.next_attempt_at, f.id LIMIT $4";

/// Later passes: one look per webhook that has unfinished rows (a loose index scan
/// over `deliveries_webhook_due`, ordered by its first two columns so that no other
/// index of `deliveries` serves it without a sort: ordered by `webhook_id` alone,
/// the planner walked `deliveries_webhook` over finished rows; then each webhook's
/// oldest due unleased row through the same index), skipping webhooks already
/// considered and full tenants; at most `limit` webhooks, oldest due first. Its cost follows the number
/// of webhooks with unfinished rows, not the due backlog of saturated ones.
pub(super) async fn scan_webhooks(
    tx: &Tx<'_>,
    now: UnixMs,
    considered: &[String],
    full: &[&str],
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
    let rows = tx
        .sql()
        .cached_query(LATER_LOOK, &[&now, &considered, &full, &limit])
        .await
        .map_err(sql)?;
    Ok(candidates(&rows))
}

fn candidates(rows: &[tokio_postgres::Row]) -> Vec<Candidate> {
    rows.iter().map(|r| candidate(r, false)).collect()
}

/// A candidate from a row of (webhook, tenant, due rows seen); `all` when those
/// are every due unleased row it has.
fn candidate(r: &tokio_postgres::Row, all: bool) -> Candidate {
    Candidate {
        webhook: r.get(0),
        tenant: r.get(1),
        due: u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX).max(1),
        all,
    }
}

/// The earliest due time after `$1` of any unfinished delivery.
pub(in crate::store::pg) const NEXT_DUE: &str =
    "SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at > $1";

/// The earliest due time after `now` of any unfinished delivery (the loop's timer).
pub(super) async fn next_due_after(tx: &Tx<'_>, now: UnixMs) -> Result<Option<UnixMs>, StoreError> {
    let row = tx
        .sql()
        .cached_query_one(NEXT_DUE, &[&now])
        .await
        .map_err(sql)?;
    Ok(row.get(0))
}

/// A locked candidate webhook's settings.
pub(super) struct Locked {
    pub(super) live: bool,
    pub(super) fifo: bool,
    pub(super) rate: Option<i32>,
}

/// What the decision needs to know of one candidate, read after its lock.
#[derive(Default)]
pub(super) struct Info {
    /// Whether the webhook row exists at all.
    pub(super) present: bool,
    /// Live leases of the webhook over every node, and of them this node's.
    pub(super) held: u32,
    pub(super) mine: u32,
    /// A FIFO webhook's first unfinished delivery by id, with its due time.
    pub(super) head: Option<(String, UnixMs)>,
    /// A rate-limited webhook's stored bucket.
    pub(super) bucket: Option<Bucket>,
}

/// Locks the webhooks `$1` that no other transaction holds, in id order, and
/// answers their settings.
pub(in crate::store::pg) const LOCK_WEBHOOKS: &str = "SELECT id, enabled AND deleted_at IS NULL, \
     ordering, rate_limit_per_second FROM webhooks WHERE id = ANY($1) ORDER BY id \
     FOR UPDATE SKIP LOCKED";

/// Per webhook of `$1`: whether its row exists, its live leases (`$3` now) over
/// every node and of them node `$2`'s, a FIFO webhook's first unfinished delivery,
/// and a rate-limited webhook's bucket.
pub(in crate::store::pg) const WEBHOOK_INFO: &str = "SELECT c.id, w.id IS NOT NULL, l.held, \
         l.mine, h.id, h.next_attempt_at, b.tokens, b.updated_at \
     FROM unnest($1::text[]) AS c(id) \
     LEFT JOIN webhooks w ON w.id = c.id \
     LEFT JOIN rate_buckets b ON b.webhook_id = c.id AND w.rate_limit_per_second IS NOT NULL \
     CROSS JOIN LATERAL (SELECT count(*) AS held, \
             count(*) FILTER (WHERE lease_id = $2::text::uuid) AS mine \
         FROM deliveries WHERE webhook_id = c.id AND lease_id IS NOT NULL \
           AND lease_until > $3) l \
     LEFT JOIN LATERAL (SELECT id, next_attempt_at FROM deliveries \
         WHERE webhook_id = c.id AND next_attempt_at IS NOT NULL AND w.ordering = 1 \
         ORDER BY line_seq NULLS FIRST, id LIMIT 1) h ON true";

/// Locks the candidate webhooks that no other transaction holds, then reads what
/// the decision needs of each (`Info`), in one round trip. The read is a statement
/// of its own that runs after the locks are taken: its snapshot then sees every
/// claim committed before them, so leases of other nodes are never missed. The
/// caller uses the read for locked rows only.
pub(super) async fn lock_and_read(
    tx: &Tx<'_>,
    ids: &[String],
    node: &str,
    now: UnixMs,
) -> Result<(HashMap<String, Locked>, HashMap<String, Info>), StoreError> {
    let (locked, info) = tx
        .sql()
        .cached_query_in_order(
            (LOCK_WEBHOOKS, &[&ids]),
            (WEBHOOK_INFO, &[&ids, &node, &now]),
        )
        .await
        .map_err(sql)?;
    let locked = locked
        .iter()
        .map(|r| {
            let ordering: i16 = r.get(2);
            (
                r.get(0),
                Locked {
                    live: r.get(1),
                    fifo: ordering == 1,
                    rate: r.get(3),
                },
            )
        })
        .collect();
    let info = info
        .iter()
        .map(|r| {
            let count = |i: usize| u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX);
            let head: Option<String> = r.get(4);
            let tokens: Option<f64> = r.get(6);
            let at: Option<i64> = r.get(7);
            (
                r.get(0),
                Info {
                    present: r.get(1),
                    held: count(2),
                    mine: count(3),
                    head: head.map(|h| (h, r.get::<_, Option<i64>>(5).unwrap_or(0))),
                    bucket: tokens
                        .zip(at)
                        .map(|(tokens, updated_at)| Bucket { tokens, updated_at }),
                },
            )
        })
        .collect();
    Ok((locked, info))
}

/// Cancels the unleased (`$2` now) unfinished rows of webhooks `$1`, locking them
/// in id order.
pub(in crate::store::pg) const CANCEL_DUE: &str = "WITH l AS (SELECT id FROM deliveries \
         WHERE webhook_id = ANY($1) AND next_attempt_at IS NOT NULL \
           AND (lease_until IS NULL OR lease_until <= $2) \
         ORDER BY id FOR UPDATE) \
     UPDATE deliveries d SET state = 4, next_attempt_at = NULL, updated_at = $2, \
         lease_id = NULL, lease_until = NULL \
     FROM l WHERE d.id = l.id";

/// Cancels the unleased unfinished rows of webhooks that can take no delivery,
/// locking them in id order.
pub(super) async fn cancel_due(tx: &Tx<'_>, ids: &[String], now: UnixMs) -> Result<(), StoreError> {
    tx.sql()
        .cached_execute(CANCEL_DUE, &[&ids, &now])
        .await
        .map_err(sql)?;
    Ok(())
}

/// Stores the token buckets of webhooks `$1` (`$2` tokens as of `$3`).
pub(in crate::store::pg) const SAVE_BUCKETS: &str = "INSERT INTO rate_buckets (webhook_id, \
     tokens, updated_at) SELECT * FROM unnest($1::text[], $2::float8[], $3::bigint[]) \
     ON CONFLICT (webhook_id) DO UPDATE \
         SET tokens = EXCLUDED.tokens, updated_at = EXCLUDED.updated_at";

pub(super) async fn save_buckets(
    tx: &Tx<'_>,
    buckets: &[(String, Bucket)],
) -> Result<(), StoreError> {
    if buckets.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = buckets.iter().map(|(id, _)| id.as_str()).collect();
    let tokens: Vec<f64> = buckets.iter().map(|(_, b)| b.tokens).collect();
    let at: Vec<i64> = buckets.iter().map(|(_, b)| b.updated_at).collect();
    tx.sql()
        .cached_execute(SAVE_BUCKETS, &[&ids, &tokens, &at])
        .await
        .map_err(sql)?;
    Ok(())
}

/// The picks (`$1` now): the FIFO heads `$2` by id, and per webhook of `$3` its
/// `$4` oldest due unleased rows, each locked, skipped when another transaction
/// holds it.
pub(in crate::store::pg) const PICK: &str = "WITH heads AS ( \
         SELECT id FROM deliveries WHERE id = ANY($2::text[]) FOR UPDATE SKIP LOCKED) \
     SELECT p.id FROM unnest($3::text[], $4::int[]) AS x(wh, n), \
     LATERAL (SELECT id FROM deliveries \
              WHERE webhook_id = x.wh AND next_attempt_at <= $1 \
                AND (lease_until IS NULL OR lease_until <= $1) \
              ORDER BY webhook_id, next_attempt_at, id LIMIT x.n \
              FOR UPDATE SKIP LOCKED) p \
     UNION ALL SELECT id FROM heads";

/// The lease (`$1` now, `$2` the node, `$3` the picked ids, `$4` until when), the
/// rows joined with their events: each event on the first of its rows only (by
/// id; the others' key is NULL, which reads no index page), so a fan-out of ten
/// reads an event once, not ten times. "Due" is written `(next_attempt_at <= $1) IS
/// TRUE`, the same test in a form the planner does not match to the partial
/// indexes' predicate: with `next_attempt_at <= $1`, the generic plan built on
/// empty tables read `deliveries_webhook_due` with the ids as a non-leading
/// condition (BENCHMARKS.md, session 12) instead of the primary key (`plans.rs`).
pub(in crate::store::pg) const LEASE: &str = "WITH c AS ( \
         UPDATE deliveries d SET lease_id = $2::text::uuid, lease_until = $4 \
         WHERE d.id = ANY($3::text[]) AND (d.next_attempt_at <= $1) IS TRUE \
           AND (d.lease_until IS NULL OR d.lease_until <= $1) \
         RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, d.state, \
             d.attempts, d.schedule_step, d.next_attempt_at, d.last_status, \
             d.last_error, d.created_at, d.updated_at), \
     n AS (SELECT c.*, row_number() OVER (PARTITION BY c.event_id ORDER BY c.id) AS k \
         FROM c) \
     SELECT n.id, n.tenant, n.event_id, n.webhook_id, n.event_type, n.state, \
         n.attempts, n.schedule_step, n.next_attempt_at, n.last_status, n.last_error, \
         n.created_at, n.updated_at, e.id, e.tenant, e.event_type, e.payload, e.channels, \
         e.idempotency_key, e.created_at \
     FROM n LEFT JOIN events e ON e.id = CASE WHEN n.k = 1 THEN n.event_id END \
     ORDER BY n.webhook_id, n.next_attempt_at, n.id";

/// Leases the chosen rows to `node` and returns them joined with their events: the
/// `n` oldest due unleased rows of each webhook in `webhooks`, and the FIFO heads
/// by id (re-checked due and unleased). Rows another transaction holds are skipped,
/// never waited for (noted in `left.locked`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn claim_rows(
    tx: &Tx<'_>,
    node: &str,
    now: UnixMs,
    until: UnixMs,
    webhooks: &[String],
    counts: &[i32],
    heads: &[String],
) -> Result<Vec<Claimed>, StoreError> {
    // Two statements, so each is planned with its real sizes: the picks (locked,
    // never waited for), then the claim by primary key joined with the events.
    let picked = tx
        .sql()
        .cached_query(PICK, &[&now, &heads, &webhooks, &counts])
        .await
        .map_err(sql)?;
    let ids: Vec<String> = picked.iter().map(|r| r.get(0)).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .sql()
        .cached_query(LEASE, &[&now, &node, &ids, &until])
        .await
        .map_err(sql)?;
    // Each event comes once, on the first of its deliveries' rows (`LEASE`): a
    // fan-out of ten reads and sends its payload once, and its deliveries share it.
    let mut events: HashMap<String, Arc<Event>> = HashMap::new();
    for r in rows.iter() {
        if let Some(id) = r.get::<_, Option<String>>(13) {
            let event = Event {
                id,
                tenant: r.get(14),
                event_type: r.get(15),
                payload: r.get(16),
                channels: r.get(17),
                idempotency_key: r.get(18),
                created_at: r.get(19),
            };
            events.insert(event.id.clone(), Arc::new(event));
        }
    }
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let delivery = crate::store::pg::ingest::delivery(r)?;
        // A delivery whose event is gone is not handed out (an inner join did
        // the same); its lease runs out.
        if let Some(event) = events.get(&delivery.event_id) {
            claimed.push(Claimed {
                event: event.clone(),
                delivery,
                lease_until: until,
            });
        }
    }
    Ok(claimed)
}

/// Notes in `left` that due work stays behind leases: other nodes' when they hold
/// any of the webhook's (no `Done` of this node will tell when they end).
pub(super) fn held_by(left: &mut Left, info: &Info) {
    if info.held > info.mine {
        left.elsewhere = true;
    }
}
