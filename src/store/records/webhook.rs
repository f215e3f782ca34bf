//! Webhook records: version 1 (0.1.0), version 2 (adds the write version) and
//! version 3 (adds ordering and filter), and their conversions. Owns the webhook
//! layouts; a released layout never changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Record;
use crate::filter::Filter;
use crate::model::{OAuthConfig, Ordering, Secret, SigningSecret, Webhook};
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

/// A webhook, version byte 3: the version 2 fields in the same order, then
/// `ordering` and `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookV3 {
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
    /// 0 = none, 1 = fifo; another value is refused as corrupt.
    pub ordering: u8,
    /// The payload filter as canonical JSON text.
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

impl From<WebhookV2> for WebhookV3 {
    fn from(w: WebhookV2) -> Self {
        WebhookV3 {
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
            version: w.version,
            ordering: ORDERING_NONE,
            filter: None,
        }
    }
}

const ORDERING_NONE: u8 = 0;
const ORDERING_FIFO: u8 = 1;

impl From<&Webhook> for WebhookV3 {
    fn from(w: &Webhook) -> Self {
        WebhookV3 {
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
            ordering: match w.ordering {
                Ordering::None => ORDERING_NONE,
                Ordering::Fifo => ORDERING_FIFO,
            },
            filter: w.filter.as_ref().map(|f| f.source().to_owned()),
        }
    }
}

impl TryFrom<WebhookV3> for Webhook {
    type Error = CodecError;

    fn try_from(w: WebhookV3) -> Result<Self, CodecError> {
        let ordering = match w.ordering {
            ORDERING_NONE => Ordering::None,
            ORDERING_FIFO => Ordering::Fifo,
            other => return Err(CodecError::Invalid(format!("webhook ordering {other}"))),
        };
        // Stored texts were validated when written; one that no longer compiles is
        // refused like any other corrupt field rather than silently matching all.
        let filter = w
            .filter
            .map(|text| Filter::from_json(&text))
            .transpose()
            .map_err(|why| CodecError::Invalid(format!("webhook filter: {}", why.join("; "))))?;
        Ok(Webhook {
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
            ordering,
            filter,
        })
    }
}

impl Record for Webhook {
    /// Always the newest layout, version 3. (The result is sealed by the caller.)
    fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(3, &WebhookV3::from(self))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let (version, body) = codec::split(bytes)?;
        let record: WebhookV3 = match version {
            1 => WebhookV2::from(codec::decode_body::<WebhookV1>(body)?).into(),
            2 => codec::decode_body::<WebhookV2>(body)?.into(),
            3 => codec::decode_body(body)?,
            other => return Err(CodecError::Version(other)),
        };
        record.try_into()
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
            ordering: Ordering::Fifo,
            filter: Some(Filter::from_json(r#"{"data.amount":{"$gte":100}}"#).expect("valid")),
        }
    }

    /// The version 2 record of `w` (what the previous build wrote).
    fn as_v2(w: &Webhook) -> WebhookV2 {
        let v3 = WebhookV3::from(w);
        WebhookV2 {
            id: v3.id,
            tenant: v3.tenant,
            url: v3.url,
            event_types: v3.event_types,
            channels: v3.channels,
            description: v3.description,
            headers: v3.headers,
            oauth: v3.oauth,
            secrets: v3.secrets,
            notification_email: v3.notification_email,
            enabled: v3.enabled,
            disabled_reason: v3.disabled_reason,
            disabled_at: v3.disabled_at,
            metadata: v3.metadata,
            rate_limit_per_second: v3.rate_limit_per_second,
            created_at: v3.created_at,
            updated_at: v3.updated_at,
            deleted_at: v3.deleted_at,
            failing_since: v3.failing_since,
            version: v3.version,
        }
    }

    #[test]
    fn v3_round_trips_every_field() {
        let w = full();
        let bytes = w.to_bytes().unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(Webhook::from_bytes(&bytes).unwrap(), w);
        let mut plain = full();
        plain.ordering = Ordering::None;
        plain.filter = None;
        let bytes = plain.to_bytes().unwrap();
        assert_eq!(Webhook::from_bytes(&bytes).unwrap(), plain);
    }

    #[test]
    fn v2_bytes_decode_with_no_ordering_and_no_filter() {
        let mut w = full();
        let bytes = codec::encode_as(2, &as_v2(&w)).unwrap();
        w.ordering = Ordering::None;
        w.filter = None;
        assert_eq!(Webhook::from_bytes(&bytes).unwrap(), w);
    }

    #[test]
    fn an_unknown_ordering_value_is_refused_not_misread() {
        let mut v3 = WebhookV3::from(&full());
        v3.ordering = 9;
        let bytes = codec::encode_as(3, &v3).unwrap();
        assert!(matches!(
            Webhook::from_bytes(&bytes),
            Err(CodecError::Invalid(_))
        ));
    }

    #[test]
    fn the_filter_is_stored_as_canonical_text_and_a_bad_one_is_refused() {
        let v3 = WebhookV3::from(&full());
        assert_eq!(
            v3.filter.as_deref(),
            Some(r#"{"data.amount":{"$gte":100}}"#)
        );
        for bad in ["{", r#"{"data.amount":{"$regex":"1"}}"#] {
            let mut v3 = v3.clone();
            v3.filter = Some(bad.into());
            let bytes = codec::encode_as(3, &v3).unwrap();
            assert!(matches!(
                Webhook::from_bytes(&bytes),
                Err(CodecError::Invalid(_))
            ));
        }
    }

    #[test]
    fn v1_bytes_decode_into_the_current_model_at_version_1() {
        let mut w = full();
        w.ordering = Ordering::None;
        w.filter = None;
        let v2 = as_v2(&w);
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
        // The same body under a newer version byte is refused, not misread.
        for newer in [2, 3] {
            let mut relabelled = bytes.clone();
            relabelled[0] = newer;
            assert!(Webhook::from_bytes(&relabelled).is_err());
        }
    }

    #[test]
    fn unknown_versions_and_corrupt_bytes_are_errors() {
        let good = full().to_bytes().unwrap();
        let mut newer = good.clone();
        newer[0] = 4;
        assert!(matches!(
            Webhook::from_bytes(&newer),
            Err(CodecError::Version(4))
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
