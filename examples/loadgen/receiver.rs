//! The loopback receiver every phase delivers to, and what it saw: counts, distinct
//! deliveries and duplicates (by webhook path and event index), and a latency
//! histogram. It answers 200 to everything; it never judges what it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::common::micros;

/// Sub-buckets per power of two in [`Hist`]: 128, so a bucket is at most 0.8 % wide.
const SUB_BITS: u32 = 7;
const BUCKETS: usize = 64 << SUB_BITS;

/// A log-linear histogram of microsecond values (exact below 256 us, then 128
/// buckets per power of two), lock-free, a fixed 64 KiB whatever the sample count
/// (so recording every delivery of a long phase does not move its RSS figures).
pub struct Hist {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < 1 << (SUB_BITS + 1) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() - SUB_BITS;
    (((e + 1) << SUB_BITS) as u64 + (v >> e) - (1 << SUB_BITS)) as usize
}

/// The middle of bucket `i`, in microseconds.
fn value_of(i: usize) -> f64 {
    if i < 1 << (SUB_BITS + 1) {
        return i as f64;
    }
    let e = (i >> SUB_BITS) as u32 - 1;
    let m = ((i & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS)) as u64;
    let (low, high) = (m << e, ((m + 1) << e) - 1);
    (low + high) as f64 / 2.0
}

impl Hist {
    /// Records one value in microseconds.
    pub fn record(&self, us: u64) {
        self.buckets[bucket_of(us).min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `p` quantile (0..=1) in milliseconds (NaN when empty); `p = 1` is the
    /// exact maximum.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        let n = self.len();
        if n == 0 {
            return f64::NAN;
        }
        if p >= 1.0 {
            return self.max.load(Ordering::Relaxed) as f64 / 1000.0;
        }
        let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return value_of(i) / 1000.0;
            }
        }
        self.max.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// What the receiver saw. A delivery is identified by its webhook (the path
/// `/hook/{w}`) and the event index `i` written in the event data; the second
/// arrival of the same pair is a duplicate.
pub struct Seen {
    /// Requests received, duplicates included.
    pub count: AtomicU64,
    /// Deliveries received at least once (requests without a known pair count too).
    pub distinct: AtomicU64,
    /// Arrivals of a (webhook, event) pair already seen.
    pub duplicates: AtomicU64,
    /// First and last arrival, in [`micros`].
    pub first_us: AtomicU64,
    /// See `first_us`.
    pub last_us: AtomicU64,
    /// Latencies of events with index at least this are recorded (`u64::MAX`: none).
    pub record_from: AtomicU64,
    /// Send (time in the event data) to arrival.
    pub latency: Hist,
    fanout: u64,
    events: u64,
    bits: Box<[AtomicU64]>,
}

impl Seen {
    /// A receiver's tally for `events` events to `fanout` webhooks.
    pub fn new(events: u64, fanout: usize) -> Arc<Seen> {
        let slots = events.saturating_mul(fanout as u64);
        Arc::new(Seen {
            count: AtomicU64::new(0),
            distinct: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            first_us: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            record_from: AtomicU64::new(u64::MAX),
            latency: Hist::default(),
            fanout: fanout as u64,
            events,
            bits: (0..slots.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn arrived(&self, path: &str, body: &[u8]) {
        let now = micros();
        let i = number_after(body, "i");
        if let (Some(t), Some(i)) = (number_after(body, "t"), i)
            && i >= self.record_from.load(Ordering::Relaxed)
        {
            self.latency.record(now.saturating_sub(t));
        }
        let w = path
            .strip_prefix("/hook/")
            .and_then(|w| w.parse::<u64>().ok());
        let first = match (w, i) {
            (Some(w), Some(i)) if w < self.fanout && i < self.events => {
                let slot = i * self.fanout + w;
                let bit = 1u64 << (slot % 64);
                self.bits[(slot / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit == 0
            }
            _ => true,
        };
        if first {
            self.distinct.fetch_add(1, Ordering::Release);
        } else {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .first_us
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_us.fetch_max(now, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Waits until `n` distinct deliveries arrived or `limit` passes.
    pub async fn wait_distinct(&self, n: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.distinct.load(Ordering::Acquire) < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

/// Reads the number after `"key":` in a JSON body we wrote ourselves.
fn number_after(body: &[u8], key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = body.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let digits: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn receive(
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.arrived(&path, &body);
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Starts the receiver on `addr` (port 0 for any) on the current runtime.
pub async fn start(addr: SocketAddr, seen: Arc<Seen>) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.expect("receiver binds");
    let local = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| receive(seen.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut last = 0;
        for v in 0..1_000_000u64 {
            let b = bucket_of(v);
            assert!(b == last || b == last + 1, "{v}");
            last = b;
            let mid = value_of(b);
            assert!(
                (mid - v as f64).abs() <= v as f64 * 0.008 + 0.5,
                "{v} {mid}"
            );
        }
    }
}
