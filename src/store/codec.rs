//! The record codec: every value hookbox writes to redb goes through here. It owns
//! the on-disk encoding of records and must never panic on any input bytes.
//!
//! Format: one version byte, then the record encoded with bincode 2 (serde mode,
//! standard config, a 16 MiB allocation limit). bincode is marked unmaintained
//! (RUSTSEC-2025-0141, informational); keeping it behind this file and our own version
//! byte means moving to postcard is a change to this file plus a new version number
//! that decodes old records with the old codec.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte written in front of every record.
pub const VERSION: u8 = 1;

/// The largest record the decoder will allocate for; bigger claims are corrupt.
const LIMIT: usize = 16 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty record")]
    Empty,
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("corrupt record")]
    Decode(#[source] bincode::error::DecodeError),
    #[error("record has {0} trailing bytes")]
    Trailing(usize),
    #[error("record cannot be encoded")]
    Encode(#[source] bincode::error::EncodeError),
}

/// Encodes a record with the version byte in front.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(CodecError::Encode)?;
    Ok(out)
}

/// Decodes a record written by [`encode`]. Fails, never panics, on corrupt bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(CodecError::Decode)?;
    if used != body.len() {
        return Err(CodecError::Trailing(body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Delivery, DeliveryState, Event};

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

    #[test]
    fn round_trip() {
        let e = event();
        let bytes = encode(&e).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode::<Event>(&bytes).unwrap(), e);
        let d = Delivery {
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
            last_error: None,
            created_at: 1,
            updated_at: 2,
        };
        assert_eq!(decode::<Delivery>(&encode(&d).unwrap()).unwrap(), d);
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let good = encode(&event()).unwrap();
        assert!(matches!(decode::<Event>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<Event>(&[9, 1, 2]),
            Err(CodecError::Version(9))
        ));
        // Every truncation and every single-byte corruption must fail cleanly or decode.
        for len in 0..good.len() {
            let _ = decode::<Event>(&good[..len]);
        }
        for i in 1..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = decode::<Event>(&bad);
        }
        // A length prefix claiming gigabytes is refused without allocating them.
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode::<Event>(&huge).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            decode::<Event>(&trailing),
            Err(CodecError::Trailing(1))
        ));
    }
}
