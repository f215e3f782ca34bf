//! OAuth2 client credentials for receivers: fetches tokens from a webhook's
//! `token_url` (through the same SSRF-guarded client) and caches them per webhook
//! until shortly before they expire. Concurrent deliveries share one refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use super::client::{HttpClient, SendError};
use crate::model::{OAuthConfig, Secret};

/// The most of a token response that is read.
const TOKEN_BODY_CAP: usize = 64 * 1024;
/// Lifetime assumed when the token endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry (or a tenth of the lifetime, if shorter).
const MARGIN: Duration = Duration::from_secs(30);

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Send(#[from] SendError),
    #[error("token endpoint answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("token endpoint answered without a usable access_token: {0}")]
    Body(String),
}

#[derive(Default)]
struct Slot {
    token: Option<(Secret, Instant)>,
}

/// Tokens by webhook id. Cheap to clone.
#[derive(Clone, Default)]
pub struct TokenCache {
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>>,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenCache {
    fn slot(&self, webhook_id: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(webhook_id.to_owned()).or_default().clone()
    }

    /// A valid token for the webhook, fetched when the cache has none. Callers that
    /// arrive during a fetch wait for it instead of fetching again.
    pub async fn get(
        &self,
        client: &HttpClient,
        webhook_id: &str,
        oauth: &OAuthConfig,
    ) -> Result<Secret, TokenError> {
        let slot = self.slot(webhook_id);
        let mut guard = slot.lock().await;
        if let Some((token, until)) = &guard.token
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(client, oauth).await?;
        let margin = MARGIN.min(lifetime / 10);
        guard.token = Some((token.clone(), Instant::now() + lifetime - margin));
        Ok(token)
    }

    /// Drops the webhook's cached token (a 401 from the receiver, or changed settings).
    pub fn invalidate(&self, webhook_id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(webhook_id);
    }

    /// How many token requests have been made (for metrics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn fetch(
        &self,
        client: &HttpClient,
        oauth: &OAuthConfig,
    ) -> Result<(Secret, Duration), TokenError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut form = String::from("grant_type=client_credentials");
        for (k, v) in [
            ("client_id", Some(oauth.client_id.as_str())),
            ("client_secret", Some(oauth.client_secret.expose())),
            ("scope", oauth.scope.as_deref()),
        ] {
            if let Some(v) = v {
                form.push('&');
                form.push_str(k);
                form.push('=');
                form_encode(v, &mut form);
            }
        }
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ];
        for (k, v) in &oauth.headers {
            headers.push((k.as_str(), v.expose()));
        }
        let answer = client
            .post(
                &oauth.token_url,
                &headers,
                Bytes::from(form),
                TOKEN_BODY_CAP,
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            let body = String::from_utf8_lossy(&answer.body);
            return Err(TokenError::Status {
                status: answer.status,
                body: body.chars().take(200).collect(),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&answer.body).map_err(|e| TokenError::Body(e.to_string()))?;
        if parsed.access_token.is_empty() {
            return Err(TokenError::Body("empty access_token".into()));
        }
        let lifetime = parsed.expires_in.map_or(DEFAULT_LIFETIME, |s| {
            Duration::from_secs(s.min(86_400 * 365))
        });
        Ok((Secret::new(parsed.access_token), lifetime))
    }
}

/// Appends `value` encoded as `application/x-www-form-urlencoded`.
fn form_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_encoding() {
        let mut s = String::new();
        super::form_encode("a b&c=d/é", &mut s);
        assert_eq!(s, "a+b%26c%3Dd%2F%C3%A9");
    }
}
