//! The in-memory view of everything small and hot: tenants, API keys (by hash),
//! event-type catalogues and live webhooks, indexed for matching. Loaded from the
//! store at start-up and then changed only by the store's change feed
//! (`store::Change`, applied after each commit, in commit order); the store stays
//! the source of truth and no handler writes here. Never does I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::model::{ApiKey, EventType, Tenant, Webhook};
use crate::store::{Change, Subscriber};

/// The registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    tenants: BTreeMap<String, Tenant>,
    keys: HashMap<[u8; 32], Arc<ApiKey>>,
    catalogues: HashMap<String, BTreeMap<String, EventType>>,
    /// Every webhook by id, deleted ones included (tombstones keep 404s cheap).
    webhooks: HashMap<String, Arc<Webhook>>,
    /// Per tenant: ids in creation order (ids are time-ordered) for listing.
    by_tenant: HashMap<String, BTreeMap<String, Arc<Webhook>>>,
    /// Per tenant: the matching index over live (enabled, not deleted) webhooks.
    index: HashMap<String, MatchIndex>,
}

/// Live webhooks of one tenant grouped by how their filters match. Every list is
/// sorted by webhook id (creation order), so matches come out in a stable order and
/// one webhook is added or removed with a binary search.
#[derive(Default)]
struct MatchIndex {
    exact: HashMap<String, Vec<Arc<Webhook>>>,
    /// Webhooks with `*` or `prefix.*` filters; checked one by one.
    wildcard: Vec<Arc<Webhook>>,
}

impl MatchIndex {
    fn build<'a>(webhooks: impl Iterator<Item = &'a Arc<Webhook>>) -> Self {
        let mut idx = MatchIndex::default();
        for w in webhooks {
            idx.insert(w);
        }
        idx
    }

    fn is_wildcard(w: &Webhook) -> bool {
        w.event_types.iter().any(|f| f.ends_with('*'))
    }

    /// Adds `w` (or replaces the entry with its id) if it is live.
    fn insert(&mut self, w: &Arc<Webhook>) {
        if !w.enabled || w.deleted_at.is_some() {
            return;
        }
        if Self::is_wildcard(w) {
            insert_sorted(&mut self.wildcard, w.clone());
        } else {
            for t in &w.event_types {
                insert_sorted(self.exact.entry(t.clone()).or_default(), w.clone());
            }
        }
    }

    /// Removes what [`MatchIndex::insert`] added for this version of the webhook.
    fn remove(&mut self, w: &Webhook) {
        if Self::is_wildcard(w) {
            remove_sorted(&mut self.wildcard, &w.id);
        } else {
            for t in &w.event_types {
                if let Some(list) = self.exact.get_mut(t) {
                    remove_sorted(list, &w.id);
                    if list.is_empty() {
                        self.exact.remove(t);
                    }
                }
            }
        }
    }
}

fn insert_sorted(list: &mut Vec<Arc<Webhook>>, w: Arc<Webhook>) {
    match list.binary_search_by(|x| x.id.as_str().cmp(&w.id)) {
        Ok(i) => list[i] = w,
        Err(i) => list.insert(i, w),
    }
}

fn remove_sorted(list: &mut Vec<Arc<Webhook>>, id: &str) {
    if let Ok(i) = list.binary_search_by(|x| x.id.as_str().cmp(id)) {
        list.remove(i);
    }
}

impl State {
    /// The state holding exactly these records.
    fn build(
        tenants: impl IntoIterator<Item = Tenant>,
        keys: impl IntoIterator<Item = ApiKey>,
        types: impl IntoIterator<Item = EventType>,
        webhooks: impl IntoIterator<Item = Arc<Webhook>>,
    ) -> State {
        let mut s = State::default();
        for t in tenants {
            s.tenants.insert(t.id.clone(), t);
        }
        for k in keys {
            s.keys.insert(k.hash, Arc::new(k));
        }
        for et in types {
            s.catalogues
                .entry(et.tenant.clone())
                .or_default()
                .insert(et.name.clone(), et);
        }
        let mut touched = HashSet::new();
        for w in webhooks {
            touched.insert(w.tenant.clone());
            s.webhooks.insert(w.id.clone(), w.clone());
            s.by_tenant
                .entry(w.tenant.clone())
                .or_default()
                .insert(w.id.clone(), w);
        }
        for t in touched {
            reindex(&mut s, &t);
        }
        s
    }
}

impl Registry {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A poisoned lock means a panic while updating plain maps; the maps are still
        // structurally valid, so keep serving rather than cascading the panic.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the registry from everything the store holds.
    pub fn load(
        tenants: Vec<Tenant>,
        keys: Vec<ApiKey>,
        types: Vec<EventType>,
        webhooks: Vec<Webhook>,
    ) -> Self {
        let state = State::build(tenants, keys, types, webhooks.into_iter().map(Arc::new));
        Registry {
            inner: Arc::new(RwLock::new(state)),
        }
    }

    /// A tenant by id.
    pub fn tenant(&self, id: &str) -> Option<Tenant> {
        self.read().tenants.get(id).cloned()
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.read().tenants.values().cloned().collect()
    }

    /// Applies one committed change. The tenant cascade comes from the store's
    /// change, which lists what it removed; nothing is re-derived here.
    fn apply_one(&self, change: &Change) {
        match change {
            Change::TenantCreated { tenant, catalogue } => {
                let mut s = self.write();
                let cat = s.catalogues.entry(tenant.id.clone()).or_default();
                for et in catalogue {
                    cat.insert(et.name.clone(), et.clone());
                }
                s.tenants.insert(tenant.id.clone(), tenant.clone());
            }
            Change::TenantDeleted {
                id,
                keys,
                event_types,
                webhooks,
            } => {
                {
                    let mut s = self.write();
                    s.tenants.remove(id);
                    s.keys.retain(|_, k| !keys.contains(&k.id));
                    if let Some(cat) = s.catalogues.get_mut(id) {
                        for name in event_types {
                            cat.remove(name);
                        }
                        if cat.is_empty() {
                            s.catalogues.remove(id);
                        }
                    }
                }
                for w in webhooks {
                    self.put_webhook(w.clone());
                }
            }
            Change::KeyCreated(key) => {
                self.write().keys.insert(key.hash, Arc::new(key.clone()));
            }
            Change::KeyDeleted { id } => self.write().keys.retain(|_, k| k.id != *id),
            Change::EventTypesAdded(types) => {
                let mut s = self.write();
                for et in types {
                    s.catalogues
                        .entry(et.tenant.clone())
                        .or_default()
                        .insert(et.name.clone(), et.clone());
                }
            }
            Change::EventTypeDeleted { tenant, name } => {
                if let Some(c) = self.write().catalogues.get_mut(tenant) {
                    c.remove(name);
                }
            }
            Change::Webhook(w) => self.put_webhook(w.clone()),
            Change::Reload {
                tenants,
                keys,
                event_types,
                webhooks,
            } => {
                // Built outside the lock, swapped in at once: readers see the old
                // content or the new, never a mix.
                let state = State::build(
                    tenants.iter().cloned(),
                    keys.iter().cloned(),
                    event_types.iter().cloned(),
                    webhooks.iter().cloned(),
                );
                *self.write() = state;
            }
        }
    }

    /// The key whose SHA-256 is `hash`.
    pub fn key_by_hash(&self, hash: &[u8; 32]) -> Option<Arc<ApiKey>> {
        self.read().keys.get(hash).cloned()
    }

    /// A key by id.
    pub fn key(&self, id: &str) -> Option<Arc<ApiKey>> {
        self.read().keys.values().find(|k| k.id == id).cloned()
    }

    /// Every key, by id.
    pub fn keys(&self) -> Vec<Arc<ApiKey>> {
        let mut v: Vec<_> = self.read().keys.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Whether `name` is in the tenant's catalogue.
    pub fn has_event_type(&self, tenant: &str, name: &str) -> bool {
        self.read()
            .catalogues
            .get(tenant)
            .is_some_and(|c| c.contains_key(name))
    }

    /// The tenant's catalogue, by name.
    pub fn event_types(&self, tenant: &str) -> Vec<EventType> {
        self.read()
            .catalogues
            .get(tenant)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A webhook by id, deleted ones included.
    pub fn webhook(&self, id: &str) -> Option<Arc<Webhook>> {
        self.read().webhooks.get(id).cloned()
    }

    /// Adds or replaces a webhook and updates its tenant's matching index (removing
    /// the old version's entries, adding the new one's). Called by the change feed
    /// (and by benchmarks); handlers never call it.
    pub fn put_webhook(&self, webhook: impl Into<Arc<Webhook>>) {
        let mut s = self.write();
        let w: Arc<Webhook> = webhook.into();
        let tenant = w.tenant.clone();
        let old = s.webhooks.insert(w.id.clone(), w.clone());
        s.by_tenant
            .entry(tenant.clone())
            .or_default()
            .insert(w.id.clone(), w.clone());
        let idx = s.index.entry(tenant).or_default();
        if let Some(old) = old {
            idx.remove(&old);
        }
        idx.insert(&w);
    }

    /// A page of a tenant's webhooks (not deleted) in creation order, after `cursor`.
    /// Returns the page and the cursor of the next page, if any.
    pub fn list_webhooks(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> (Vec<Arc<Webhook>>, Option<String>) {
        let s = self.read();
        let Some(all) = s.by_tenant.get(tenant) else {
            return (Vec::new(), None);
        };
        let live = all
            .range::<str, _>((
                cursor.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                std::ops::Bound::Unbounded,
            ))
            .map(|(_, w)| w)
            .filter(|w| w.deleted_at.is_none());
        let mut page: Vec<Arc<Webhook>> = Vec::with_capacity(limit.min(256));
        for w in live {
            if page.len() == limit {
                let next = page.last().map(|w| w.id.clone());
                return (page, next);
            }
            page.push(w.clone());
        }
        (page, None)
    }

    /// The live webhooks of `tenant` that want an event of `event_type` on `channels`.
    pub fn matching(
        &self,
        tenant: &str,
        event_type: &str,
        channels: &[String],
    ) -> Vec<Arc<Webhook>> {
        let s = self.read();
        let Some(idx) = s.index.get(tenant) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(ws) = idx.exact.get(event_type) {
            out.extend(
                ws.iter()
                    .filter(|w| w.matches(event_type, channels))
                    .cloned(),
            );
        }
        out.extend(
            idx.wildcard
                .iter()
                .filter(|w| w.matches(event_type, channels))
                .cloned(),
        );
        out
    }
}

impl Subscriber for Registry {
    fn apply(&self, changes: &[Change]) {
        for change in changes {
            self.apply_one(change);
        }
    }
}

fn reindex(s: &mut State, tenant: &str) {
    let idx = match s.by_tenant.get(tenant) {
        Some(m) => MatchIndex::build(m.values()),
        None => MatchIndex::default(),
    };
    s.index.insert(tenant.to_owned(), idx);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh(id: &str, types: &[&str], channels: &[&str]) -> Webhook {
        Webhook {
            id: id.into(),
            tenant: "t".into(),
            url: "https://example.com".into(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
            channels: channels.iter().map(|s| s.to_string()).collect(),
            description: None,
            headers: Default::default(),
            oauth: None,
            secrets: vec![],
            notification_email: None,
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            metadata: Default::default(),
            rate_limit_per_second: None,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            failing_since: None,
            version: 1,
            ordering: Default::default(),
            filter: None,
        }
    }

    #[test]
    fn matching_by_type_wildcard_prefix_and_channel() {
        let reg = Registry::default();
        reg.put_webhook(wh("wh_1", &["shift.created"], &[]));
        reg.put_webhook(wh("wh_2", &["*"], &[]));
        reg.put_webhook(wh("wh_3", &["shift.*"], &["P-1"]));
        let mut off = wh("wh_4", &["shift.created"], &[]);
        off.enabled = false;
        reg.put_webhook(off);
        let ids = |v: Vec<Arc<Webhook>>| {
            let mut v: Vec<String> = v.iter().map(|w| w.id.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(
            ids(reg.matching("t", "shift.created", &[])),
            ["wh_1", "wh_2"]
        );
        assert_eq!(
            ids(reg.matching("t", "shift.created", &["P-1".into()])),
            ["wh_1", "wh_2", "wh_3"]
        );
        assert_eq!(ids(reg.matching("t", "other", &[])), ["wh_2"]);
        assert!(reg.matching("nobody", "shift.created", &[]).is_empty());
    }

    #[test]
    fn updates_keep_the_index_equal_to_a_full_rebuild() {
        // Many puts of the same few ids with changing filters, channels and states:
        // after each, every lookup matches what a rebuilt index answers, in order.
        let reg = Registry::default();
        let pool = ["a.created", "a.deleted", "b.created", "a.*", "*"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let ids = |v: Vec<Arc<Webhook>>| v.iter().map(|w| w.id.clone()).collect::<Vec<_>>();
        for _ in 0..400 {
            let types: Vec<&str> = (0..1 + next(2))
                .map(|_| pool[next(pool.len() as u64) as usize])
                .collect();
            let channels: &[&str] = if next(3) == 0 { &["c1"] } else { &[] };
            let mut w = wh(&format!("wh_{:02}", next(12)), &types, channels);
            w.enabled = next(5) != 0;
            w.deleted_at = (next(8) == 0).then_some(1);
            reg.put_webhook(w);
            let s = reg.read();
            let rebuilt = MatchIndex::build(s.by_tenant["t"].values());
            drop(s);
            for ty in ["a.created", "a.deleted", "b.created", "c.x"] {
                for ch in [vec![], vec!["c1".to_owned()]] {
                    let got = ids(reg.matching("t", ty, &ch));
                    let mut want: Vec<Arc<Webhook>> = Vec::new();
                    want.extend(rebuilt.exact.get(ty).into_iter().flatten().cloned());
                    want.extend(rebuilt.wildcard.iter().cloned());
                    want.retain(|w| w.matches(ty, &ch));
                    assert_eq!(got, ids(want), "type {ty} channels {ch:?}");
                }
            }
        }
    }

    #[test]
    fn a_tenant_deletion_change_removes_exactly_what_it_lists() {
        let reg = Registry::default();
        let tenant = |id: &str| Tenant {
            id: id.into(),
            name: id.to_uppercase(),
            created_at: 0,
        };
        let et = |t: &str, n: &str| EventType {
            tenant: t.into(),
            name: n.into(),
            description: None,
            schema: None,
            created_at: 0,
        };
        let key = |id: &str, t: &str, b: u8| ApiKey {
            id: id.into(),
            tenant: t.into(),
            name: "k".into(),
            scopes: vec![],
            hash: [b; 32],
            prefix: "hbk_".into(),
            created_at: 0,
        };
        reg.apply(&[
            Change::TenantCreated {
                tenant: tenant("t"),
                catalogue: vec![et("t", "a"), et("t", "b")],
            },
            Change::TenantCreated {
                tenant: tenant("u"),
                catalogue: vec![et("u", "a")],
            },
            Change::KeyCreated(key("k1", "t", 1)),
            Change::KeyCreated(key("k2", "u", 2)),
            Change::Webhook(Arc::new(wh("wh_1", &["a"], &[]))),
        ]);
        assert_eq!(reg.matching("t", "a", &[]).len(), 1);
        assert!(reg.key_by_hash(&[1; 32]).is_some());
        let mut gone = wh("wh_1", &["a"], &[]);
        gone.deleted_at = Some(5);
        reg.apply(&[Change::TenantDeleted {
            id: "t".into(),
            keys: vec!["k1".into()],
            event_types: vec!["a".into(), "b".into()],
            webhooks: vec![Arc::new(gone)],
        }]);
        assert!(reg.tenant("t").is_none() && reg.tenant("u").is_some());
        assert!(reg.key("k1").is_none() && reg.key_by_hash(&[1; 32]).is_none());
        assert!(reg.key("k2").is_some());
        assert!(!reg.has_event_type("t", "a") && reg.has_event_type("u", "a"));
        assert!(reg.matching("t", "a", &[]).is_empty());
        assert_eq!(reg.webhook("wh_1").and_then(|w| w.deleted_at), Some(5));
        reg.apply(&[Change::EventTypeDeleted {
            tenant: "u".into(),
            name: "a".into(),
        }]);
        assert!(!reg.has_event_type("u", "a"));
    }

    #[test]
    fn a_reload_replaces_everything_with_exactly_what_it_holds() {
        let reg = Registry::default();
        let mut gone = wh("wh_1", &["a"], &[]);
        gone.tenant = "old".into();
        reg.put_webhook(gone);
        reg.apply(&[Change::KeyCreated(ApiKey {
            id: "k_old".into(),
            tenant: "old".into(),
            name: "k".into(),
            scopes: vec![],
            hash: [9; 32],
            prefix: "hbk_".into(),
            created_at: 0,
        })]);
        reg.apply(&[Change::Reload {
            tenants: vec![Tenant {
                id: "t".into(),
                name: "T".into(),
                created_at: 0,
            }],
            keys: vec![],
            event_types: vec![EventType {
                tenant: "t".into(),
                name: "a".into(),
                description: None,
                schema: None,
                created_at: 0,
            }],
            webhooks: vec![Arc::new(wh("wh_2", &["a"], &[]))],
        }]);
        assert!(reg.webhook("wh_1").is_none() && reg.matching("old", "a", &[]).is_empty());
        assert!(reg.key("k_old").is_none() && reg.key_by_hash(&[9; 32]).is_none());
        assert_eq!(reg.tenants().len(), 1);
        assert!(reg.has_event_type("t", "a"));
        assert_eq!(reg.matching("t", "a", &[])[0].id, "wh_2");
    }

    #[test]
    fn listing_pages_skip_deleted() {
        let reg = Registry::default();
        for i in 0..5 {
            let mut w = wh(&format!("wh_{i}"), &["*"], &[]);
            if i == 2 {
                w.deleted_at = Some(1);
            }
            reg.put_webhook(w);
        }
        let (p1, c1) = reg.list_webhooks("t", None, 2);
        assert_eq!(p1.len(), 2);
        let (p2, c2) = reg.list_webhooks("t", c1.as_deref(), 2);
        assert_eq!(
            p2.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
            ["wh_3", "wh_4"]
        );
        assert_eq!(c2, None);
    }
}
