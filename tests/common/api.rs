//! A JSON client of a hookbox node over loopback, for the tests that run the node
//! as its own process (tests/crash.rs, tests/fifo_crash.rs, tests/it/memory.rs):
//! every call bounded in time, and the setup each of them starts with (a tenant and
//! a key holding every tenant scope). It asserts nothing but the status a caller
//! says it expects.
#![allow(dead_code)] // each test crate uses its own share

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// How long one call may take; a call that takes longer failed (for the crash
/// tests: its event was not acknowledged).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of the node at `base` (`http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct Api {
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
        }
    }

    /// A call with `body` as it is (sent as JSON when there is one); `Err` when the
    /// node could not be reached or did not answer in time. A body that is not
    /// JSON reads as `null`.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Value), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok((
                status,
                serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    }

    /// [`Api::call_raw`] with a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.call_raw(method, path, token, bytes).await
    }

    /// A call that must be answered `want` (a `null` body sends none); its answer.
    pub async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Value {
        let body = (!body.is_null()).then_some(body);
        let (status, v) = self
            .call(method.clone(), path, token, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(status, want, "{method} {path}: {v}");
        v
    }

    /// A new tenant named `name` (created with the admin token `admin`) and a key
    /// of it holding every tenant scope; returns the key.
    pub async fn tenant_key(&self, admin: &str, name: &str) -> String {
        let t = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/tenants",
                admin,
                json!({ "name": name }),
            )
            .await;
        let scopes = hookbox::model::Scope::ALL.map(hookbox::model::Scope::as_str);
        let k = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/api-keys",
                admin,
                json!({"tenant": t["id"], "name": name, "scopes": scopes}),
            )
            .await;
        k["key"].as_str().expect("api key").to_owned()
    }
}
