//! One attempt: build the Standard Webhooks request for an event, sign it with every
//! active secret, authenticate with OAuth when configured, send it through the
//! guarded client and classify the answer. Never touches the store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::client::{Answer, HttpClient, SendError};
use super::oauth::TokenCache;
use super::schedule::RetryPolicy;
use super::signer;
use crate::model::{Attempt, Event, Trigger, UnixMs, Webhook, rfc3339};

/// The first bytes of a response body that are kept in the delivery log.
pub const RESPONSE_KEEP: usize = 4096;

/// What an attempt's answer means for the delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// A failure worth retrying; `retry_after` when the receiver asked for a delay.
    Retry { retry_after: Option<Duration> },
    /// 410 Gone: the receiver wants no more; the webhook is disabled.
    Gone,
}

/// An attempt's record and verdict.
#[derive(Debug, Clone)]
pub struct Tried {
    pub attempt: Attempt,
    pub verdict: Verdict,
}

/// The JSON body receivers get: `{"type", "timestamp", "data"}` with `data` exactly
/// as ingested.
pub fn body(event: &Event) -> Bytes {
    let ty = serde_json::to_string(&event.event_type).unwrap_or_else(|_| "\"\"".into());
    let ts = rfc3339(event.created_at);
    let mut out = String::with_capacity(event.payload.len() + ty.len() + 64);
    out.push_str("{\"type\":");
    out.push_str(&ty);
    out.push_str(",\"timestamp\":\"");
    out.push_str(&ts);
    out.push_str("\",\"data\":");
    out.push_str(&event.payload);
    out.push('}');
    super::alloc::churned(out.len());
    Bytes::from(out)
}

/// Classifies an answer (pure); `None` means no usable answer (network error,
/// timeout, refusal), which is retried.
pub fn classify(answer: Option<&Answer>, now_ms: UnixMs) -> Verdict {
    match answer {
        Some(a) if (200..300).contains(&a.status) => Verdict::Delivered,
        Some(a) if a.status == 410 => Verdict::Gone,
        Some(a) if matches!(a.status, 429 | 502 | 503 | 504) => Verdict::Retry {
            retry_after: a
                .retry_after
                .as_deref()
                .and_then(|v| super::schedule::parse_retry_after(v, now_ms)),
        },
        _ => Verdict::Retry { retry_after: None },
    }
}

/// The delay before the next scheduled attempt after a failure, or `None` when the
/// schedule is used up. `steps_done` counts scheduled attempts including this one.
pub fn next_delay(
    policy: &RetryPolicy,
    steps_done: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Option<Duration> {
    let scheduled = policy.next_delay(steps_done, unit)?;
    Some(policy.honour_retry_after(scheduled, retry_after))
}

/// Sends one signed request for `event` to `webhook` and records what happened.
pub async fn attempt(
    client: &HttpClient,
    tokens: &TokenCache,
    webhook: &Arc<Webhook>,
    event: &Event,
    delivery_id: &str,
    trigger: Trigger,
) -> Tried {
    let started = std::time::Instant::now();
    let now = crate::model::now_ms();
    let payload = body(event);
    let result = send(client, tokens, webhook, event, &payload, now).await;
    let verdict = classify(result.as_ref().ok(), now);
    let latency_ms = started.elapsed().as_millis() as u64;
    let (status, error, response_body) = match &result {
        Ok(a) => (
            Some(a.status),
            (!(200..300).contains(&a.status)).then(|| describe_status(a.status)),
            String::from_utf8_lossy(&a.body[..a.body.len().min(RESPONSE_KEEP)]).into_owned(),
        ),
        Err(e) => (None, Some(e.to_string()), String::new()),
    };
    Tried {
        attempt: Attempt {
            delivery_id: delivery_id.to_owned(),
            number: 0,
            at: now,
            trigger,
            status,
            error,
            latency_ms,
            response_body,
        },
        verdict,
    }
}

fn describe_status(status: u16) -> String {
    match status {
        300..=399 => format!("receiver answered {status}; redirects are not followed"),
        410 => "receiver answered 410 Gone; the webhook is disabled".to_owned(),
        _ => format!("receiver answered {status}"),
    }
}

/// Why an attempt got no answer: the client's error, or one of ours.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("OAuth token request failed: {0}")]
    Token(String),
    #[error("webhook has no usable signing secret")]
    NoSecret,
}

async fn send(
    client: &HttpClient,
    tokens: &TokenCache,
    webhook: &Arc<Webhook>,
    event: &Event,
    payload: &Bytes,
    now: UnixMs,
) -> Result<Answer, Failure> {
    let keys: Vec<Vec<u8>> = webhook
        .active_secrets(now)
        .filter_map(|s| signer::decode_secret(s.expose()).ok())
        .collect();
    if keys.is_empty() {
        return Err(Failure::NoSecret);
    }
    let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let ts = now.div_euclid(1000);
    let signature = signer::sign(&key_refs, &event.id, ts, payload);
    let ts_text = ts.to_string();
    // The signed headers are built once and borrowed by every send below; only the
    // OAuth `authorization` value differs between a first try and a refresh.
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(5 + webhook.headers.len());
    headers.push(("content-type", "application/json"));
    headers.push(("webhook-id", &event.id));
    headers.push(("webhook-timestamp", &ts_text));
    headers.push(("webhook-signature", &signature));
    for (k, v) in &webhook.headers {
        headers.push((k.as_str(), v.expose()));
    }
    let Some(oauth) = &webhook.oauth else {
        return post(client, &webhook.url, &mut headers, None, payload).await;
    };
    let token = tokens
        .get(client, &webhook.id, oauth)
        .await
        .map_err(|e| Failure::Token(e.to_string()))?;
    let bearer = format!("Bearer {}", token.expose());
    let answer = post(client, &webhook.url, &mut headers, Some(&bearer), payload).await?;
    if answer.status != 401 {
        return Ok(answer);
    }
    // One refresh on a 401: the cached token may have been revoked early.
    tokens.invalidate(&webhook.id);
    let token = tokens
        .get(client, &webhook.id, oauth)
        .await
        .map_err(|e| Failure::Token(e.to_string()))?;
    let bearer = format!("Bearer {}", token.expose());
    post(client, &webhook.url, &mut headers, Some(&bearer), payload).await
}

/// Sends with `headers` plus `authorization` when given (removed again after).
async fn post<'a>(
    client: &HttpClient,
    url: &str,
    headers: &mut Vec<(&'a str, &'a str)>,
    authorization: Option<&'a str>,
    payload: &Bytes,
) -> Result<Answer, Failure> {
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    let result = client
        .post(url, headers, payload.clone(), RESPONSE_KEEP)
        .await;
    if authorization.is_some() {
        headers.pop();
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: &str) -> Answer {
        Answer {
            status,
            retry_after: Some(retry_after.to_owned()),
            body: Bytes::new(),
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn retry_after_as_an_http_date_is_honoured_and_clamped() {
        // Fri, 30 Oct 2026 11:00:00 GMT in Unix milliseconds.
        let date_ms: UnixMs = 1_793_358_000_000;
        let date = "Fri, 30 Oct 2026 11:00:00 GMT";
        let policy = RetryPolicy::new(
            vec![Duration::ZERO, Duration::from_secs(5)],
            0.0,
            Duration::from_secs(3600),
        )
        .expect("valid policy");
        // (now, expected wait): the receiver's wish, capped at retry_after_max (1 h),
        // never below the schedule (5 s).
        let cases = [
            (date_ms - 120_000, Duration::from_secs(120)),
            (date_ms - 7_200_000, Duration::from_secs(3600)),
            (date_ms - 2_000, Duration::from_secs(5)),
            (date_ms + 60_000, Duration::from_secs(5)),
        ];
        for (now, want) in cases {
            let Verdict::Retry { retry_after } = classify(Some(&answer(503, date)), now) else {
                panic!("503 is retried");
            };
            assert_eq!(
                next_delay(&policy, 1, retry_after, 0.5),
                Some(want),
                "now {now}"
            );
        }
        // Only 429, 502, 503 and 504 are taken at their word.
        assert_eq!(
            classify(Some(&answer(500, date)), date_ms - 120_000),
            Verdict::Retry { retry_after: None }
        );
    }
}
