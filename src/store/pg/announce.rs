//! What one node tells the others through `NOTIFY`, and how a node turns what it
//! hears back into `Change`s. A write announces its changes inside its own
//! transaction (so the notification goes out exactly when the write commits, and
//! never for a write that rolled back); new work is announced on a channel of its
//! own. A notification names what changed, with the sending node's id; it never
//! carries a record, so never a secret, and stays far under PostgreSQL's 8,000-byte
//! limit (a longer one is sent as "reload everything"). The receiver re-reads the
//! named rows, so what it publishes is what is stored now. Never publishes by
//! itself: `listen.rs` decides when.

use std::sync::Arc;

use super::conn::{AsSql, Tx};
use serde::{Deserialize, Serialize};

use super::{PgStore, admin, sql, webhooks};
use crate::store::StoreError;
use crate::store::changes::Change;

/// The channel of changes to tenants, keys, catalogues and webhooks.
pub(super) const CHANGES: &str = "hookbox_changes";
/// The channel of "there may be new work" (ingest, and later recover and retries).
pub(super) const WORK: &str = "hookbox_work";

/// Sends a notification: `$1` the channel, `$2` the payload. One text for every
/// notification, prepared once per connection (`cached_execute`).
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// The longest payload sent as is; PostgreSQL refuses 8,000 bytes and more.
const MAX_PAYLOAD: usize = 7_000;

/// One notification on [`CHANGES`]: who sent it and what one commit changed.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Note {
    /// The sending node's id ([`PgStore::node_id`]): a node ignores its own.
    pub(super) node: String,
    /// What changed, in the commit's order.
    pub(super) changes: Vec<Named>,
}

/// One change, by the ids of what it touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Named {
    /// A tenant was created (with its catalogue).
    Tenant { id: String },
    /// A tenant was deleted with these keys and catalogue entries, and these
    /// webhooks soft-deleted.
    TenantDeleted {
        id: String,
        keys: Vec<String>,
        event_types: Vec<String>,
        webhooks: Vec<String>,
    },
    /// An API key was created.
    Key { id: String },
    /// An API key was revoked.
    KeyDeleted { id: String },
    /// Catalogue entries were added, as `(tenant, name)`.
    EventTypes { entries: Vec<(String, String)> },
    /// A catalogue entry was removed.
    EventTypeDeleted { tenant: String, name: String },
    /// A webhook changed (created, changed, disabled or deleted).
    Webhook { id: String },
    /// Too much to name: re-read everything.
    Reload,
}

impl Named {
    /// What `change` touched.
    fn of(change: &Change) -> Named {
        match change {
            Change::TenantCreated { tenant, .. } => Named::Tenant {
                id: tenant.id.clone(),
            },
            Change::TenantDeleted {
                id,
                keys,
                event_types,
                webhooks,
            } => Named::TenantDeleted {
                id: id.clone(),
                keys: keys.clone(),
                event_types: event_types.clone(),
                webhooks: webhooks.iter().map(|w| w.id.clone()).collect(),
            },
            Change::KeyCreated(key) => Named::Key { id: key.id.clone() },
            Change::KeyDeleted { id } => Named::KeyDeleted { id: id.clone() },
            Change::EventTypesAdded(types) => Named::EventTypes {
                entries: types
                    .iter()
                    .map(|et| (et.tenant.clone(), et.name.clone()))
                    .collect(),
            },
            Change::EventTypeDeleted { tenant, name } => Named::EventTypeDeleted {
                tenant: tenant.clone(),
                name: name.clone(),
            },
            Change::Webhook(w) => Named::Webhook { id: w.id.clone() },
            Change::Reload { .. } => Named::Reload,
        }
    }
}

/// The payload announcing `changes` from `node`: their names, or "reload" when
/// that would not fit.
pub(super) fn payload(node: &str, changes: &[Change]) -> String {
    let note = Note {
        node: node.to_owned(),
        changes: changes.iter().map(Named::of).collect(),
    };
    let text = serde_json::to_string(&note).unwrap_or_default();
    if !text.is_empty() && text.len() <= MAX_PAYLOAD {
        return text;
    }
    let reload = Note {
        node: node.to_owned(),
        changes: vec![Named::Reload],
    };
    // A node id and one tag always serialise.
    serde_json::to_string(&reload).unwrap_or_default()
}

/// A received payload; `None` when it is not one (sent by another version, say),
/// which the listener treats as "reload".
pub(super) fn parse(payload: &str) -> Option<Note> {
    serde_json::from_str(payload).ok()
}

impl PgStore {
    /// Announces `changes` to the other nodes, inside `tx`: PostgreSQL delivers the
    /// notification when `tx` commits, and drops it if `tx` rolls back.
    pub(super) async fn announce(&self, tx: &Tx<'_>, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        tx.sql()
            .cached_execute(NOTIFY, &[&CHANGES, &payload(self.node_id(), changes)])
            .await
            .map_err(sql)?;
        Ok(())
    }

    /// Announces new work to every node's delivery loop, inside `tx` (sent at its
    /// commit). The caller wakes this node's own loop after the commit
    /// (`self.wakeups.notify_one()`); the other nodes' listeners wake theirs. The
    /// payload is the sender's node id, so that its own listener skips it.
    /// On the ingest's hot path: sent as text, it was parsed, described and planned
    /// again on every ingest.
    pub(super) async fn notify_work(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        tx.sql()
            .cached_execute(NOTIFY, &[&WORK, &self.node_id()])
            .await
            .map_err(sql)?;
        Ok(())
    }

    /// Re-reads what `named` names and returns it as changes, as stored now.
    /// `None` when a full reload is needed instead: one of them is `Reload`, or a
    /// row that should still exist is gone (purged since), which a change cannot
    /// express.
    pub(super) async fn reread<C: AsSql>(
        &self,
        c: &C,
        named: &[Named],
    ) -> Result<Option<Vec<Change>>, StoreError> {
        let c = c.sql();
        let mut out = Vec::with_capacity(named.len());
        for n in named {
            match n {
                Named::Reload => return Ok(None),
                Named::Tenant { id } => {
                    // Gone means deleted since; that deletion's notification follows.
                    if let Some((tenant, catalogue)) = admin::tenant_with_catalogue(&c, id).await? {
                        out.push(Change::TenantCreated { tenant, catalogue });
                    }
                }
                Named::TenantDeleted {
                    id,
                    keys,
                    event_types,
                    webhooks: ids,
                } => {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let found = webhooks::webhooks_by_id(&c, &self.cipher, &ids).await?;
                    if found.len() != ids.len() {
                        return Ok(None);
                    }
                    out.push(Change::TenantDeleted {
                        id: id.clone(),
                        keys: keys.clone(),
                        event_types: event_types.clone(),
                        webhooks: found.into_iter().map(Arc::new).collect(),
                    });
                }
                Named::Key { id } => match admin::api_key_by_id(&c, id).await? {
                    Some(key) => out.push(Change::KeyCreated(key)),
                    None => out.push(Change::KeyDeleted { id: id.clone() }),
                },
                Named::KeyDeleted { id } => out.push(Change::KeyDeleted { id: id.clone() }),
                Named::EventTypes { entries } => {
                    let tenants: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
                    let names: Vec<&str> = entries.iter().map(|(_, n)| n.as_str()).collect();
                    let found = admin::event_types_named(&c, &tenants, &names).await?;
                    // Missing ones were removed since; their removal follows.
                    if !found.is_empty() {
                        out.push(Change::EventTypesAdded(found));
                    }
                }
                Named::EventTypeDeleted { tenant, name } => out.push(Change::EventTypeDeleted {
                    tenant: tenant.clone(),
                    name: name.clone(),
                }),
                Named::Webhook { id } => {
                    let mut found =
                        webhooks::webhooks_by_id(&c, &self.cipher, &[id.as_str()]).await?;
                    match found.pop() {
                        Some(w) => out.push(Change::Webhook(Arc::new(w))),
                        None => return Ok(None),
                    }
                }
            }
        }
        Ok(Some(out))
    }

    /// Everything the registry holds, read in one consistent snapshot, as the
    /// change that replaces the registry's content.
    pub(super) async fn snapshot(&self) -> Result<Change, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .read_only(tokio_postgres::IsolationLevel::RepeatableRead)
            .await
            .map_err(sql)?;
        let tenants = admin::all_tenants(&tx).await?;
        let keys = admin::all_api_keys(&tx).await?;
        let event_types = admin::all_event_types(&tx).await?;
        let webhooks = webhooks::all_webhooks(&tx, &self.cipher).await?;
        tx.commit().await.map_err(sql)?;
        Ok(Change::Reload {
            tenants,
            keys,
            event_types,
            webhooks: webhooks.into_iter().map(Arc::new).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tenant;

    #[test]
    fn a_payload_names_the_changes_and_round_trips() {
        let changes = [
            Change::KeyDeleted { id: "key_1".into() },
            Change::EventTypeDeleted {
                tenant: "t".into(),
                name: "a.b".into(),
            },
            Change::TenantCreated {
                tenant: Tenant {
                    id: "t".into(),
                    name: "T".into(),
                    created_at: 1,
                },
                catalogue: vec![],
            },
        ];
        let text = payload("node-1", &changes);
        let note = parse(&text).expect("parses");
        assert_eq!(note.node, "node-1");
        assert_eq!(
            note.changes,
            [
                Named::KeyDeleted { id: "key_1".into() },
                Named::EventTypeDeleted {
                    tenant: "t".into(),
                    name: "a.b".into()
                },
                Named::Tenant { id: "t".into() },
            ]
        );
    }

    #[test]
    fn a_payload_too_long_for_notify_becomes_a_reload() {
        let keys: Vec<String> = (0..1_000).map(|i| format!("key_{i:020}")).collect();
        let text = payload(
            "node-1",
            &[Change::TenantDeleted {
                id: "t".into(),
                keys,
                event_types: vec![],
                webhooks: vec![],
            }],
        );
        assert!(text.len() < 200, "{text}");
        assert_eq!(parse(&text).expect("parses").changes, [Named::Reload]);
    }

    #[test]
    fn a_payload_of_another_shape_is_not_a_note() {
        assert!(parse("").is_none());
        assert!(parse(r#"{"node":"n","changes":[{"kind":"martian"}]}"#).is_none());
    }
}
