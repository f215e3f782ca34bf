//! Issue 18 tests, holes 1 and 2: a re-created tenant id sees nothing of the
//! deleted tenant; masked secrets do not follow a webhook to a new host. (The minor
//! items are in `security_minor.rs`.) Only loopback receivers; every wait has a
//! deadline.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);

/// Creates a tenant with a chosen id and a key with every scope.
async fn tenant_with_id(app: &TestApp, id: &str) -> Tenant {
    let (s, t) = app
        .admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": id, "name": "Three"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, k) = app
        .admin(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"tenant": id, "name": "k", "scopes":
                ["webhooks:read", "webhooks:write", "events:write", "events:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    Tenant {
        id: id.to_owned(),
        key: k["key"].as_str().expect("key").to_owned(),
    }
}

pub(crate) fn reasons(body: &Value) -> Vec<String> {
    body["error"]["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `rx` has had `n` requests on `path`; returns every request so far.
async fn wait_path(rx: &TestReceiver, path: &str, n: usize) -> Vec<crate::receiver::Received> {
    let mut got = rx.received();
    while got.iter().filter(|r| r.path == path).count() < n {
        got = rx.wait_for(got.len() + 1, WAIT).await;
    }
    got
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_recreated_tenant_id_sees_nothing_of_the_deleted_tenant() {
    let app = TestApp::spawn().await;
    // Every attempt fails with a body and asks for 1 s, so deliveries stay pending
    // with attempts that carry response bodies.
    let rx = TestReceiver::start_with(
        Reply::status(503)
            .header("retry-after", "2")
            .body("t3 receiver says: account 4711"),
    )
    .await;
    let t3 = tenant_with_id(&app, "t3").await;
    let other = app.tenant("other").await;
    app.webhook(
        &t3,
        json!({"url": rx.url("/t3"), "event_types": ["shift.created"]}),
    )
    .await;
    let old_event = app
        .event(
            &t3,
            json!({"type": "shift.created", "data": {"ssn": "t3-payload-secret"},
                "idempotency_key": "order-1"}),
        )
        .await;
    let old_event = id(&old_event);
    let old_delivery = id(&app.deliveries_of(&t3, &old_event).await[0]);
    app.wait_delivery(&t3, &old_delivery, WAIT, |d| {
        d["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let (s, d) = app
        .as_tenant(
            &t3,
            Method::GET,
            &format!("/v1/deliveries/{old_delivery}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(d.to_string().contains("account 4711"), "{d}");

    // Another tenant with the same idempotency key and a delivery retried after
    // t3's: its second request is the witness that t3's retry time has passed.
    app.webhook(
        &other,
        json!({"url": rx.url("/other"), "event_types": ["shift.created"]}),
    )
    .await;
    let kept_event = app
        .event(
            &other,
            json!({"type": "shift.created", "data": {"keep": true},
                "idempotency_key": "order-1"}),
        )
        .await;
    let kept_event = id(&kept_event);
    let kept_delivery = id(&app.deliveries_of(&other, &kept_event).await[0]);
    wait_path(&rx, "/other", 1).await;

    let t3_before = rx.received().iter().filter(|r| r.path == "/t3").count();
    let (s, body) = app.admin(Method::DELETE, "/v1/tenants/t3", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let t3 = tenant_with_id(&app, "t3").await;

    let (s, list) = app.as_tenant(&t3, Method::GET, "/v1/events", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["data"], json!([]), "the new t3 lists no old events");
    let (s, _) = app
        .as_tenant(&t3, Method::GET, &format!("/v1/events/{old_event}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .as_tenant(
            &t3,
            Method::GET,
            &format!("/v1/deliveries/{old_delivery}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, fresh) = app
        .as_tenant(
            &t3,
            Method::POST,
            "/v1/events",
            Some(json!({"type": "shift.created", "data": {"new": 1},
                "idempotency_key": "order-1"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "the old key is free again: {fresh}"
    );
    assert_ne!(id(&fresh), old_event);
    let (s, list) = app.as_tenant(&t3, Method::GET, "/v1/events", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(!list.to_string().contains("t3-payload-secret"), "{list}");

    // The old delivery is not delivered again: the other tenant's retry, due after
    // t3's would have been, arrives, and t3's path saw nothing after the delete.
    let seen = wait_path(&rx, "/other", 2).await;
    assert_eq!(
        seen.iter().filter(|r| r.path == "/t3").count(),
        t3_before,
        "old t3 deliveries are not delivered after the delete"
    );

    // The other tenant is untouched: its event, delivery and idempotency record.
    let (s, e) = app
        .as_tenant(
            &other,
            Method::GET,
            &format!("/v1/events/{kept_event}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["data"], json!({"keep": true}));
    let (s, d) = app
        .as_tenant(
            &other,
            Method::GET,
            &format!("/v1/deliveries/{kept_delivery}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert!(d.to_string().contains("account 4711"), "{d}");
    let (s, body) = app
        .as_tenant(
            &other,
            Method::POST,
            "/v1/events",
            Some(json!({"type": "shift.created", "data": {"different": 1},
                "idempotency_key": "order-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn a_deleted_tenant_id_is_refused_until_its_purge_is_done_and_the_purge_resumes_after_a_restart()
 {
    // The purge's chunks are redb's; the same rule on PostgreSQL is in pg_api.
    let app = TestApp::spawn_with(|c| c.store.backend = hookbox::config::Backend::Redb).await;
    let t3 = tenant_with_id(&app, "t3").await;
    let other = app.tenant("other").await;
    for n in 0..20 {
        app.event(
            &t3,
            json!({"type": "shift.created", "data": {"n": n}, "idempotency_key": format!("k{n}")}),
        )
        .await;
    }
    app.event(
        &other,
        json!({"type": "shift.created", "data": {"keep": 1}}),
    )
    .await;
    // The store's delete alone marks the id for purging; no purge runs yet, as if
    // the process had stopped right after the delete committed.
    let store = redb_of(&app);
    store
        .delete_tenant("t3".to_owned(), hookbox::model::now_ms())
        .await
        .expect("delete t3");
    assert!(store.tenant_being_purged("t3").expect("read"));
    // Two small chunks: some of the data is gone, not all of it.
    assert!(
        !store
            .purge_tenant_chunk("t3".into(), 5)
            .await
            .expect("chunk")
    );
    assert!(
        !store
            .purge_tenant_chunk("t3".into(), 5)
            .await
            .expect("chunk")
    );
    let (s, body) = app
        .admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "t3", "name": "again"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("still being purged"), "{body}");

    // After a restart the purge resumes by itself and the id becomes free.
    drop(store);
    let app = app.restart().await;
    let store = redb_of(&app);
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.tenant_being_purged("t3").expect("read") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "purge did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(store);
    let t3 = tenant_with_id(&app, "t3").await;
    let (s, list) = app.as_tenant(&t3, Method::GET, "/v1/events", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "{list}");
    let (s, list) = app.as_tenant(&other, Method::GET, "/v1/events", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn a_moved_webhook_takes_no_stored_secret_to_its_new_host() {
    let app = TestApp::spawn().await;
    let old_host = TestReceiver::start().await;
    let new_host = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": old_host.url("/hook"), "event_types": ["shift.created"],
                "headers": {"X-Api-Key": "key-for-the-old-host"}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", id(&w));

    // Masked, or left out: both would hand the stored value to the new host.
    for body in [
        json!({"url": new_host.url("/hook"), "headers": {"X-Api-Key": "****"}}),
        json!({"url": new_host.url("/hook")}),
    ] {
        let (s, answer) = app.as_tenant(&t, Method::PATCH, &path, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            reasons(&answer),
            ["headers.X-Api-Key must be sent again: url moves to another host"]
        );
    }
    // Nothing changed: the next delivery goes to the old host with its key.
    let (_, now) = app.as_tenant(&t, Method::GET, &path, None).await;
    assert_eq!(now["url"], old_host.url("/hook"));
    app.event(&t, json!({"type": "shift.created", "data": {"n": 1}}))
        .await;
    let got = old_host.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some("key-for-the-old-host"));

    // Sending the real value moves the webhook, and the new host gets that value.
    let (s, answer) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(json!({"url": new_host.url("/hook"),
                "headers": {"X-Api-Key": "key-for-the-new-host"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    app.event(&t, json!({"type": "shift.created", "data": {"n": 2}}))
        .await;
    let got = new_host.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some("key-for-the-new-host"));
    assert_eq!(old_host.received().len(), 1);
    assert!(
        got.iter()
            .all(|r| r.header("x-api-key") != Some("key-for-the-old-host"))
    );
}

fn token(name: &str) -> Reply {
    Reply::status(200)
        .header("content-type", "application/json")
        .body(&format!(
            r#"{{"access_token":"{name}","token_type":"Bearer","expires_in":3600}}"#
        ))
}

#[tokio::test]
async fn masked_oauth_secrets_stay_with_their_token_endpoint() {
    let app = TestApp::spawn().await;
    let rx = TestReceiver::start().await;
    let old_auth = TestReceiver::start_with(token("tok-old")).await;
    let new_auth = TestReceiver::start_with(token("tok-new")).await;
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": rx.url("/hook"), "event_types": ["shift.created"],
                "oauth": {"token_url": old_auth.url("/token"), "client_id": "cid",
                    "client_secret": "stored-client-secret",
                    "headers": {"X-Domain": "stored-domain"}}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", id(&w));
    let (s, answer) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(
                json!({"oauth": {"token_url": new_auth.url("/token"), "client_id": "cid",
                "client_secret": "****", "headers": {"X-Domain": "****"}}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{answer}");
    let r = reasons(&answer);
    let why = "oauth.token_url moves to another host";
    assert!(
        r.contains(&format!("oauth.client_secret must be sent again: {why}")),
        "{r:?}"
    );
    assert!(
        r.contains(&format!("oauth.headers.X-Domain must be sent again: {why}")),
        "{r:?}"
    );
    assert_eq!(r.len(), 2, "{r:?}");

    // Still the old endpoint; then the real values move it.
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    rx.wait_for(1, WAIT).await;
    assert_eq!(old_auth.received().len(), 1);
    assert!(new_auth.received().is_empty());
    let (s, answer) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &path,
            Some(
                json!({"oauth": {"token_url": new_auth.url("/token"), "client_id": "cid",
                "client_secret": "fresh-secret", "headers": {"X-Domain": "fresh-domain"}}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("authorization"), Some("Bearer tok-new"));
    let asked = new_auth.wait_for(1, WAIT).await;
    let form = String::from_utf8_lossy(&asked[0].body).into_owned();
    assert!(form.contains("fresh-secret"), "{form}");
    assert!(!form.contains("stored-client-secret"), "{form}");
    assert_eq!(asked[0].header("x-domain"), Some("fresh-domain"));
}

#[tokio::test]
async fn moving_only_the_url_fetches_a_new_token() {
    let app = TestApp::spawn().await;
    let old_host = TestReceiver::start().await;
    let new_host = TestReceiver::start().await;
    let auth = TestReceiver::start_with(token("tok-2")).await;
    auth.script([token("tok-1")]);
    let t = app.tenant("acme").await;
    let w = app
        .webhook(
            &t,
            json!({"url": old_host.url("/hook"), "event_types": ["shift.created"],
                "oauth": {"token_url": auth.url("/token"), "client_id": "cid",
                    "client_secret": "s"}}),
        )
        .await;
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let got = old_host.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-1"));
    let (s, answer) = app
        .as_tenant(
            &t,
            Method::PATCH,
            &format!("/v1/webhooks/{}", id(&w)),
            Some(json!({"url": new_host.url("/hook")})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    app.event(&t, json!({"type": "shift.created", "data": {}}))
        .await;
    let got = new_host.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer tok-2"),
        "the token cached for the old url is not sent to the new one"
    );
    assert_eq!(
        auth.received().len(),
        2,
        "the token endpoint is called again"
    );
}

/// The redb store of a test pinned to redb.
fn redb_of(app: &TestApp) -> hookbox::store::Store {
    app.app
        .as_ref()
        .expect("running")
        .store
        .redb()
        .expect("this test runs on redb")
        .clone()
}
