//! `/openapi.json`: an OpenAPI 3.1 document built from the route table, so every
//! route the router answers is listed (a test checks both directions).

use serde_json::{Map, Value, json};

/// Every operation: (path template, method, summary, scope or "admin" or "").
pub const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    ("/v1/tenants", "post", "Create a tenant", "admin"),
    ("/v1/tenants", "get", "List tenants", "admin"),
    ("/v1/tenants/{id}", "get", "Read a tenant", "admin"),
    (
        "/v1/tenants/{id}",
        "delete",
        "Delete a tenant, its keys and catalogue; soft-delete its webhooks",
        "admin",
    ),
    (
        "/v1/api-keys",
        "post",
        "Create an API key (the key is shown once)",
        "admin",
    ),
    (
        "/v1/api-keys",
        "get",
        "List API keys (hashes are never shown)",
        "admin",
    ),
    ("/v1/api-keys/{id}", "get", "Read an API key", "admin"),
    ("/v1/api-keys/{id}", "delete", "Revoke an API key", "admin"),
    (
        "/v1/event-types",
        "get",
        "List the tenant's event types",
        "webhooks:read",
    ),
    (
        "/v1/event-types",
        "post",
        "Add an event type",
        "webhooks:write",
    ),
    (
        "/v1/event-types/{id}",
        "get",
        "Read an event type",
        "webhooks:read",
    ),
    (
        "/v1/event-types/{id}",
        "delete",
        "Remove an event type",
        "webhooks:write",
    ),
    (
        "/v1/webhooks",
        "post",
        "Register a webhook (201 with its secrets)",
        "webhooks:write",
    ),
    (
        "/v1/webhooks",
        "get",
        "List webhooks, cursor-paginated, secrets masked",
        "webhooks:read",
    ),
    (
        "/v1/webhooks/{id}",
        "get",
        "Read a webhook (masked)",
        "webhooks:read",
    ),
    (
        "/v1/webhooks/{id}",
        "patch",
        "Update a webhook partially",
        "webhooks:write",
    ),
    (
        "/v1/webhooks/{id}",
        "delete",
        "Soft-delete a webhook (204)",
        "webhooks:write",
    ),
    (
        "/v1/webhooks/{id}/secrets",
        "get",
        "Reveal the active signing secrets",
        "webhooks:write",
    ),
    (
        "/v1/webhooks/{id}/secrets/rotate",
        "post",
        "Rotate the signing secret (dual-secret grace period)",
        "webhooks:write",
    ),
    (
        "/v1/webhooks/{id}/test",
        "post",
        "Send a test event now and return the attempt",
        "webhooks:write",
    ),
    (
        "/v1/webhooks/{id}/deliveries",
        "get",
        "The webhook's delivery log",
        "webhooks:read",
    ),
    (
        "/v1/webhooks/{id}/recover",
        "post",
        "Re-queue failed, exhausted and cancelled deliveries since a time",
        "webhooks:write",
    ),
    (
        "/v1/events",
        "post",
        "Ingest one event (202 once durable)",
        "events:write",
    ),
    (
        "/v1/events",
        "get",
        "List events (type, since, cursor)",
        "events:read",
    ),
    (
        "/v1/events/batch",
        "post",
        "Ingest up to 1,000 events in one durable commit",
        "events:write",
    ),
    (
        "/v1/events/{id}",
        "get",
        "An event with its deliveries",
        "events:read",
    ),
    (
        "/v1/deliveries/{id}",
        "get",
        "A delivery with all its attempts",
        "webhooks:read",
    ),
    (
        "/v1/deliveries/{id}/retry",
        "post",
        "Attempt a delivery again now",
        "webhooks:write",
    ),
    ("/healthz", "get", "Liveness", ""),
    (
        "/readyz",
        "get",
        "Readiness: 503 when the store cannot write or shutdown began",
        "",
    ),
    ("/metrics", "get", "Prometheus metrics", ""),
    ("/openapi.json", "get", "This document", ""),
];

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (path, method, summary, scope) in OPERATIONS {
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"},
                "413": {"$ref": "#/components/responses/Error"},
                "415": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        });
        if scope.is_empty() {
            op["security"] = json!([]);
        } else {
            op["x-scope"] = json!(scope);
        }
        if path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "hookbox", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {
                "description": "An error with every reason",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }},
            "schemas": {"Error": {
                "type": "object",
                "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"},
                    "title": {"type": "string"},
                    "message": {"type": "string"},
                    "reasons": {"type": "array", "items": {"type": "string"}}
                }}}
            }},
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::super::router::Route;
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        for (path, method, _, _) in OPERATIONS {
            if !path.starts_with("/v1/") {
                continue;
            }
            let concrete = path.replace("{id}", "x1");
            let route = Route::parse(&concrete).unwrap_or_else(|| panic!("{path} is not routed"));
            let m: http::Method = method.to_uppercase().parse().unwrap();
            assert!(
                route.allowed().contains(&m),
                "{method} {path} not allowed by router"
            );
        }
        let doc = document();
        let samples = [
            "/v1/tenants",
            "/v1/tenants/x1",
            "/v1/api-keys",
            "/v1/api-keys/x1",
            "/v1/event-types",
            "/v1/event-types/x1",
            "/v1/webhooks",
            "/v1/webhooks/x1",
            "/v1/webhooks/x1/secrets",
            "/v1/webhooks/x1/secrets/rotate",
            "/v1/webhooks/x1/test",
            "/v1/webhooks/x1/deliveries",
            "/v1/webhooks/x1/recover",
            "/v1/events",
            "/v1/events/batch",
            "/v1/events/x1",
            "/v1/deliveries/x1",
            "/v1/deliveries/x1/retry",
        ];
        for path in samples {
            let route = Route::parse(path).expect("sample parses");
            let template = path.replace("x1", "{id}");
            for m in route.allowed() {
                let key = m.as_str().to_lowercase();
                assert!(
                    doc["paths"][&template][&key].is_object(),
                    "{key} {template} is routed but not documented"
                );
            }
        }
    }
}
