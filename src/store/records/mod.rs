//! The store's own record types: what each table holds on disk, per version, and
//! the conversions to and from the domain types of `model`. It owns the record
//! layouts and must never change a released one: a new field is a new version
//! (a new struct), and every older version still decodes into the current model.
//!
//! Version bytes (the first byte of every record, see `codec`):
//! - 1: the 0.1.0 layout of every record (`TenantV1`, `ApiKeyV1`, `EventTypeV1`,
//!   `WebhookV1`, `EventV1`, `DeliveryV1`, `AttemptV1`, `ThrottleV1`). Each V1
//!   struct keeps exactly the field order and types of 0.1.0's model structs.
//! - 2: `WebhookV2` = `WebhookV1` + `version: u64` (the ETag). Webhooks only.
//! - 3: `WebhookV3` = `WebhookV2` + `ordering: u8` (0 none, 1 fifo) + `filter:
//!   Option<String>` (canonical JSON text). Webhooks only.
//! - 2 also for events, deliveries and attempts (store format 3, `event.rs`):
//!   `EventV2`, `DeliveryV2`, `AttemptV2` leave out what their table key holds,
//!   pack generated ids into one `u128`, and an event lists its deliveries. These
//!   are [`Keyed`] records: decoding one needs its key.
//! - `PortalSessionV1` (version byte 1) is the first layout of the portal-session
//!   table, which 0.1.0 did not have (`portal.rs`).
//!
//! The hot records (events, deliveries, attempts) are encoded from borrowed views
//! (`EventRef`, `DeliveryRef`, `AttemptRef`) with the same layout as their newest
//! structs, so ingest encodes without cloning.

mod event;
mod portal;
mod webhook;

use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError};
use crate::model::{ApiKey, EventType, Scope, Tenant};
use crate::notify::email::ThrottleState;

pub use event::{
    AttemptV1, AttemptV2, DeliveryStateV1, DeliveryV1, DeliveryV2, EventDeliveries, EventV1,
    EventV2, PackedId, TriggerV1, decode_event, encode_event,
};
pub use portal::PortalSessionV1;
pub use webhook::{OAuthV1, SigningSecretV1, WebhookV1, WebhookV2, WebhookV3};

/// A domain value the store writes as a versioned record.
pub trait Record: Sized {
    /// Encodes the value in the newest layout, version byte first.
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError>;
    /// Decodes any layout this build knows into the domain value. Fails, never
    /// panics, on corrupt bytes or an unknown version.
    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// A domain value whose table key holds part of it (its id): its newer layouts
/// leave that part out, so decoding takes the key the record was stored under.
pub trait Keyed: Sized {
    /// What the key holds.
    type Key<'k>;
    /// Encodes the value in the newest layout, version byte first.
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError>;
    /// Decodes any layout this build knows, stored under `key`. Fails, never
    /// panics, on corrupt bytes or an unknown version.
    fn from_bytes(key: Self::Key<'_>, bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Implements [`Record`] for a domain type whose only layout is version 1, through
/// its V1 struct and the conversions both ways.
macro_rules! v1_record {
    ($model:ty, $v1:ty) => {
        impl Record for $model {
            fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
                codec::encode(&<$v1>::from(self))
            }
            fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
                codec::decode::<$v1>(bytes).map(Into::into)
            }
        }
    };
}

/// A tenant, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantV1 {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl From<&Tenant> for TenantV1 {
    fn from(t: &Tenant) -> Self {
        TenantV1 {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at,
        }
    }
}

impl From<TenantV1> for Tenant {
    fn from(t: TenantV1) -> Self {
        Tenant {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
        }
    }
}
v1_record!(Tenant, TenantV1);

/// A scope, 0.1.0 layout (variant order is the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ScopeV1 {
    WebhooksRead,
    WebhooksWrite,
    EventsWrite,
    EventsRead,
}

impl From<Scope> for ScopeV1 {
    fn from(s: Scope) -> Self {
        match s {
            Scope::WebhooksRead => ScopeV1::WebhooksRead,
            Scope::WebhooksWrite => ScopeV1::WebhooksWrite,
            Scope::EventsWrite => ScopeV1::EventsWrite,
            Scope::EventsRead => ScopeV1::EventsRead,
        }
    }
}

impl From<ScopeV1> for Scope {
    fn from(s: ScopeV1) -> Self {
        match s {
            ScopeV1::WebhooksRead => Scope::WebhooksRead,
            ScopeV1::WebhooksWrite => Scope::WebhooksWrite,
            ScopeV1::EventsWrite => Scope::EventsWrite,
            ScopeV1::EventsRead => Scope::EventsRead,
        }
    }
}

/// An API key (its hash), 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyV1 {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: Vec<ScopeV1>,
    pub hash: [u8; 32],
    pub prefix: String,
    pub created_at: i64,
}

impl From<&ApiKey> for ApiKeyV1 {
    fn from(k: &ApiKey) -> Self {
        ApiKeyV1 {
            id: k.id.clone(),
            tenant: k.tenant.clone(),
            name: k.name.clone(),
            scopes: k.scopes.iter().copied().map(Into::into).collect(),
            hash: k.hash,
            prefix: k.prefix.clone(),
            created_at: k.created_at,
        }
    }
}

impl From<ApiKeyV1> for ApiKey {
    fn from(k: ApiKeyV1) -> Self {
        ApiKey {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            scopes: k.scopes.into_iter().map(Into::into).collect(),
            hash: k.hash,
            prefix: k.prefix,
            created_at: k.created_at,
        }
    }
}
v1_record!(ApiKey, ApiKeyV1);

/// A catalogue entry, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypeV1 {
    pub tenant: String,
    pub name: String,
    pub description: Option<String>,
    pub schema: Option<String>,
    pub created_at: i64,
}

impl From<&EventType> for EventTypeV1 {
    fn from(e: &EventType) -> Self {
        EventTypeV1 {
            tenant: e.tenant.clone(),
            name: e.name.clone(),
            description: e.description.clone(),
            schema: e.schema.clone(),
            created_at: e.created_at,
        }
    }
}

impl From<EventTypeV1> for EventType {
    fn from(e: EventTypeV1) -> Self {
        EventType {
            tenant: e.tenant,
            name: e.name,
            description: e.description,
            schema: e.schema,
            created_at: e.created_at,
        }
    }
}
v1_record!(EventType, EventTypeV1);

/// A webhook's email throttle, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleV1 {
    pub last_sent: Option<i64>,
    pub suppressed: u32,
}

impl From<&ThrottleState> for ThrottleV1 {
    fn from(t: &ThrottleState) -> Self {
        ThrottleV1 {
            last_sent: t.last_sent,
            suppressed: t.suppressed,
        }
    }
}

impl From<ThrottleV1> for ThrottleState {
    fn from(t: ThrottleV1) -> Self {
        ThrottleState {
            last_sent: t.last_sent,
            suppressed: t.suppressed,
        }
    }
}
v1_record!(ThrottleState, ThrottleV1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_layout_records_round_trip_and_refuse_other_versions() {
        let key = ApiKey {
            id: "key_1".into(),
            tenant: "acme".into(),
            name: "backend".into(),
            scopes: Scope::ALL.to_vec(),
            hash: [7; 32],
            prefix: "hbk_ab12".into(),
            created_at: 5,
        };
        let bytes = key.to_bytes().unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(ApiKey::from_bytes(&bytes).unwrap(), key);
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert!(matches!(
            ApiKey::from_bytes(&newer),
            Err(CodecError::Version(9))
        ));
        let t = Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            created_at: 1,
        };
        assert_eq!(Tenant::from_bytes(&t.to_bytes().unwrap()).unwrap(), t);
        let th = ThrottleState {
            last_sent: Some(3),
            suppressed: 2,
        };
        assert_eq!(
            ThrottleState::from_bytes(&th.to_bytes().unwrap()).unwrap(),
            th
        );
    }

    #[test]
    fn scope_encoding_is_the_variant_index() {
        // 0.1.0 wrote enum variants as their index; reordering ScopeV1 would misread.
        let v: Vec<u8> = [ScopeV1::WebhooksRead, ScopeV1::EventsRead]
            .iter()
            .map(|s| codec::encode(s).unwrap()[1])
            .collect();
        assert_eq!(v, [0, 3]);
    }
}
