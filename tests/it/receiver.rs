//! `TestReceiver`: a loopback HTTP server that records every request it gets and
//! answers with scripted replies (status, headers, body, delay, or a dropped
//! connection). Waiting for requests uses a watch channel, never a fixed sleep.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("receiver got JSON")
    }
}

/// A scripted reply.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    /// A plain reply with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.to_owned();
        self
    }

    /// Waits before answering.
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// Decides the reply to a request from it and every request before it; `None`
/// leaves it to the script or the default.
pub type Rule = Arc<dyn Fn(&Received, &[Received]) -> Option<Reply> + Send + Sync>;

struct Shared {
    script: VecDeque<Reply>,
    default: Reply,
    log: Vec<Received>,
    rule: Option<Rule>,
    /// Requests being answered now, and the most at once, per path.
    active: HashMap<String, usize>,
    peak: HashMap<String, usize>,
}

/// The receiver. Stops when dropped.
pub struct TestReceiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestReceiver {
    /// Starts a receiver answering 200 by default.
    pub async fn start() -> TestReceiver {
        Self::start_with(Reply::status(200)).await
    }

    /// Starts a receiver with a default reply for unscripted requests.
    pub async fn start_with(default: Reply) -> TestReceiver {
        Self::start_on("127.0.0.1:0", default).await
    }

    /// Starts a receiver on a given loopback address (e.g. the one baked into a
    /// fixture's webhooks) with a default reply for unscripted requests.
    pub async fn start_on(addr: &str, default: Reply) -> TestReceiver {
        let listener = TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Mutex::new(Shared {
            script: VecDeque::new(),
            default,
            log: Vec::new(),
            rule: None,
            active: HashMap::new(),
            peak: HashMap::new(),
        }));
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        let tx = tx.clone();
                        async move { Ok::<_, Infallible>(answer(req, &s, &tx).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestReceiver {
            addr,
            shared,
            count,
            task,
        }
    }

    /// The receiver's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut s = self.shared.lock().expect("receiver lock");
        s.script.extend(replies);
    }

    /// Answers by `rule` from now on, before the script and the default.
    pub fn set_rule(&self, rule: Rule) {
        self.shared.lock().expect("receiver lock").rule = Some(rule);
    }

    /// The most requests to `path` that were being answered at the same time.
    pub fn peak_concurrency(&self, path: &str) -> usize {
        let s = self.shared.lock().expect("receiver lock");
        s.peak.get(path).copied().unwrap_or(0)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("receiver lock").log.clone()
    }

    /// Waits until at least `n` requests have arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut count = self.count.clone();
        let reached = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        let got = self.received();
        assert!(
            reached.is_ok(),
            "receiver expected {n} requests within {timeout:?}, got {}",
            got.len()
        );
        got
    }
}

async fn answer(
    req: Request<Incoming>,
    shared: &Arc<Mutex<Shared>>,
    tx: &watch::Sender<usize>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = {
        let mut s = shared.lock().expect("receiver lock");
        let received = Received {
            path: path.clone(),
            headers: parts.headers,
            body,
            at: Instant::now(),
        };
        let ruled = s.rule.clone().and_then(|r| r(&received, &s.log));
        let active = s.active.entry(path.clone()).or_default();
        *active += 1;
        let now_active = *active;
        let peak = s.peak.entry(path.clone()).or_default();
        *peak = (*peak).max(now_active);
        s.log.push(received);
        let n = s.log.len();
        tx.send_replace(n);
        ruled.unwrap_or_else(|| s.script.pop_front().unwrap_or_else(|| s.default.clone()))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some(a) = shared.lock().expect("receiver lock").active.get_mut(&path) {
        *a -= 1;
    }
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
