//! PgBouncer in transaction mode (`pg_bouncer`) really pools by transaction, so the
//! suite's pass through it (`on_postgres`) tests what `postgres_statements =
//! "unnamed"` is for.

use crate::pg_bouncer::{SERVER_POOL, shared};

/// The server connection a statement of `c` runs on.
async fn backend(c: &tokio_postgres::Client) -> i32 {
    c.query_typed_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pg_backend_pid through pgbouncer")
        .get(0)
}

/// The bouncer pools by transaction: a statement prepared by name in one
/// transaction is gone when the next transaction of the same client lands on
/// another server connection (what `postgres_statements = "cached"` would need),
/// while an unnamed statement with its types (what `unnamed` mode sends) runs on
/// whichever server connection it gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_statement_does_not_follow_its_client_through_the_bouncer_and_an_unnamed_one_runs()
{
    use tokio_postgres::types::Type;
    let bouncer = shared();
    let (url, _direct) = bouncer.database().await;
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect through pgbouncer: {e}\n{}", bouncer.log()));
        tokio::spawn(connection);
        client
    };
    // A prepares a named statement inside a transaction, on server connection `home`.
    let a = connect().await;
    a.batch_execute("BEGIN").await.unwrap();
    let named = a.prepare("SELECT 1::int8").await.unwrap();
    let home = backend(&a).await;
    a.batch_execute("COMMIT").await.unwrap();
    // Others hold open transactions until one of them holds `home`; the rest let
    // theirs go, so A's next statement gets a server connection other than `home`.
    let mut holders = Vec::new();
    let holder = loop {
        assert!(
            holders.len() <= SERVER_POOL,
            "no transaction got server connection {home} among {SERVER_POOL}"
        );
        let c = connect().await;
        c.batch_execute("BEGIN").await.unwrap();
        if backend(&c).await == home {
            break c;
        }
        holders.push(c);
    };
    for c in &holders {
        c.batch_execute("COMMIT").await.unwrap();
    }
    let refused = a
        .query_one(&named, &[])
        .await
        .expect_err("a named statement ran on a server connection it was not prepared on");
    assert!(
        refused.to_string().contains("does not exist")
            || refused
                .as_db_error()
                .is_some_and(|e| e.message().contains("does not exist")),
        "{refused:?}"
    );
    let row = a
        .query_typed_one("SELECT $1::int8 + 1", &[(&41_i64, Type::INT8)])
        .await
        .expect("an unnamed statement through pgbouncer");
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_ne!(
        backend(&a).await,
        home,
        "A ran on the held server connection"
    );
    holder.batch_execute("COMMIT").await.unwrap();
}
