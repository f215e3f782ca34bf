//! Portal sessions on PostgreSQL (`portal_sessions`, migration 0002), with the rules
//! of the redb store (`store/portal.rs`): keyed by the SHA-256 of the token (the
//! token itself is never stored), created only for an existing tenant (its expired
//! sessions dropped in the same transaction), looked up by hash expired or not (the
//! API decides), revoked per tenant. A tenant's purge removes its sessions. Never
//! decides policy (expiry limits are the API's).

use tokio_postgres::Row;

use super::{PgStore, sql};
use crate::model::PortalSession;
use crate::store::StoreError;
use crate::store::codec::CodecError;

impl PgStore {
    /// Stores a new portal session. The tenant must exist (`NotFound` otherwise; it
    /// is locked against a concurrent delete until the commit); its sessions that
    /// expired by `session.created_at` are removed in the same transaction.
    pub async fn create_portal_session(&self, session: PortalSession) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        let tenant = tx
            .query_opt(
                "SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE",
                &[&session.tenant],
            )
            .await
            .map_err(sql)?;
        if tenant.is_none() {
            return Err(StoreError::NotFound(format!("tenant {}", session.tenant)));
        }
        tx.execute(
            "DELETE FROM portal_sessions WHERE tenant = $1 AND expires_at <= $2",
            &[&session.tenant, &session.created_at],
        )
        .await
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO portal_sessions (hash, tenant, read_only, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (hash) DO UPDATE SET tenant = EXCLUDED.tenant, \
                 read_only = EXCLUDED.read_only, created_at = EXCLUDED.created_at, \
                 expires_at = EXCLUDED.expires_at",
            &[
                &session.hash.as_slice(),
                &session.tenant,
                &session.read_only,
                &session.created_at,
                &session.expires_at,
            ],
        )
        .await
        .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        Ok(())
    }

    /// The session whose token hashes to `hash`, expired or not (the caller
    /// decides); `None` when there is none (never created, or revoked).
    pub async fn portal_session(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PortalSession>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT hash, tenant, read_only, created_at, expires_at \
                 FROM portal_sessions WHERE hash = $1",
                &[&hash.as_slice()],
            )
            .await
            .map_err(sql)?;
        row.map(|r| session(&r)).transpose()
    }

    /// Revokes (deletes) every portal session of `tenant`; returns how many.
    pub async fn revoke_portal_sessions(&self, tenant: String) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM portal_sessions WHERE tenant = $1", &[&tenant])
            .await
            .map_err(sql)
    }

    /// How many sessions `tenant` has, expired ones included (for tests and purge).
    pub async fn portal_session_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM portal_sessions WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(sql)?
            .get(0);
        Ok(n.max(0) as u64)
    }
}

/// A `portal_sessions` row as the domain type; a hash of the wrong length is a
/// corrupt row.
fn session(r: &Row) -> Result<PortalSession, StoreError> {
    let hash: Vec<u8> = r.get(0);
    Ok(PortalSession {
        hash: hash.try_into().map_err(|_| StoreError::Corrupt {
            table: "portal_sessions",
            source: CodecError::Invalid("hash length".to_owned()),
        })?,
        tenant: r.get(1),
        read_only: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
    })
}
