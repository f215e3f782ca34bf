//! Store operations on per-webhook notification state (the email throttle).

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

    /// Saves the email throttle of a webhook (durably: it must survive a restart).
    pub async fn put_notify_state(
        &self,
        webhook_id: String,
        state: ThrottleState,
    ) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            let bytes = encode("notify", &state)?;
            txn.open_table(NOTIFY)?
                .insert(webhook_id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }
}
