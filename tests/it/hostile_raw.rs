//! Hostile input the hyper client cannot send: protocol abuse on a raw socket
//! (CR in headers, smuggling headers, 10 MB bodies declared or chunked) and
//! slowloris. Each is refused, the server stays up, and the store is unchanged.

use std::time::Duration;

use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hostile::{setup, snapshot, wh};

async fn raw_exchange(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything; a failed write
    // then is expected, and the answer is still readable.
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if response_complete(&buf) {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer within 5 s to {:?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Whether `buf` holds a full response (headers plus a Content-Length body).
fn response_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_protocol_abuse_is_refused_and_changes_nothing() {
    let (app, t, wid, eid) = setup().await;
    let before = snapshot(&app, &t, &wid, &eid).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let auth = format!("Authorization: Bearer {}\r\n", t.key);
    let body = wh(json!({}));
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (
            "bare CR inside a header value".into(),
            format!("GET /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}X-Tenant-Id: a\rb\r\n\r\n").into_bytes(),
            400,
            "",
        ),
        (
            "obsolete line folding".into(),
            format!("GET /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}X-A: a\r\n b\r\n\r\n").into_bytes(),
            400,
            "",
        ),
        (
            "CRLF injected into the request target".into(),
            format!("GET /v1/webhooks\r\nX-Evil: 1 HTTP/1.1\r\nHost: x\r\n{auth}\r\n").into_bytes(),
            400,
            "",
        ),
        (
            "NUL in the request target".into(),
            format!("GET /v1/webhooks/\0 HTTP/1.1\r\nHost: x\r\n{auth}\r\n").into_bytes(),
            400,
            "",
        ),
        (
            // hyper passes raw non-ASCII bytes through; the id matches nothing.
            "raw UTF-8 in the request target".into(),
            [
                b"GET /v1/webhooks/\xe2\x80\xae HTTP/1.1\r\nHost: x\r\n".as_slice(),
                auth.as_bytes(),
                b"\r\n",
            ]
            .concat(),
            404,
            "not found",
        ),
        (
            "two different Content-Length headers (request smuggling)".into(),
            format!(
                "POST /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nContent-Length: 5\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            400,
            "",
        ),
        (
            "a non-numeric Content-Length".into(),
            format!("POST /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: abc\r\n\r\n{body}").into_bytes(),
            400,
            "",
        ),
        (
            "Transfer-Encoding that is not chunked".into(),
            format!("POST /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: gzip\r\n\r\n{body}").into_bytes(),
            400,
            "",
        ),
        (
            "too many headers".into(),
            format!(
                "GET /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}{}\r\n",
                (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            )
            .into_bytes(),
            431,
            "",
        ),
        (
            "10 MB declared body, unauthenticated: 401 before any body is read".into(),
            b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{"
                .to_vec(),
            401,
            "unauthorized",
        ),
        (
            "10 MB declared body: 413 before it is sent".into(),
            format!(
                "POST /v1/webhooks HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{{"
            )
            .into_bytes(),
            413,
            "larger than 1048576 bytes",
        ),
        (
            "10 MB declared event body: 413 before it is sent".into(),
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{{"
            )
            .into_bytes(),
            413,
            "payload_too_large",
        ),
    ];
    let mut failures = Vec::new();
    for (name, request, status, needle) in &cases {
        let (got, text) = raw_exchange(&addr, request).await;
        if got != *status || !text.contains(needle) {
            failures.push(format!(
                "{name}: want {status} {needle:?}, got {got}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = snapshot(&app, &t, &wid, &eid).await;
    assert_eq!(before, after, "a raw request changed the store");
}

/// A chunked 10 MB upload (no Content-Length to refuse up front) is cut off at
/// `max_body_bytes`: the server answers 413 having read little more than 1 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_ten_megabytes_stop_at_the_limit() {
    let (app, t, wid, eid) = setup().await;
    let before = snapshot(&app, &t, &wid, &eid).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        t.key
    );
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        if wr.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        let chunk = vec![b' '; 64 * 1024];
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        while sent < 10 * 1024 * 1024 {
            if wr.write_all(&framed).await.is_err() {
                break;
            }
            sent += 64 * 1024;
        }
        sent
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        while !response_complete(&buf) {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    drop(rd);
    let sent = writer.await.expect("writer");
    // Socket buffers hold some megabytes on loopback; what matters is that the
    // server did not wait for all 10 MB before answering.
    assert!(
        sent < 10 * 1024 * 1024,
        "the client could send all {sent} bytes"
    );
    let after = snapshot(&app, &t, &wid, &eid).await;
    assert_eq!(before, after);
}

/// Slowloris: 50 connections trickling a request line. The server keeps answering
/// everyone else meanwhile, and closes a trickling connection after its 10 s
/// header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_and_do_not_starve_others() {
    let (app, t, _wid, _eid) = setup().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let started = tokio::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /v1/webhooks HTTP/1.1\r\nHo")
            .await
            .expect("write");
        slow.push(s);
    }
    // Other clients are served while the slow ones hang.
    for _ in 0..5 {
        let (s, v) = app.as_tenant(&t, Method::GET, "/v1/webhooks", None).await;
        assert_eq!(s, 200, "{v}");
    }
    // Keep trickling one byte a second on every connection until the server cuts
    // them; a correct server does so about 10 s after they opened.
    let deadline = started + Duration::from_secs(15);
    let mut open: Vec<TcpStream> = slow;
    while !open.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} slow connections still open after 15 s",
            open.len()
        );
        let mut still = Vec::new();
        for mut s in open {
            let mut b = [0u8; 256];
            let closed = match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
            {
                Ok(Ok(0)) | Ok(Err(_)) => true,
                // A 408 or similar answer followed by a close also counts.
                Ok(Ok(_)) => true,
                Err(_) => s.write_all(b"s").await.is_err(),
            };
            if !closed {
                still.push(s);
            }
        }
        open = still;
        if !open.is_empty() {
            // Pacing the trickle, not synchronisation: the loop ends on the server's
            // own action (closing the sockets) or the deadline.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(9),
        "connections were cut after {elapsed:?}, before the header timeout"
    );
    let (s, _) = app.raw(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(s, 200);
}
