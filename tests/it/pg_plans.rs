//! The hot-path statements planned once per connection (`GENERIC_PLANNED`, under
//! `GENERIC_PLANS`): a connection builds their generic plan at its first calls,
//! possibly on empty tables, and keeps it while the tables grow. So that plan must
//! be the plan of a large table, and walk indexes only. Checked on a real cluster:
//! each statement's generic plan on empty tables, then again on tables holding
//! tens of thousands of rows (analyzed), must be the same, and must read no table
//! sequentially, by bitmap, or through a hash or merge join. And an ingest's
//! statements are in fact planned once each per connection (counted by
//! `pg_stat_statements`).

use hookbox::store::IngestOutcome;
use hookbox::store::pg::{self, GENERIC_PLANNED, GENERIC_PLANS};

use crate::pg_cluster::{self, sql};

/// The generic plan of each of `GENERIC_PLANNED`, in order, as `EXPLAIN (COSTS
/// OFF)` prints it, built on a fresh connection under `GENERIC_PLANS`.
async fn generic_plans(url: &str) -> Vec<String> {
    let db = sql(url).await;
    let mut out = Vec::new();
    for (i, q) in GENERIC_PLANNED.iter().enumerate() {
        let params = (1..=20).filter(|n| q.contains(&format!("${n}"))).count();
        let nulls = vec!["NULL"; params].join(", ");
        db.batch_execute(&format!("BEGIN; {GENERIC_PLANS}; PREPARE p{i} AS {q}"))
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        let plan: Vec<String> = db
            .query(&format!("EXPLAIN (COSTS OFF) EXECUTE p{i}({nulls})"), &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        db.batch_execute("COMMIT").await.unwrap();
        out.push(plan.join("\n"));
    }
    out
}

/// Tables of a store that has run a while: 200 webhooks (every tenth FIFO, every
/// seventh rate limited), 40,000 events, a delivery each (half finished, a tenth
/// of the rest leased), 20,000 attempts, 2,000 API keys, 40,000 idempotency keys.
async fn fill(url: &str) {
    let db = sql(url).await;
    db.batch_execute(
        "INSERT INTO tenants SELECT 't' || n, 'T' || n, 0 FROM generate_series(1, 20) n;
         INSERT INTO api_keys SELECT 'key_' || n, 't' || (n % 20 + 1), 'k', '{}', \
             sha256(n::text::bytea), 'hb_', 0 FROM generate_series(1, 2000) n;
         INSERT INTO webhooks (id, tenant, url, event_types, channels, sealed, enabled, \
             metadata, rate_limit_per_second, created_at, updated_at, version, ordering) \
         SELECT 'wh_' || n, 't' || (n % 20 + 1), 'http://127.0.0.1:9/', '{}', '{}', '', \
             true, '{}', CASE WHEN n % 7 = 0 THEN 50 END, 0, 0, 1, \
             CASE WHEN n % 10 = 0 THEN 1 ELSE 0 END FROM generate_series(1, 200) n;
         INSERT INTO rate_buckets SELECT 'wh_' || n, 10, 0 \
             FROM generate_series(7, 200, 7) n;
         INSERT INTO events SELECT 'evt_' || lpad(n::text, 8, '0'), 't' || (n % 20 + 1), \
             'a.b', '{}', '{}', 'idem_' || n, n FROM generate_series(1, 40000) n;
         INSERT INTO idempotency SELECT 't' || (n % 20 + 1), 'idem_' || n, '', \
             'evt_' || lpad(n::text, 8, '0'), 1, n FROM generate_series(1, 40000) n;
         INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, \
             attempts, schedule_step, next_attempt_at, created_at, updated_at, lease_id, \
             lease_until) \
         SELECT 'dlv_' || lpad(n::text, 8, '0'), 't' || (n % 20 + 1), \
             'evt_' || lpad(n::text, 8, '0'), 'wh_' || (n % 200 + 1), 'a.b', \
             CASE WHEN n % 2 = 0 THEN 1 ELSE 0 END, n % 2, n % 2, \
             CASE WHEN n % 2 = 1 THEN n END, n, n, \
             CASE WHEN n % 20 = 1 THEN gen_random_uuid() END, \
             CASE WHEN n % 20 = 1 THEN n + 60000 END \
         FROM generate_series(1, 40000) n;
         INSERT INTO attempts SELECT 'dlv_' || lpad(n::text, 8, '0'), 1, n, 0, 200, NULL, \
             3, '' FROM generate_series(2, 40000, 2) n;
         ANALYZE;",
    )
    .await
    .expect("fill the tables");
}

#[tokio::test]
async fn generic_plans_walk_indexes_and_stay_the_same_as_the_tables_grow() {
    let url = pg_cluster::shared().database().await;
    let pool = pg::pool(&url, 2).unwrap();
    pg::connect_and_migrate(&pool).await.unwrap();

    let empty = generic_plans(&url).await;
    fill(&url).await;
    let full = generic_plans(&url).await;

    // Every statement's faults, listed together.
    let mut faults = Vec::new();
    for ((q, on_empty), on_full) in GENERIC_PLANNED.iter().zip(&empty).zip(&full) {
        if on_empty != on_full {
            faults.push(format!(
                "the plan built on empty tables is not the plan of full ones:\n\
                 {on_empty}\n---\n{on_full}\nof {q}"
            ));
        }
        // A generic plan: the parameters are still there, not folded into the plan.
        if on_full.contains("Index Cond") && !on_full.contains('$') {
            faults.push(format!("not a generic plan:\n{on_full}\nof {q}"));
        }
        for shape in ["Seq Scan", "Bitmap", "Hash Join", "Merge Join"] {
            if on_full.contains(shape) {
                faults.push(format!("{shape} in:\n{on_full}\nof {q}"));
            }
        }
        // Rows named by delivery id are read by the primary key.
        let by_id = q.contains("FROM deliveries WHERE id = ANY") || q.contains("UPDATE deliveries");
        if by_id && !on_full.contains("deliveries_pkey") {
            faults.push(format!("not by primary key:\n{on_full}\nof {q}"));
        }
    }
    for (q, p) in GENERIC_PLANNED.iter().zip(&full) {
        eprintln!("{q}\n{p}\n");
    }
    assert!(faults.is_empty(), "{}", faults.join("\n\n"));
}

/// An ingest by a caller without an API key (the application's own token, a test
/// store) runs under `GENERIC_PLANS` too: on the store's one connection, each of
/// its statements is planned once however many ingests run (PostgreSQL's own
/// choice plans the first five executions each anew). Counted by
/// `pg_stat_statements` on a cluster of the test's own.
#[tokio::test]
async fn an_ingest_without_an_api_key_plans_each_statement_once() {
    const INGESTS: i64 = 8;
    let cluster = pg_cluster::Cluster::private_with(
        "shared_preload_libraries = 'pg_stat_statements'\n\
         pg_stat_statements.track_planning = on",
    );
    let url = cluster.database().await;
    let db = sql(&url).await;
    db.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("the extension");
    let store = pg::PgStore::open(&url, 1, pg_cluster::cipher())
        .await
        .expect("open");
    store
        .create_tenant(pg_cluster::tenant("acme"), vec![])
        .await
        .expect("tenant");
    db.batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .expect("reset");
    for n in 0..INGESTS {
        let key = format!("key-{n}");
        let item = crate::pg_ingest::item(Some(&key), "{}", &["wh_1", "wh_2"]);
        let answer = store.ingest_as(vec![item], None).await.expect("ingest");
        assert!(
            matches!(answer[0].0, IngestOutcome::Created { .. }),
            "{:?}",
            answer[0].0
        );
    }

    // The statements every ingest ran, with how often each was planned.
    let rows = db
        .query(
            "SELECT query, plans FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = current_database() AND s.calls = $1 \
               AND s.query NOT LIKE 'SET %' ORDER BY query",
            &[&INGESTS],
        )
        .await
        .expect("pg_stat_statements");
    let planned: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for table in [
        "INSERT INTO idempotency",
        "INSERT INTO events",
        "INSERT INTO deliveries",
    ] {
        assert!(
            planned.iter().any(|(q, _)| q.starts_with(table)),
            "no statement `{table}` ran {INGESTS} times: {planned:#?}"
        );
    }
    let again: Vec<&(String, i64)> = planned.iter().filter(|(_, p)| *p > 1).collect();
    assert!(again.is_empty(), "planned more than once: {again:#?}");
    store.close();
}
