//! Tenant isolation and secrets at rest. Tenant B's key calls every route of the
//! OpenAPI document (the router's own table) with tenant A's ids and must get 404
//! (403 on admin routes) while A's objects stay as they were; and no API key,
//! signing secret, header value or OAuth client secret is in the data file in
//! plain text.

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::TestReceiver;

/// Every `/v1` operation the router answers, by hand from `Route` in
/// src/api/router.rs. `openapi::OPERATIONS` is private to the crate, so the test
/// compares this list with the served `/openapi.json`, which is built from it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{id}"),
    ("delete", "/v1/tenants/{id}"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("get", "/v1/api-keys/{id}"),
    ("delete", "/v1/api-keys/{id}"),
    ("get", "/v1/event-types"),
    ("post", "/v1/event-types"),
    ("get", "/v1/event-types/{id}"),
    ("delete", "/v1/event-types/{id}"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/secrets"),
    ("post", "/v1/webhooks/{id}/secrets/rotate"),
    ("post", "/v1/webhooks/{id}/test"),
    ("post", "/v1/webhooks/{id}/test-event"),
    ("post", "/v1/webhooks/{id}/filter/test"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("post", "/v1/webhooks/{id}/recover"),
    ("post", "/v1/events"),
    ("get", "/v1/events"),
    ("post", "/v1/events/batch"),
    ("get", "/v1/events/{id}"),
    ("get", "/v1/deliveries/{id}"),
    ("post", "/v1/deliveries/{id}/retry"),
    ("post", "/v1/portal/sessions"),
    ("get", "/v1/portal/sessions"),
    ("delete", "/v1/portal/sessions"),
];

/// Tenant A's objects.
struct Objects {
    tenant: Tenant,
    key_id: String,
    event_type: String,
    webhook: String,
    event: String,
    delivery: String,
}

impl Objects {
    /// A's id for the `{id}` of `template`.
    fn id_for(&self, template: &str) -> &str {
        let resource = template.trim_start_matches("/v1/").split('/').next();
        match resource {
            Some("tenants") => &self.tenant.id,
            Some("api-keys") => &self.key_id,
            Some("event-types") => &self.event_type,
            Some("webhooks") => &self.webhook,
            Some("events") => &self.event,
            Some("deliveries") => &self.delivery,
            other => panic!("no id for {other:?}"),
        }
    }

    /// Every id (and the private event-type name) of A, none of which may leak.
    fn all(&self) -> [&str; 6] {
        [
            &self.tenant.id,
            &self.key_id,
            &self.event_type,
            &self.webhook,
            &self.event,
            &self.delivery,
        ]
    }
}

/// A valid body for each operation, so a refusal is about ownership, not shape.
fn body_for(method: &str, template: &str, b: &Tenant) -> Option<Value> {
    let body = match (method, template) {
        ("post", "/v1/tenants") => json!({"name": "b-made"}),
        ("post", "/v1/api-keys") => json!({"tenant": b.id, "name": "k", "scopes": ["events:read"]}),
        ("post", "/v1/event-types") => json!({"name": "b.own"}),
        ("post", "/v1/webhooks") => {
            json!({"url": "http://127.0.0.1:9/b", "event_types": ["shift.created"], "enabled": false})
        }
        ("patch", "/v1/webhooks/{id}") => json!({"url": "http://127.0.0.1:9/stolen"}),
        ("post", "/v1/webhooks/{id}/secrets/rotate") => json!({"grace_seconds": 0}),
        ("post", "/v1/webhooks/{id}/test") => json!({"event_type": "shift.created"}),
        ("post", "/v1/webhooks/{id}/recover") => json!({"since": "2020-01-01T00:00:00Z"}),
        ("post", "/v1/webhooks/{id}/filter/test") => {
            json!({"event": {"type": "shift.created", "data": {}}})
        }
        ("post", "/v1/events") => json!({"type": "shift.created", "data": {"from": "b"}}),
        ("post", "/v1/events/batch") => json!([{"type": "shift.created", "data": {"from": "b"}}]),
        _ => return None,
    };
    Some(body)
}

/// What A (and the admin) can read of A.
async fn snapshot_of_a(app: &TestApp, a: &Objects) -> Vec<Value> {
    let t = &a.tenant;
    let mut out = Vec::new();
    for path in ["/v1/tenants", "/v1/api-keys"] {
        out.push(app.admin(Method::GET, path, None).await.1);
    }
    let paths = [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{}", a.webhook),
        format!("/v1/webhooks/{}/secrets", a.webhook),
        format!("/v1/webhooks/{}/deliveries", a.webhook),
        "/v1/event-types".to_owned(),
        format!("/v1/event-types/{}", a.event_type),
        "/v1/events".to_owned(),
        format!("/v1/events/{}", a.event),
        format!("/v1/deliveries/{}", a.delivery),
    ];
    for path in paths {
        let (s, v) = app.as_tenant(t, Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        out.push(v);
    }
    out
}

/// Tenant A with a webhook, an event type, an event and a succeeded delivery.
async fn tenant_a(app: &TestApp, receiver: &TestReceiver) -> Objects {
    let tenant = app.tenant("a").await;
    let (s, keys) = app.admin(Method::GET, "/v1/api-keys", None).await;
    assert_eq!(s, 200);
    let key_id = keys["data"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["tenant"] == tenant.id.as_str()))
        .and_then(|k| k["id"].as_str())
        .expect("A's key is listed")
        .to_owned();
    let (s, et) = app
        .as_tenant(
            &tenant,
            Method::POST,
            "/v1/event-types",
            Some(json!({"name": "a.private"})),
        )
        .await;
    assert_eq!(s, 201, "{et}");
    let w = app
        .webhook(
            &tenant,
            json!({"url": receiver.url("/a"), "event_types": ["shift.created", "a.private"]}),
        )
        .await;
    let webhook = w["id"].as_str().expect("id").to_owned();
    let e = app
        .event(
            &tenant,
            json!({"type": "a.private", "data": {"secret": "a"}}),
        )
        .await;
    let event = e["id"].as_str().expect("id").to_owned();
    let deliveries = app.deliveries_of(&tenant, &event).await;
    let delivery = deliveries[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    app.wait_delivery(&tenant, &delivery, Duration::from_secs(5), |d| {
        d["status"] == "succeeded"
    })
    .await;
    Objects {
        tenant,
        key_id,
        event_type: "a.private".to_owned(),
        webhook,
        event,
        delivery,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_ids_are_not_found_on_every_route() {
    let app = TestApp::spawn().await;
    let receiver = TestReceiver::start().await;
    let a = tenant_a(&app, &receiver).await;
    let b = app.tenant("b").await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(5)).await.len(), 1);

    // The operations to call come from the served OpenAPI document; the hand list
    // from the router must match it exactly, both ways.
    let (s, doc) = app.raw(Method::GET, "/openapi.json", &[], Vec::new()).await;
    assert_eq!(s, 200);
    let mut documented = BTreeSet::new();
    let mut scopes = std::collections::BTreeMap::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        // Event types are named by `{name}`; this test fills every id slot alike.
        let path = path.replace("{name}", "{id}");
        for (method, op) in ops.as_object().expect("operations") {
            documented.insert((method.clone(), path.clone()));
            scopes.insert(
                (method.clone(), path.clone()),
                op["x-scope"].as_str().unwrap_or("").to_owned(),
            );
        }
    }
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        listed, documented,
        "the route list and /openapi.json differ"
    );
    assert_eq!(documented.len(), 33);

    let before = snapshot_of_a(&app, &a).await;
    let mut failures = Vec::new();
    for (method, template) in &documented {
        let path = if template.contains("{id}") {
            template.replace("{id}", a.id_for(template))
        } else {
            template.clone()
        };
        let m: Method = method.to_uppercase().parse().expect("method");
        let body = body_for(method, template, &b);
        let (status, resp) = app.as_tenant(&b, m, &path, body).await;
        let text = resp.to_string();
        let admin = scopes[&(method.clone(), template.clone())] == "admin";
        let ok = if admin {
            status == 403
        } else if template.contains("{id}") {
            status == 404 && text.contains("not found")
        } else {
            // Collection routes act on B's own tenant: they succeed and show
            // nothing of A's.
            status.is_success() && !a.all().iter().any(|id| text.contains(id))
        };
        if !ok {
            failures.push(format!("{method} {path}: {status} {text}"));
        }
    }
    // Naming A's tenant with B's key is refused too.
    for header in ["x-tenant-id", "organization-id", "tenant"] {
        let (s, v) = app
            .call(
                Method::GET,
                "/v1/webhooks",
                &b.key,
                &[(header, &a.tenant.id)],
                None,
            )
            .await;
        if s != 403 {
            failures.push(format!("{header}: A with B's key: {s} {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let after = snapshot_of_a(&app, &a).await;
    // The only change the admin lists may show is what B created for itself
    // (a key and a tenant through admin routes were refused, so nothing).
    assert_eq!(before, after, "A's objects changed");
    // B's events never reached A's receiver, and B's test/retry calls did not
    // send anything either.
    assert_eq!(receiver.received().len(), 1, "A's receiver got B's traffic");
    // B's own ingest matched none of A's webhooks.
    let (s, events) = app.as_tenant(&b, Method::GET, "/v1/events", None).await;
    assert_eq!(s, 200);
    for e in events["data"].as_array().expect("list") {
        let id = e["id"].as_str().expect("id");
        for d in app.deliveries_of(&b, id).await {
            assert_ne!(d["webhook_id"], a.webhook.as_str(), "{d}");
        }
    }
}

/// Secrets at rest: after a graceful stop, the redb file holds no API key, admin
/// token, signing secret, custom header value or OAuth client secret in plain text
/// (webhooks are sealed whole), while unsealed event payloads are there, which
/// shows the scan reads the right file. The admin-token and master-key files are
/// mode 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_not_in_the_data_file_in_plain_text() {
    let mut app = TestApp::spawn_redb_with(|_| {}).await;
    let t = app.tenant("secrets").await;
    let header_value = "hdr-value-7f3a9c1e";
    let client_secret = "oauth-secret-4b8d2e6f";
    let w = app
        .webhook(
            &t,
            json!({
                "url": "http://127.0.0.1:9/hook",
                "event_types": ["*"],
                "enabled": false,
                "headers": {"X-Api-Key": header_value},
                "oauth": {
                    "token_url": "http://127.0.0.1:9/token",
                    "client_id": "client-id",
                    "client_secret": client_secret,
                    "headers": {"X-Token-Auth": header_value},
                },
            }),
        )
        .await;
    let signing = w["secrets"][0].as_str().expect("secret").to_owned();
    let (s, rotated) = app
        .as_tenant(
            &t,
            Method::POST,
            &format!(
                "/v1/webhooks/{}/secrets/rotate",
                w["id"].as_str().expect("id")
            ),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new_signing = rotated["secrets"][0]
        .as_str()
        .expect("new secret")
        .to_owned();
    app.event(
        &t,
        json!({"type": "shift.created", "data": {"marker": "plain-event-marker-91c2"}}),
    )
    .await;
    let admin = app.admin.clone();
    app.stop().await;

    let bytes = std::fs::read(app.data_file()).expect("data file");
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("plain-event-marker-91c2"),
        "the scan reads the data file"
    );
    let base64_of = |s: &str| s.trim_start_matches("whsec_").to_owned();
    for (what, secret) in [
        ("API key", t.key.clone()),
        ("admin token", admin),
        ("signing secret", signing.clone()),
        ("signing secret key text", base64_of(&signing)),
        ("rotated signing secret", new_signing.clone()),
        ("rotated signing secret key text", base64_of(&new_signing)),
        ("custom header value", header_value.to_owned()),
        ("OAuth client secret", client_secret.to_owned()),
    ] {
        assert!(
            !contains(&secret),
            "the {what} is in the data file in plain text"
        );
    }
    assert!(
        !contains("whsec_"),
        "some whsec_ secret is in the data file"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for name in ["admin-token", "master.key"] {
            let path = app.dir.path().join(name);
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name} is mode {:o}", mode & 0o777);
        }
    }
}
