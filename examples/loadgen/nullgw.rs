//! The null gateway (issue #13's ceiling): an HTTP server that answers 202 at once
//! to the generator's ingest request and forwards each event to each of its
//! receiver URLs over a pooled hyper client. No storage, no signing, no retries, no
//! authentication; at most `IN_FLIGHT` forwards at a time (hookbox's default
//! `max_in_flight`). It runs on its own runtime, threads named `nullgw-rt`, so its
//! CPU can be read apart from the generator's. It must never be used for anything
//! but this measurement.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// The name (and CPU-accounting prefix) of the null gateway's threads.
pub const THREADS: &str = "nullgw-rt";
/// Forwards in flight at once, as hookbox's default `max_in_flight`.
const IN_FLIGHT: usize = 256;

struct Shared {
    client: Client<HttpConnector, Full<Bytes>>,
    targets: Vec<String>,
    slots: Semaphore,
}

/// A running null gateway.
pub struct NullGateway {
    rt: Option<Runtime>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl NullGateway {
    /// Starts it on a loopback port, forwarding every event to every `targets` URL.
    pub async fn start(targets: Vec<String>) -> NullGateway {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name(THREADS)
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()
            .expect("null gateway runtime");
        let addr = rt
            .spawn(async move {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                let shared = Arc::new(Shared {
                    client: Client::builder(TokioExecutor::new())
                        .pool_max_idle_per_host(IN_FLIGHT)
                        .build(connector),
                    targets,
                    slots: Semaphore::new(IN_FLIGHT),
                });
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("null gateway binds");
                let addr = listener.local_addr().expect("local addr");
                tokio::spawn(accept(listener, shared));
                addr
            })
            .await
            .expect("null gateway starts");
        NullGateway { rt: Some(rt), addr }
    }

    /// Stops it (its runtime and every task on it).
    pub fn stop(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| ingest(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn ingest(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let mut bad = Response::new(Full::new(Bytes::new()));
            *bad.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(bad);
        }
    };
    for i in 0..shared.targets.len() {
        let (shared, body) = (shared.clone(), body.clone());
        tokio::spawn(async move {
            let Ok(_slot) = shared.slots.acquire().await else {
                return;
            };
            let req = Request::post(&shared.targets[i])
                .header("content-type", "application/json")
                .body(Full::new(body))
                .expect("valid request");
            if let Ok(resp) = shared.client.request(req).await {
                let _ = resp.into_body().collect().await;
            }
        });
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(br#"{"id":"evt_null"}"#)));
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}
