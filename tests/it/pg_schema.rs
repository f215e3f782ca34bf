//! The PostgreSQL engine's foundation against a real cluster (`pg_cluster`): the
//! embedded migrations, applied once even when nodes start together, a newer schema
//! refused, and an unreachable or misspelt database a clear error.

use hookbox::store::pg::{self, PgError};

use crate::pg_cluster::{self, sql};

#[tokio::test]
async fn migrating_a_fresh_database_creates_the_schema_and_records_it() {
    let url = pg_cluster::shared().database().await;
    let pool = pg::pool(&url, 4).unwrap();
    assert_eq!(pg::connect_and_migrate(&pool).await.unwrap(), pg::SCHEMA);

    let db = sql(&url).await;
    let tables: Vec<String> = db
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in [
        "api_keys",
        "attempts",
        "deliveries",
        "event_types",
        "events",
        "hookbox_schema",
        "idempotency",
        "job_leases",
        "meta",
        "notify",
        "portal_sessions",
        "rate_buckets",
        "tenant_purges",
        "tenants",
        "webhooks",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    let applied: Vec<(i32, String)> = db
        .query(
            "SELECT version, name FROM hookbox_schema ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(i32, String)> = pg::MIGRATIONS
        .iter()
        .map(|(v, name, _)| (*v, (*name).to_owned()))
        .collect();
    assert_eq!(applied, expected);
    assert_eq!(applied.last().map(|m| m.0), Some(pg::SCHEMA));

    // Starting again applies nothing and keeps the data.
    db.execute(
        "INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', 1)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(pg::connect_and_migrate(&pool).await.unwrap(), pg::SCHEMA);
    let count: i64 = db
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn nodes_starting_together_apply_each_migration_once() {
    let url = pg_cluster::shared().database().await;
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let pool = pg::pool(&url, 2).unwrap();
                pg::connect_and_migrate(&pool).await
            })
        })
        .collect();
    for node in nodes {
        assert_eq!(node.await.unwrap().unwrap(), pg::SCHEMA);
    }
    let db = sql(&url).await;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM hookbox_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, pg::MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_hookbox_is_refused_and_left_as_it_is() {
    let url = pg_cluster::shared().database().await;
    let pool = pg::pool(&url, 2).unwrap();
    pg::connect_and_migrate(&pool).await.unwrap();
    let db = sql(&url).await;
    db.execute(
        "INSERT INTO hookbox_schema (version, name, applied_at) VALUES (99, 'future', 0)",
        &[],
    )
    .await
    .unwrap();

    let err = pg::connect_and_migrate(&pool).await.unwrap_err();
    assert!(
        matches!(err, PgError::NewerSchema { found: 99, supported } if supported == pg::SCHEMA),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("schema 99") && message.contains("newer"),
        "{message}"
    );
    let versions: i64 = db
        .query_one("SELECT count(*) FROM hookbox_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, pg::MIGRATIONS.len() as i64 + 1);
}

#[tokio::test]
async fn an_unreachable_or_misspelt_database_is_a_clear_error() {
    // Nothing listens on this port (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pool = pg::pool(
        &format!("postgres://hookbox@127.0.0.1:{port}/hookbox?connect_timeout=5"),
        2,
    )
    .unwrap();
    let err = pg::connect_and_migrate(&pool).await.unwrap_err();
    assert!(matches!(err, PgError::Unreachable(_)), "{err}");
    assert!(
        err.to_string().starts_with("cannot reach PostgreSQL"),
        "{err}"
    );

    let err = pg::pool("postgres://[::1", 2).unwrap_err();
    assert!(matches!(err, PgError::Url(_)), "{err}");
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_is_unreachable_not_a_hang() {
    // Loopback TCP that accepts every connection and never says a word, as a
    // wedged database or a half-open proxy does. The URL sets no connect_timeout:
    // hookbox's own bound on making a connection applies.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let pool = pg::pool(&format!("postgres://hookbox@127.0.0.1:{port}/hookbox"), 2).unwrap();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        pg::connect_and_migrate(&pool),
    )
    .await
    .expect("connecting to a silent server never ended");
    let err = answer.unwrap_err();
    assert!(matches!(err, PgError::Unreachable(_)), "{err}");
    assert!(
        err.to_string().starts_with("cannot reach PostgreSQL"),
        "{err}"
    );
    held.abort();
}

#[tokio::test]
async fn sslmode_require_speaks_tls_and_refuses_a_server_without_it() {
    // The test cluster has no certificate: a TLS connection must be refused, not
    // silently downgraded to plain text.
    let url = pg_cluster::shared()
        .database()
        .await
        .replace("sslmode=disable", "sslmode=require");
    let pool = pg::pool(&url, 1).unwrap();
    let err = pg::connect_and_migrate(&pool).await.unwrap_err();
    assert!(matches!(err, PgError::Unreachable(_)), "{err}");
}

/// What a hookbox of schema 3 left behind: its migrations applied and recorded.
async fn at_schema_3(db: &tokio_postgres::Client) {
    db.batch_execute(
        "CREATE TABLE hookbox_schema (version integer PRIMARY KEY, name text NOT NULL, \
         applied_at bigint NOT NULL)",
    )
    .await
    .unwrap();
    for (version, name, text) in pg::MIGRATIONS.iter().filter(|m| m.0 <= 3) {
        db.batch_execute(text).await.unwrap();
        db.execute(
            "INSERT INTO hookbox_schema (version, name, applied_at) VALUES ($1, $2, 1)",
            &[version, name],
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_schema_3_database_upgrades_and_its_waiting_line_keeps_its_order() {
    let url = pg_cluster::shared().database().await;
    let db = sql(&url).await;
    at_schema_3(&db).await;
    let insert = "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, \
                  state, attempts, schedule_step, next_attempt_at, created_at, updated_at) \
                  VALUES ($1, 't', 'e', 'w', 'x', 0, 0, 0, 1, 1, 1)";
    for id in ["msg_02", "msg_01"] {
        db.execute(insert, &[&id]).await.unwrap();
    }
    let store = pg::PgStore::open(&url, 2, hookbox::secrets::Cipher::new(&[3; 32]))
        .await
        .expect("a schema 3 database opens and is migrated");
    let version: i32 = db
        .query_one("SELECT max(version) FROM hookbox_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, pg::SCHEMA);
    // The rows from before keep their order (by id) at the head of the line...
    assert_eq!(
        store.first_unfinished("w").await.unwrap().as_deref(),
        Some("msg_01")
    );
    // ...and one written after comes after them, whatever its id.
    db.execute(insert, &[&"msg_00"]).await.unwrap();
    for gone in ["msg_01", "msg_02"] {
        assert_eq!(
            store.first_unfinished("w").await.unwrap().as_deref(),
            Some(gone)
        );
        db.execute(
            "UPDATE deliveries SET next_attempt_at = NULL, state = 1 WHERE id = $1",
            &[&gone],
        )
        .await
        .unwrap();
    }
    assert_eq!(
        store.first_unfinished("w").await.unwrap().as_deref(),
        Some("msg_00")
    );
}
