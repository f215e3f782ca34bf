//! The portal-session record: what the `portal_sessions` table holds. It owns this
//! layout and must never change it once released: a new field is a new version.
//!
//! Version 1: `PortalSessionV1 { hash: [u8; 32], tenant: String, read_only: bool,
//! created_at: i64, expires_at: i64 }`, bincode after the version byte.

use serde::{Deserialize, Serialize};

use super::Record;
use crate::model::PortalSession;
use crate::store::codec::{self, CodecError};

/// A portal session, first layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalSessionV1 {
    pub hash: [u8; 32],
    pub tenant: String,
    pub read_only: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

impl From<&PortalSession> for PortalSessionV1 {
    fn from(s: &PortalSession) -> Self {
        PortalSessionV1 {
            hash: s.hash,
            tenant: s.tenant.clone(),
            read_only: s.read_only,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}

impl From<PortalSessionV1> for PortalSession {
    fn from(s: PortalSessionV1) -> Self {
        PortalSession {
            hash: s.hash,
            tenant: s.tenant,
            read_only: s.read_only,
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}

impl Record for PortalSession {
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(&PortalSessionV1::from(self))
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode::<PortalSessionV1>(bytes).map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_session_round_trips_as_version_1() {
        let s = PortalSession {
            hash: [3; 32],
            tenant: "acme".into(),
            read_only: true,
            created_at: 10,
            expires_at: 20,
        };
        let bytes = s.to_bytes().unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(PortalSession::from_bytes(&bytes).unwrap(), s);
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(PortalSession::from_bytes(&newer).is_err());
    }
}
