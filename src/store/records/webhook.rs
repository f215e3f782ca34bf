//! Webhook records: version 1 (0.1.0) and version 2 (adds the write version), and
//! their conversions. Owns the webhook layouts; a released layout never changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Record;
use crate::model::{OAuthConfig, Secret, SigningSecret, Webhook};
use crate::store::codec::{self, CodecError};

/// OAuth settings, 0.1.0 layout (a `Secret` was written as its plain string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthV1 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// A signing secret, 0.1.0 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningSecretV1 {
    pub secret: String,
    pub expires_at: Option<i64>,
}

/// A webhook, 0.1.0 layout (version byte 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookV1 {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    pub description: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub oauth: Option<OAuthV1>,
    pub secrets: Vec<SigningSecretV1>,
    pub notification_email: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit_per_second: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub failing_since: Option<i64>,
}

/// A webhook, version byte 2: the 0.1.0 fields in the same order, then `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookV2 {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    pub description: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub oauth: Option<OAuthV1>,
    pub secrets: Vec<SigningSecretV1>,
    pub notification_email: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit_per_second: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub failing_since: Option<i64>,
    /// Bumped on every write; the ETag.
    pub version: u64,
}

/// STAND-IN until the coordinator's `WebhookV3` lands: V2 + the filter's canonical text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookV3 {
    pub v2: WebhookV2,
    pub filter: Option<String>,
}

/// The version a 0.1.0 record reads as (it was written once, by 0.1.0).
pub const V1_WEBHOOK_VERSION: u64 = 1;

impl From<WebhookV1> for WebhookV2 {
    fn from(w: WebhookV1) -> Self {
        WebhookV2 {
            id: w.id,
            tenant: w.tenant,
            url: w.url,
            event_types: w.event_types,
            channels: w.channels,
            description: w.description,
            headers: w.headers,
            oauth: w.oauth,
            secrets: w.secrets,
            notification_email: w.notification_email,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            disabled_at: w.disabled_at,
            metadata: w.metadata,
            rate_limit_per_second: w.rate_limit_per_second,
            created_at: w.created_at,
            updated_at: w.updated_at,
            deleted_at: w.deleted_at,
            failing_since: w.failing_since,
            version: V1_WEBHOOK_VERSION,
        }
    }
}

fn plain(map: &BTreeMap<String, Secret>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect()
}

fn sealed(map: BTreeMap<String, String>) -> BTreeMap<String, Secret> {
    map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()
}

impl From<&Webhook> for WebhookV2 {
    fn from(w: &Webhook) -> Self {
        WebhookV2 {
            id: w.id.clone(),
            tenant: w.tenant.clone(),
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            channels: w.channels.clone(),
            description: w.description.clone(),
            headers: plain(&w.headers),
            oauth: w.oauth.as_ref().map(|o| OAuthV1 {
                token_url: o.token_url.clone(),
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.expose().to_owned(),
                scope: o.scope.clone(),
                headers: plain(&o.headers),
            }),
            secrets: w
                .secrets
                .iter()
                .map(|s| SigningSecretV1 {
                    secret: s.secret.expose().to_owned(),
                    expires_at: s.expires_at,
                })
                .collect(),
            notification_email: w.notification_email.clone(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.clone(),
            disabled_at: w.disabled_at,
            metadata: w.metadata.clone(),
            rate_limit_per_second: w.rate_limit_per_second,
            created_at: w.created_at,
            updated_at: w.updated_at,
            deleted_at: w.deleted_at,
            failing_since: w.failing_since,
            version: w.version,
        }
    }
}

impl From<WebhookV2> for Webhook {
    fn from(w: WebhookV2) -> Self {
        Webhook {
            id: w.id,
            tenant: w.tenant,
            url: w.url,
            event_types: w.event_types,
            channels: w.channels,
            description: w.description,
            headers: sealed(w.headers),
            oauth: w.oauth.map(|o| OAuthConfig {
                token_url: o.token_url,
                client_id: o.client_id,
                client_secret: Secret::new(o.client_secret),
                scope: o.scope,
                headers: sealed(o.headers),
            }),
            secrets: w
                .secrets
                .into_iter()
                .map(|s| SigningSecret {
                    secret: Secret::new(s.secret),
                    expires_at: s.expires_at,
                })
                .collect(),
            notification_email: w.notification_email,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            disabled_at: w.disabled_at,
            metadata: w.metadata,
            rate_limit_per_second: w.rate_limit_per_second,
            created_at: w.created_at,
            updated_at: w.updated_at,
            deleted_at: w.deleted_at,
            failing_since: w.failing_since,
            version: w.version,
            filter: None,
        }
    }
}

impl Record for Webhook {
    /// Always the newest layout, version 3. (The result is sealed by the caller.)
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(
            3,
            &WebhookV3 {
                v2: WebhookV2::from(self),
                filter: self.filter.as_ref().map(|f| f.source().to_owned()),
            },
        )
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let (version, body) = codec::split(bytes)?;
        let record: WebhookV3 = match version {
            1 => WebhookV3 {
                v2: codec::decode_body::<WebhookV1>(body)?.into(),
                filter: None,
            },
            2 => WebhookV3 {
                v2: codec::decode_body(body)?,
                filter: None,
            },
            3 => codec::decode_body(body)?,
            other => return Err(CodecError::Version(other)),
        };
        let filter = match record.filter {
            Some(text) => {
                Some(crate::filter::Filter::from_json(&text).map_err(|_| CodecError::Version(3))?)
            }
            None => None,
        };
        let mut w: Webhook = record.v2.into();
        w.filter = filter;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn full() -> Webhook {
        Webhook {
            id: "wh_1".into(),
            tenant: "acme".into(),
            url: "https://example.com/hook".into(),
            event_types: vec!["a.*".into()],
            channels: vec!["P-1".into()],
            description: Some("d".into()),
            headers: [("X-Key".to_owned(), Secret::new("h"))].into(),
            oauth: Some(OAuthConfig {
                token_url: "https://example.com/token".into(),
                client_id: "cid".into(),
                client_secret: Secret::new("cs"),
                scope: Some("s".into()),
                headers: [("X-T".to_owned(), Secret::new("t"))].into(),
            }),
            secrets: vec![
                SigningSecret {
                    secret: Secret::new("whsec_a"),
                    expires_at: None,
                },
                SigningSecret {
                    secret: Secret::new("whsec_b"),
                    expires_at: Some(9),
                },
            ],
            notification_email: Some("ops@example.com".into()),
            enabled: false,
            disabled_reason: Some("gone".into()),
            disabled_at: Some(4),
            metadata: [("team".to_owned(), "x".to_owned())].into(),
            rate_limit_per_second: Some(5),
            created_at: 1,
            updated_at: 2,
            deleted_at: None,
            failing_since: Some(3),
            version: 7,
            filter: None,
        }
    }

    #[test]
    fn v2_round_trips_every_field() {
        let w = full();
        let bytes = w.to_bytes().unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(Webhook::from_bytes(&bytes).unwrap(), w);
    }

    #[test]
    fn v1_bytes_decode_into_the_current_model_at_version_1() {
        let mut w = full();
        let v2 = WebhookV2::from(&w);
        // A V1 record is the V2 one without its last field.
        let v1 = WebhookV1 {
            id: v2.id,
            tenant: v2.tenant,
            url: v2.url,
            event_types: v2.event_types,
            channels: v2.channels,
            description: v2.description,
            headers: v2.headers,
            oauth: v2.oauth,
            secrets: v2.secrets,
            notification_email: v2.notification_email,
            enabled: v2.enabled,
            disabled_reason: v2.disabled_reason,
            disabled_at: v2.disabled_at,
            metadata: v2.metadata,
            rate_limit_per_second: v2.rate_limit_per_second,
            created_at: v2.created_at,
            updated_at: v2.updated_at,
            deleted_at: v2.deleted_at,
            failing_since: v2.failing_since,
        };
        let bytes = codec::encode_as(1, &v1).unwrap();
        w.version = V1_WEBHOOK_VERSION;
        assert_eq!(Webhook::from_bytes(&bytes).unwrap(), w);
        // The same body under the other version byte is refused, not misread.
        let mut as_v2 = bytes.clone();
        as_v2[0] = 2;
        assert!(Webhook::from_bytes(&as_v2).is_err());
    }

    #[test]
    fn unknown_versions_and_corrupt_bytes_are_errors() {
        let good = full().to_bytes().unwrap();
        let mut newer = good.clone();
        newer[0] = 3;
        assert!(matches!(
            Webhook::from_bytes(&newer),
            Err(CodecError::Version(3))
        ));
        assert!(Webhook::from_bytes(&[]).is_err());
        for len in 0..good.len() {
            let _ = Webhook::from_bytes(&good[..len]);
        }
        for i in 1..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let _ = Webhook::from_bytes(&bad);
        }
    }
}
