//! What follows a recorded outcome, with three nodes on one database: a webhook is
//! disabled, emailed about and announced (`hookbox.webhook.disabled`) once however
//! many nodes see its receiver answer 410; deliveries exhausted on several nodes
//! are each considered for a failure email once (one email, the rest counted by the
//! throttle), never once per node, and each gets one `hookbox.delivery.exhausted`.
//! Emails go to the loopback SMTP sink (`smtp.rs`). Every node is stopped
//! gracefully (which drains its follow-ups) before anything is counted, and a
//! fresh node on the same database answers the reads.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::pg_cluster;
use crate::receiver::{Reply, TestReceiver};
use crate::smtp::SmtpSink;
use crate::support::{
    WAIT, deliveries_in, events_of_type, ingest, node, node_with, open_store, wait_known,
    wait_webhook, with_smtp,
};

const OWNER: &str = "ops@example.com";

/// Three nodes on `url` set up by `setup`, and a tenant with a webhook to
/// `target` (emails about it go to [`OWNER`]) and a listener webhook on `/ops` of
/// `ops` for the operational event `op`, both known to every node; returns the
/// nodes, the tenant and the webhook's id.
struct Three {
    nodes: [TestApp; 3],
}

impl Three {
    async fn start(
        url: &str,
        setup: impl Fn(&mut hookbox::config::Config) + Copy,
        target: &str,
        ops: &TestReceiver,
        op: &str,
    ) -> (Three, Tenant, String) {
        let nodes = [
            node_with(url, setup).await,
            node_with(url, setup).await,
            node_with(url, setup).await,
        ];
        let t = nodes[0].tenant("acme").await;
        let wh = nodes[0]
            .webhook(
                &t,
                json!({"url": target, "event_types": ["shift.created"],
                       "notification_email": OWNER}),
            )
            .await;
        let id = wh["id"].as_str().expect("id").to_owned();
        let listener = nodes[0]
            .webhook(&t, json!({"url": ops.url("/ops"), "event_types": [op]}))
            .await;
        let listener_id = listener["id"].as_str().expect("id");
        for n in &nodes[1..] {
            wait_known(n, &t).await;
            wait_webhook(n, &t, &id).await;
            wait_webhook(n, &t, listener_id).await;
        }
        (Three { nodes }, t, id)
    }

    /// Ingests `n` events at each of the three nodes at once; returns their ids.
    async fn ingest(&self, t: &Tenant, n: usize) -> Vec<String> {
        let [a, b, c] = &self.nodes;
        let (x, y, z) = tokio::join!(
            ingest(a, t, n, "a"),
            ingest(b, t, n, "b"),
            ingest(c, t, n, "c")
        );
        x.into_iter().chain(y).chain(z).collect()
    }

    /// Stops every node after its follow-ups are done: all that will be, is.
    async fn stop(&mut self) {
        for n in &mut self.nodes {
            n.stop().await;
        }
    }
}

/// The webhook as `node` shows it.
async fn webhook(node: &TestApp, t: &Tenant, id: &str) -> Value {
    let (s, w) = node
        .as_tenant(t, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gone_on_three_nodes_is_disabled_emailed_and_announced_once() {
    let url = pg_cluster::shared().database().await;
    let sink = SmtpSink::start().await;
    // No throttle to speak of: a second disable would be a second email.
    let setup = |c: &mut hookbox::config::Config| {
        with_smtp(c, &sink);
        c.notify.email_interval = Duration::from_millis(1);
        c.delivery.per_webhook_in_flight = 8;
    };
    // Slow 410s, so attempts of several nodes are in flight when the first lands.
    let gone = TestReceiver::start_with(Reply::status(410).delay(Duration::from_millis(300))).await;
    let ops = TestReceiver::start().await;
    let (mut three, t, id) = Three::start(
        &url,
        setup,
        &gone.url("/gone"),
        &ops,
        "hookbox.webhook.disabled",
    )
    .await;
    let store = open_store(&url).await;
    let created = store
        .get_webhook(&id)
        .await
        .expect("read")
        .expect("stored")
        .version;
    three.ingest(&t, 4).await;

    let deadline = Instant::now() + WAIT;
    while webhook(&three.nodes[0], &t, &id).await["enabled"] != false {
        assert!(Instant::now() < deadline, "the webhook was never disabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sink.wait_for(1, WAIT).await;
    ops.wait_for(1, WAIT).await;
    three.stop().await;
    let answered = gone.received().len();
    let peak = gone.peak_concurrency("/gone");

    let d = node(&url).await;
    wait_known(&d, &t).await;
    let w = webhook(&d, &t, &id).await;
    assert_eq!(w["enabled"], false, "{w}");
    assert_eq!(
        w["disabled_reason"], "the receiver answered 410 Gone",
        "{w}"
    );
    let stored = store.get_webhook(&id).await.expect("read").expect("stored");
    assert_eq!(
        stored.version,
        created + 1,
        "the webhook was written more than once: disabled more than once"
    );
    let announced = events_of_type(&d, &t, "hookbox.webhook.disabled").await;
    assert_eq!(announced.len(), 1, "one operational event: {announced:#?}");
    let mails = sink.messages();
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| m.header("subject").unwrap_or_default())
        .collect();
    assert_eq!(mails.len(), 1, "one email: {subjects:#?}");
    assert!(
        subjects[0].contains(&id) && subjects[0].contains("disabled"),
        "{subjects:?}"
    );
    assert_eq!(mails[0].to, vec![OWNER.to_owned()]);
    println!(
        "410 on three nodes: {answered} attempts answered 410 (up to {peak} at once); \
         1 disable, 1 email, 1 operational event"
    );
    assert!(
        answered >= 2,
        "only {answered} attempt reached the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_exhausted_on_three_nodes_are_each_considered_once() {
    const PER_NODE: usize = 4;
    const N: usize = 3 * PER_NODE;
    let url = pg_cluster::shared().database().await;
    let sink = SmtpSink::start().await;
    // The default throttle (one email per webhook per hour): one email, the other
    // exhausted deliveries counted into the next one.
    let setup = |c: &mut hookbox::config::Config| with_smtp(c, &sink);
    let failing = TestReceiver::start_with(Reply::status(500)).await;
    let ops = TestReceiver::start().await;
    let (mut three, t, id) = Three::start(
        &url,
        setup,
        &failing.url("/down"),
        &ops,
        "hookbox.delivery.exhausted",
    )
    .await;
    let events: HashSet<String> = three.ingest(&t, PER_NODE).await.into_iter().collect();
    assert_eq!(events.len(), N);

    let deadline = Instant::now() + WAIT;
    loop {
        let done = deliveries_in(&three.nodes[0], &t, &id, "exhausted")
            .await
            .len();
        if done == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {N} deliveries exhausted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.wait_for(1, WAIT).await;
    three.stop().await;

    let d = node(&url).await;
    wait_known(&d, &t).await;
    // One operational event per exhausted delivery, each about another delivery.
    let announced = events_of_type(&d, &t, "hookbox.delivery.exhausted").await;
    let about: HashSet<String> = announced
        .iter()
        .map(|e| {
            let data: Value = match &e["data"] {
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                v => v.clone(),
            };
            data["event_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(announced.len(), N, "{announced:#?}");
    assert_eq!(
        about, events,
        "one operational event per exhausted delivery"
    );
    // One email; the throttle counted every other exhausted delivery once.
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let subject = mails[0].header("subject").unwrap_or_default();
    assert!(
        subject.contains("exhausted") && subject.contains(&id),
        "{subject}"
    );
    let throttle = open_store(&url)
        .await
        .notify_state(&id)
        .await
        .expect("read the throttle")
        .expect("a throttle row");
    println!(
        "{N} deliveries exhausted on three nodes: {} email, {} counted by the throttle, {} operational events",
        mails.len(),
        throttle.suppressed,
        announced.len()
    );
    assert_eq!(
        mails.len() + throttle.suppressed as usize,
        N,
        "each exhausted delivery is considered for an email exactly once"
    );
}
