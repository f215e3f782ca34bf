//! Store operations on portal sessions: create (dropping the tenant's expired
//! ones), look up by token hash, revoke a tenant's sessions. It stores only token
//! hashes, never a token, and never decides policy (expiry limits are the API's).
//! A tenant's purge (`purge.rs`) removes its sessions too.

use redb::{ReadableTable, WriteTransaction};

use super::tables::PORTAL_SESSIONS;
use super::{Store, StoreError, decode, encode};
use crate::model::PortalSession;

/// The table key of a token hash: lower-case hex.
pub(crate) fn hash_hex(hash: &[u8; 32]) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Store {
    /// Stores a new portal session (durably). The tenant must exist; its sessions
    /// that expired before `session.created_at` are removed in the same commit.
    pub async fn create_portal_session(&self, session: PortalSession) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            if txn
                .open_table(super::tables::TENANTS)?
                .get(session.tenant.as_str())?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("tenant {}", session.tenant)));
            }
            let bytes = encode("portal_sessions", &session)?;
            let now = session.created_at;
            let tenant = session.tenant.clone();
            remove_sessions(txn, |s| s.tenant == tenant && s.expires_at <= now)?;
            txn.open_table(PORTAL_SESSIONS)?
                .insert(hash_hex(&session.hash).as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// The session whose token hashes to `hash`, expired or not (the caller
    /// decides); `None` when there is none (never created, or revoked).
    pub fn portal_session(&self, hash: &[u8; 32]) -> Result<Option<PortalSession>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PORTAL_SESSIONS)?;
        match table.get(hash_hex(hash).as_str())? {
            Some(v) => Ok(Some(decode("portal_sessions", v.value())?)),
            None => Ok(None),
        }
    }

    /// Revokes (deletes) every portal session of `tenant`; returns how many.
    pub async fn revoke_portal_sessions(&self, tenant: String) -> Result<u64, StoreError> {
        self.write(true, move |txn| {
            remove_sessions(txn, |s| s.tenant == tenant)
        })
        .await
    }

    /// How many sessions `tenant` has, expired ones included (for tests and purge).
    pub fn portal_session_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PORTAL_SESSIONS)?;
        let mut n = 0;
        for row in table.iter()? {
            let (_, v) = row?;
            if decode::<PortalSession>("portal_sessions", v.value())?.tenant == tenant {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Removes every session `doomed` selects; reads all before writing, so a corrupt
/// record fails the job with nothing written. Returns how many were removed.
pub(crate) fn remove_sessions(
    txn: &WriteTransaction,
    doomed: impl Fn(&PortalSession) -> bool,
) -> Result<u64, StoreError> {
    let mut keys = Vec::new();
    {
        let table = txn.open_table(PORTAL_SESSIONS)?;
        for row in table.iter()? {
            let (k, v) = row?;
            let s: PortalSession = decode("portal_sessions", v.value())?;
            if doomed(&s) {
                keys.push(k.value().to_owned());
            }
        }
    }
    let mut table = txn.open_table(PORTAL_SESSIONS)?;
    for k in &keys {
        table.remove(k.as_str())?;
    }
    Ok(keys.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tenant;
    use crate::secrets::Cipher;

    fn session(tenant: &str, seed: u8, expires_at: i64) -> PortalSession {
        PortalSession {
            hash: [seed; 32],
            tenant: tenant.into(),
            read_only: false,
            created_at: expires_at - 10,
            expires_at,
        }
    }

    #[tokio::test]
    async fn sessions_are_found_by_hash_revoked_per_tenant_and_purged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("db"), Cipher::new(&[7; 32]), 1 << 20).expect("open");
        for id in ["a", "b"] {
            let t = Tenant {
                id: id.into(),
                name: id.into(),
                created_at: 1,
            };
            store.create_tenant(t, Vec::new()).await.expect("tenant");
        }
        store
            .create_portal_session(session("a", 1, 100))
            .await
            .expect("create");
        store
            .create_portal_session(session("b", 2, 100))
            .await
            .expect("create");
        let found = store
            .portal_session(&[1; 32])
            .expect("read")
            .expect("found");
        assert_eq!(found.tenant, "a");
        assert!(store.portal_session(&[9; 32]).expect("read").is_none());
        // A tenant that does not exist gets none.
        let missing = store.create_portal_session(session("zz", 3, 100)).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
        // Creating a session drops the tenant's expired ones, not other tenants'.
        store
            .create_portal_session(session("a", 4, 500))
            .await
            .expect("create");
        assert!(store.portal_session(&[1; 32]).expect("read").is_none());
        assert!(store.portal_session(&[2; 32]).expect("read").is_some());
        assert_eq!(
            store
                .revoke_portal_sessions("a".into())
                .await
                .expect("revoke"),
            1
        );
        assert_eq!(store.portal_session_count("a").expect("count"), 0);
        assert_eq!(store.portal_session_count("b").expect("count"), 1);
        // Deleting and purging tenant b removes its sessions.
        store.delete_tenant("b".into(), 200).await.expect("delete");
        store.purge_tenant("b".into()).await.expect("purge");
        assert_eq!(store.portal_session_count("b").expect("count"), 0);
        store.close();
    }
}
