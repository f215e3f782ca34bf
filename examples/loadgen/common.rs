//! The load generator's side of HTTP: the shared clock, the client, the event body
//! it sends and the ingest call. It holds no gateway state and never measures CPU.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The generator's HTTP client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The event type every phase sends.
pub const EVENT_TYPE: &str = "load.test";
/// Concurrent keep-alive client connections for the sustained-rate phases.
pub const CLIENTS: usize = 64;

/// The clock shared by the sender and the receiver (one process), in microseconds.
pub fn micros() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A new generator client (keep-alive pool, HTTP/1.1).
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Where the generator sends events: one ingest URL per node, and the API key.
pub struct Api {
    /// The generator's client.
    pub client: HttpClient,
    /// `http://addr/v1/events` of each node (or of the null gateway).
    pub ingest: Vec<String>,
    /// The API key (ignored by the null gateway).
    pub key: String,
}

/// One request with a bearer token; the answer's status and JSON body (Null when
/// the body is not JSON; 502 with the error text when the request failed).
pub async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(e) => (StatusCode::BAD_GATEWAY, json!(e.to_string())),
    }
}

/// The body of event `i`: its send time `t` and index `i` are in `data`, which
/// the receiver reads back.
pub fn event_body(i: u64) -> Vec<u8> {
    format!(
        r#"{{"type":"{EVENT_TYPE}","data":{{"t":{},"i":{i},"note":"hookbox load generator payload"}}}}"#,
        micros()
    )
    .into_bytes()
}

/// Sends event `i` to node `node % nodes`; returns the microseconds until the 202.
pub async fn send_event(api: &Api, node: usize, i: u64) -> Option<u64> {
    let start = micros();
    let url = &api.ingest[node % api.ingest.len()];
    let (s, v) = call(&api.client, Method::POST, url, &api.key, event_body(i)).await;
    if s == StatusCode::ACCEPTED {
        Some(micros() - start)
    } else {
        eprintln!("ingest answered {s}: {v}");
        None
    }
}
