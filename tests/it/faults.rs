//! The receiver fault matrix (issue 6): receivers that misbehave at the TCP and HTTP
//! level. Each delivery ends as DESIGN.md says, and none delays a healthy receiver.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::TestReceiver;

/// How a fault server treats each connection.
#[derive(Clone, Copy, Debug)]
enum Fault {
    SlowHeaders,
    SlowBody,
    NeverAnswers,
    Reset,
    CloseMidResponse,
    HugeBody,
    InvalidHttp,
    Status(u16),
}

async fn read_request(s: &mut TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    // Read until the end of the headers and the body (content-length is small).
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + len {
                return;
            }
        }
    }
}

async fn serve(fault: Fault, mut s: TcpStream) {
    read_request(&mut s).await;
    match fault {
        Fault::SlowHeaders => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Fault::SlowBody => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                .await;
            for _ in 0..100 {
                if s.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Fault::NeverAnswers => tokio::time::sleep(Duration::from_secs(30)).await,
        Fault::Reset => {
            // A zero linger makes the close an immediate RST; it never blocks.
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
        Fault::CloseMidResponse => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                .await;
        }
        Fault::HugeBody => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
                .await;
            let chunk = vec![b'z'; 64 * 1024];
            for _ in 0..(1 << 14) {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Fault::InvalidHttp => {
            let _ = s.write_all(b"this is not http\r\n\r\n").await;
        }
        Fault::Status(code) => {
            let extra = match code {
                301 | 302 | 307 | 308 => "location: http://127.0.0.1:9/elsewhere\r\n",
                _ => "",
            };
            let resp = format!("HTTP/1.1 {code} X\r\n{extra}content-length: 2\r\n\r\nno");
            let _ = s.write_all(resp.as_bytes()).await;
        }
    }
}

/// Starts a fault server; returns its address.
async fn fault_server(fault: Fault) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(fault, s));
        }
    });
    addr.to_string()
}

async fn first_attempt(app: &TestApp, t: &Tenant, event_id: &str) -> Value {
    let dlv = app.deliveries_of(t, event_id).await[0]["id"]
        .as_str()
        .expect("delivery")
        .to_owned();
    app.wait_delivery(t, &dlv, Duration::from_secs(15), |d| {
        d["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await
}

#[tokio::test]
async fn every_receiver_fault_ends_as_designed_and_blocks_no_one() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.request_timeout = Duration::from_millis(1500);
        c.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
    })
    .await;
    let t = app.tenant("faults").await;
    // (fault, expected delivery status after the first attempt, expected text in
    // the attempt's error, expected status code)
    let cases: Vec<(Fault, &str, &str, Option<u16>)> = vec![
        (Fault::SlowHeaders, "failed", "timed out", None),
        (Fault::SlowBody, "failed", "timed out", None),
        (Fault::NeverAnswers, "failed", "timed out", None),
        (Fault::Reset, "failed", "", None),
        (Fault::CloseMidResponse, "failed", "", None),
        (Fault::HugeBody, "succeeded", "", Some(200)),
        (Fault::InvalidHttp, "failed", "invalid HTTP", None),
        (
            Fault::Status(301),
            "failed",
            "redirects are not followed",
            Some(301),
        ),
        (
            Fault::Status(302),
            "failed",
            "redirects are not followed",
            Some(302),
        ),
        (
            Fault::Status(307),
            "failed",
            "redirects are not followed",
            Some(307),
        ),
        (Fault::Status(400), "failed", "400", Some(400)),
        (Fault::Status(404), "failed", "404", Some(404)),
        (Fault::Status(429), "failed", "429", Some(429)),
        (Fault::Status(500), "failed", "500", Some(500)),
        (Fault::Status(503), "failed", "503", Some(503)),
    ];
    let mut events = Vec::new();
    for (i, (fault, ..)) in cases.iter().enumerate() {
        let addr = fault_server(*fault).await;
        let ty = format!("fault.case{i}");
        let (s, body) = app
            .as_tenant(
                &t,
                Method::POST,
                "/v1/event-types",
                Some(json!({"name": ty})),
            )
            .await;
        assert_eq!(s, http::StatusCode::CREATED, "{body}");
        app.webhook(
            &t,
            json!({"url": format!("http://{addr}/hook"), "event_types": [ty]}),
        )
        .await;
        events.push(ty);
    }
    // A TLS handshake failure: https to a plain-HTTP server, which answers the
    // ClientHello with an HTTP error at once.
    let plain = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        addr
    };
    app.webhook(
        &t,
        json!({"url": format!("https://{plain}/hook"), "event_types": ["shift.report.created"]}),
    )
    .await;
    let healthy = TestReceiver::start().await;
    app.webhook(
        &t,
        json!({"url": healthy.url("/ok"), "event_types": ["shift.created"]}),
    )
    .await;

    let mut ids = Vec::new();
    for ty in &events {
        let e = app.event(&t, json!({"type": ty, "data": {}})).await;
        ids.push(e["id"].as_str().expect("id").to_owned());
    }
    let tls = app
        .event(&t, json!({"type": "shift.report.created", "data": {}}))
        .await;
    // While the faulty receivers hang, a healthy one is served at once.
    let started = Instant::now();
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    healthy.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the healthy receiver waited {:?} behind faulty ones",
        started.elapsed()
    );

    for ((fault, status, text, code), id) in cases.iter().zip(&ids) {
        let d = first_attempt(&app, &t, id).await;
        let a = &d["attempts"][0];
        assert_eq!(d["status"], *status, "{fault:?}: {d}");
        if let Some(code) = code {
            assert_eq!(a["status_code"], *code, "{fault:?}: {a}");
        } else {
            assert!(a["status_code"].is_null(), "{fault:?}: {a}");
        }
        let err = a["error"].as_str().unwrap_or_default();
        assert!(
            err.contains(text),
            "{fault:?}: error {err:?} lacks {text:?}"
        );
        if matches!(fault, Fault::HugeBody) {
            assert_eq!(
                a["response_body"].as_str().map(str::len),
                Some(4096),
                "{fault:?}"
            );
        }
        if matches!(fault, Fault::Reset | Fault::CloseMidResponse) {
            assert!(!err.is_empty(), "{fault:?}: no error recorded");
        }
    }
    let d = first_attempt(&app, &t, tls["id"].as_str().expect("id")).await;
    let err = d["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(err.contains("TLS"), "{err}");
}
