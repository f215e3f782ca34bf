//! The embedded schema migrations and how they are applied: in one transaction that
//! first takes a transaction-scoped advisory lock (so nodes starting together apply
//! each migration once, and PgBouncer in transaction mode works), records each
//! applied version in `hookbox_schema`, and refuses a database migrated by a newer
//! build. Owns the migration list; never edits a migration once released.

use super::PgError;

/// Every migration, in order: `(version, name, SQL)`. A released entry never changes;
/// a schema change is a new entry.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "api", include_str!("migrations/0002_api.sql")),
    (3, "claims", include_str!("migrations/0003_claims.sql")),
    (
        4,
        "line_order",
        include_str!("migrations/0004_line_order.sql"),
    ),
    (
        5,
        "fewer_indexes",
        include_str!("migrations/0005_fewer_indexes.sql"),
    ),
];

/// The schema version this build migrates to (the last entry of [`MIGRATIONS`]).
pub const SCHEMA: i32 = 5;

/// The advisory lock key all hookbox nodes take while migrating ("hookbox" in ASCII).
const LOCK_KEY: i64 = 0x0068_6f6f_6b62_6f78;

/// Applies every migration newer than the database's schema, under the advisory
/// lock, in one transaction: either all of them are applied or none. Returns the
/// schema version afterwards. A database at a newer schema than [`SCHEMA`] is
/// refused with [`PgError::NewerSchema`] and left untouched.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<i32, PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hookbox_schema (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at bigint NOT NULL
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM hookbox_schema", &[])
        .await?
        .get(0);
    if found > SCHEMA {
        return Err(PgError::NewerSchema {
            found,
            supported: SCHEMA,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO hookbox_schema (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &crate::model::now_ms()],
        )
        .await?;
        tracing::info!(version, name, "applied PostgreSQL migration");
    }
    tx.commit().await?;
    Ok(SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one_up_to_the_schema() {
        for (i, (version, _, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i32 + 1);
            assert!(!sql.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(SCHEMA));
    }
}
