//! How the PostgreSQL store reports failures, on a real cluster (`pg_cluster`): a
//! statement that fails in this process or in the database is an internal error
//! (500), only a lost connection is "unavailable" (503, retry); an ingest
//! transaction the database refuses is an internal error for every call in it, and
//! leaves the node healthy.

use hookbox::api::ApiError;
use hookbox::store::StoreError;
use hookbox::store::pg::{PgError, store_error};

use crate::pg_cluster::{self, sql};
use crate::pg_listen::{item, tenant};

#[tokio::test]
async fn statement_errors_map_to_unavailable_only_when_the_connection_is_gone() {
    let url = pg_cluster::shared().database().await;
    let client = sql(&url).await;

    // A parameter that does not encode as its type fails in this process: an
    // internal error (500), not "the store is unavailable" (503).
    let e = client
        .query("SELECT $1::int4", &[&"not a number"])
        .await
        .unwrap_err();
    let mapped = store_error(e);
    assert!(
        matches!(mapped, StoreError::Postgres(PgError::Client(_))),
        "{mapped:?}"
    );
    assert_eq!(ApiError::from(mapped).status, 500);

    // So does a column that does not decode.
    let row = client.query_one("SELECT 'text'::text", &[]).await.unwrap();
    let e = row.try_get::<_, i32>(0).unwrap_err();
    assert!(matches!(
        store_error(e),
        StoreError::Postgres(PgError::Client(_))
    ));

    // An error the database answered is a PostgreSQL error (500).
    let e = client.query("SELECT 1 / 0", &[]).await.unwrap_err();
    let mapped = store_error(e);
    assert!(
        matches!(mapped, StoreError::Postgres(PgError::Sql(_))),
        "{mapped:?}"
    );
    assert_eq!(ApiError::from(mapped).status, 500);

    // A connection the server ended is unavailable (503).
    let _ = client
        .query("SELECT pg_terminate_backend(pg_backend_pid())", &[])
        .await;
    let e = client.query("SELECT 1", &[]).await.unwrap_err();
    let mapped = store_error(e);
    assert!(matches!(mapped, StoreError::Unavailable(_)), "{mapped:?}");
    assert_eq!(ApiError::from(mapped).status, 503);
}

#[tokio::test]
async fn an_ingest_the_database_refuses_is_an_internal_error_and_the_node_stays_healthy() {
    let url = pg_cluster::shared().database().await;
    let store = pg_cluster::open(&url).await;
    store.create_tenant(tenant("acme"), vec![]).await.unwrap();
    let first = item();
    store.ingest_as(vec![first.clone()], None).await.unwrap();
    // The same event id again: the events primary key refuses the transaction.
    let refused = store.ingest_as(vec![first], None).await;
    match refused {
        Err(e @ StoreError::Postgres(PgError::Combined(_))) => {
            assert_eq!(ApiError::from(e).status, 500);
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
    assert!(store.is_healthy());
    store.ingest_as(vec![item()], None).await.unwrap();
}
