//! Event, delivery and attempt records (all still version 1, the 0.1.0 layout).
//! Events and deliveries are written on every ingest, so they are encoded from
//! borrowed views with the same layout as their V1 structs: no clone per event.

use serde::{Deserialize, Serialize};

use super::Record;
use crate::model::{Attempt, Delivery, DeliveryState, Event, Trigger};
use crate::store::codec::{self, CodecError};

/// An event, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventV1 {
    pub id: String,
    pub tenant: String,
    pub event_type: String,
    pub payload: String,
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
}

/// [`EventV1`]'s layout over borrowed fields, for encoding.
#[derive(Serialize)]
struct EventRef<'a> {
    id: &'a str,
    tenant: &'a str,
    event_type: &'a str,
    payload: &'a str,
    channels: &'a [String],
    idempotency_key: Option<&'a str>,
    created_at: i64,
}

impl Record for Event {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(&EventRef {
            id: &self.id,
            tenant: &self.tenant,
            event_type: &self.event_type,
            payload: &self.payload,
            channels: &self.channels,
            idempotency_key: self.idempotency_key.as_deref(),
            created_at: self.created_at,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let e: EventV1 = codec::decode(bytes)?;
        Ok(Event {
            id: e.id,
            tenant: e.tenant,
            event_type: e.event_type,
            payload: e.payload,
            channels: e.channels,
            idempotency_key: e.idempotency_key,
            created_at: e.created_at,
        })
    }
}

/// A delivery state, 0.1.0 layout (variant order is the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum DeliveryStateV1 {
    Pending,
    Succeeded,
    Failed,
    Exhausted,
    Cancelled,
}

impl From<DeliveryState> for DeliveryStateV1 {
    fn from(s: DeliveryState) -> Self {
        match s {
            DeliveryState::Pending => DeliveryStateV1::Pending,
            DeliveryState::Succeeded => DeliveryStateV1::Succeeded,
            DeliveryState::Failed => DeliveryStateV1::Failed,
            DeliveryState::Exhausted => DeliveryStateV1::Exhausted,
            DeliveryState::Cancelled => DeliveryStateV1::Cancelled,
        }
    }
}

impl From<DeliveryStateV1> for DeliveryState {
    fn from(s: DeliveryStateV1) -> Self {
        match s {
            DeliveryStateV1::Pending => DeliveryState::Pending,
            DeliveryStateV1::Succeeded => DeliveryState::Succeeded,
            DeliveryStateV1::Failed => DeliveryState::Failed,
            DeliveryStateV1::Exhausted => DeliveryState::Exhausted,
            DeliveryStateV1::Cancelled => DeliveryState::Cancelled,
        }
    }
}

/// A delivery, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryV1 {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub state: DeliveryStateV1,
    pub attempts: u32,
    pub schedule_step: u32,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// [`DeliveryV1`]'s layout over borrowed fields, for encoding.
#[derive(Serialize)]
struct DeliveryRef<'a> {
    id: &'a str,
    tenant: &'a str,
    event_id: &'a str,
    webhook_id: &'a str,
    event_type: &'a str,
    state: DeliveryStateV1,
    attempts: u32,
    schedule_step: u32,
    next_attempt_at: Option<i64>,
    last_status: Option<u16>,
    last_error: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
}

impl Record for Delivery {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(&DeliveryRef {
            id: &self.id,
            tenant: &self.tenant,
            event_id: &self.event_id,
            webhook_id: &self.webhook_id,
            event_type: &self.event_type,
            state: self.state.into(),
            attempts: self.attempts,
            schedule_step: self.schedule_step,
            next_attempt_at: self.next_attempt_at,
            last_status: self.last_status,
            last_error: self.last_error.as_deref(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let d: DeliveryV1 = codec::decode(bytes)?;
        Ok(Delivery {
            id: d.id,
            tenant: d.tenant,
            event_id: d.event_id,
            webhook_id: d.webhook_id,
            event_type: d.event_type,
            state: d.state.into(),
            attempts: d.attempts,
            schedule_step: d.schedule_step,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        })
    }
}

/// What started an attempt, 0.1.0 layout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TriggerV1 {
    Scheduled,
    Manual,
    Test,
}

/// An attempt, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptV1 {
    pub delivery_id: String,
    pub number: u32,
    pub at: i64,
    pub trigger: TriggerV1,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub response_body: String,
}

/// [`AttemptV1`]'s layout over borrowed fields, for encoding.
#[derive(Serialize)]
struct AttemptRef<'a> {
    delivery_id: &'a str,
    number: u32,
    at: i64,
    trigger: TriggerV1,
    status: Option<u16>,
    error: Option<&'a str>,
    latency_ms: u64,
    response_body: &'a str,
}

impl Record for Attempt {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(&AttemptRef {
            delivery_id: &self.delivery_id,
            number: self.number,
            at: self.at,
            trigger: match self.trigger {
                Trigger::Scheduled => TriggerV1::Scheduled,
                Trigger::Manual => TriggerV1::Manual,
                Trigger::Test => TriggerV1::Test,
            },
            status: self.status,
            error: self.error.as_deref(),
            latency_ms: self.latency_ms,
            response_body: &self.response_body,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let a: AttemptV1 = codec::decode(bytes)?;
        Ok(Attempt {
            delivery_id: a.delivery_id,
            number: a.number,
            at: a.at,
            trigger: match a.trigger {
                TriggerV1::Scheduled => Trigger::Scheduled,
                TriggerV1::Manual => Trigger::Manual,
                TriggerV1::Test => Trigger::Test,
            },
            status: a.status,
            error: a.error,
            latency_ms: a.latency_ms,
            response_body: a.response_body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            id: "evt_1".into(),
            tenant: "t".into(),
            event_type: "shift.created".into(),
            payload: r#"{"a": 1.50}"#.into(),
            channels: vec!["P-1".into()],
            idempotency_key: Some("k".into()),
            created_at: 1_700_000_000_000,
        }
    }

    fn delivery() -> Delivery {
        Delivery {
            id: "dlv_1".into(),
            tenant: "t".into(),
            event_id: "evt_1".into(),
            webhook_id: "wh_1".into(),
            event_type: "x".into(),
            state: DeliveryState::Failed,
            attempts: 3,
            schedule_step: 3,
            next_attempt_at: Some(5),
            last_status: Some(503),
            last_error: Some("boom".into()),
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn borrowed_views_encode_exactly_like_the_v1_structs() {
        let e = event();
        let owned = EventV1 {
            id: e.id.clone(),
            tenant: e.tenant.clone(),
            event_type: e.event_type.clone(),
            payload: e.payload.clone(),
            channels: e.channels.clone(),
            idempotency_key: e.idempotency_key.clone(),
            created_at: e.created_at,
        };
        assert_eq!(e.to_bytes().unwrap(), codec::encode(&owned).unwrap());
        assert_eq!(Event::from_bytes(&e.to_bytes().unwrap()).unwrap(), e);

        let d = delivery();
        let owned = DeliveryV1 {
            id: d.id.clone(),
            tenant: d.tenant.clone(),
            event_id: d.event_id.clone(),
            webhook_id: d.webhook_id.clone(),
            event_type: d.event_type.clone(),
            state: d.state.into(),
            attempts: d.attempts,
            schedule_step: d.schedule_step,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            updated_at: d.updated_at,
        };
        assert_eq!(d.to_bytes().unwrap(), codec::encode(&owned).unwrap());
        assert_eq!(Delivery::from_bytes(&d.to_bytes().unwrap()).unwrap(), d);

        let a = Attempt {
            delivery_id: "dlv_1".into(),
            number: 2,
            at: 9,
            trigger: Trigger::Manual,
            status: None,
            error: Some("refused".into()),
            latency_ms: 12,
            response_body: "x".into(),
        };
        let owned = AttemptV1 {
            delivery_id: a.delivery_id.clone(),
            number: a.number,
            at: a.at,
            trigger: TriggerV1::Manual,
            status: a.status,
            error: a.error.clone(),
            latency_ms: a.latency_ms,
            response_body: a.response_body.clone(),
        };
        assert_eq!(a.to_bytes().unwrap(), codec::encode(&owned).unwrap());
        assert_eq!(Attempt::from_bytes(&a.to_bytes().unwrap()).unwrap(), a);
    }

    #[test]
    fn every_state_survives_and_newer_versions_are_refused() {
        for state in [
            DeliveryState::Pending,
            DeliveryState::Succeeded,
            DeliveryState::Failed,
            DeliveryState::Exhausted,
            DeliveryState::Cancelled,
        ] {
            let d = Delivery {
                state,
                ..delivery()
            };
            assert_eq!(Delivery::from_bytes(&d.to_bytes().unwrap()).unwrap(), d);
        }
        let mut newer = event().to_bytes().unwrap();
        newer[0] = 2;
        assert!(matches!(
            Event::from_bytes(&newer),
            Err(CodecError::Version(2))
        ));
    }
}
