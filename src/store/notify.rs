//! Store operations on per-webhook notification state (the email throttle). The
//! throttle is read and written in one writer job, so concurrent notifications for
//! one webhook (or, later, nodes) never lose each other's update.

use redb::ReadableTable;

use super::tables::NOTIFY;
use super::{Store, StoreError, decode, encode};
use crate::notify::email::ThrottleState;

impl Store {
    /// The email throttle of a webhook, if any email was considered for it.
    pub fn notify_state(&self, webhook_id: &str) -> Result<Option<ThrottleState>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(NOTIFY)?;
        match table.get(webhook_id)? {
            Some(v) => Ok(Some(decode("notify", v.value())?)),
            None => Ok(None),
        }
    }

    /// Reads the webhook's email throttle (the default when none is stored), runs
    /// `f` on it and saves the state `f` returns, all in one durable writer job (the
    /// throttle must survive a restart). Returns what `f` decided.
    pub async fn update_notify_state<R, F>(&self, webhook_id: String, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ThrottleState) -> (ThrottleState, R) + Send + 'static,
    {
        self.write(true, move |txn| {
            let mut table = txn.open_table(NOTIFY)?;
            let current: ThrottleState = match table.get(webhook_id.as_str())? {
                Some(v) => decode("notify", v.value())?,
                None => ThrottleState::default(),
            };
            let (next, decided) = f(&current);
            let bytes = encode("notify", &next)?;
            table.insert(webhook_id.as_str(), bytes.as_slice())?;
            Ok(decided)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Cipher;

    /// Concurrent updates of one webhook's throttle are serialised by the writer:
    /// none is lost (each counts one suppressed notification).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_throttle_updates_lose_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("t.redb"), Cipher::new(&[3; 32]), 1 << 20).expect("open");
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .update_notify_state("wh_1".into(), |s| {
                        let next = ThrottleState {
                            last_sent: Some(1),
                            suppressed: s.suppressed + 1,
                        };
                        (next, s.suppressed)
                    })
                    .await
            }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.expect("task").expect("update"));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<u32>>());
        let stored = store.notify_state("wh_1").expect("read").expect("stored");
        assert_eq!(stored.suppressed, 50);
        store.close();
    }
}
