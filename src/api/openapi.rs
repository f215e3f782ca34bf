//! `/openapi.json`: an OpenAPI 3.1 document generated from the route table
//! (`routes.rs`: paths, methods, access, request and response types) and the wire
//! types' derived schemas (`dto.rs`, `requests.rs`, via utoipa). Nothing here is
//! written by hand per route: a route or field added elsewhere is documented by
//! construction. The alias rules ("send only one spelling", "one spelling is
//! required") come from the validator's alias table. Pure; never does I/O.

use serde_json::{Map, Value, json};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};

use super::dto;
use super::error::ErrorStyle;
use super::profiles::{self, Profile};
use super::routes::{Access, Body, ROUTES, Route, Wire, wire};
use super::validate::{MAX_IDEMPOTENCY_KEY_LEN, aliases};
use crate::config::ApiProfile;

/// Error statuses every authenticated route may answer, with their meaning.
const COMMON_ERRORS: &[(u16, &str)] = &[
    (401, "Missing or unknown key"),
    (403, "Missing scope, or the admin token is needed"),
    (
        404,
        "No such object (another tenant's objects included), or no such tenant",
    ),
    (
        405,
        "Method not allowed on this route (see the Allow header)",
    ),
    (413, "Body over max_body_bytes"),
    (415, "Body is not application/json"),
    (500, "Internal error; the cause is in the server log"),
    (503, "The store cannot write, or shutdown began"),
];

/// Meanings of the route-specific error statuses.
fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => {
            "Invalid input, every reason listed: outside the schema, or refused for a \
             reason the schema cannot state (an event type not in the catalogue, a tenant \
             that does not exist, a blocked host, a reserved header, a time in the future)"
        }
        409 => "Conflict (already exists, idempotency key reused, webhook disabled)",
        412 => "If-Match does not match the webhook's current ETag (the answer carries it)",
        404 => "No such asset",
        _ => "Error",
    }
}

/// The schemas of one query parameter.
fn query_parameter(name: &str) -> Value {
    let (schema, description) = match name {
        "limit" => (
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
            "Page size",
        ),
        "cursor" => (
            json!({"type": "string"}),
            "`next_cursor` of the previous page",
        ),
        "status" => (
            json!({"type": "string", "enum": ["pending", "succeeded", "failed", "exhausted", "cancelled"]}),
            "Only deliveries in this state",
        ),
        "type" => (json!({"type": "string"}), "Only events of this type"),
        "event_type" => (
            json!({"type": "string", "minLength": 1}),
            "Only deliveries of this event type",
        ),
        "until" => (
            json!({"type": "string", "format": "date-time"}),
            "Only deliveries created at or before this time",
        ),
        "since" => (
            json!({"type": "string", "format": "date-time"}),
            "Only those created at or after this time",
        ),
        _ => (json!({"type": "string"}), "Only this tenant's keys"),
    };
    json!({"name": name, "in": "query", "schema": schema, "description": description})
}

fn schema_ref(w: &Wire) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", (w.name)())})
}

fn json_content(w: &Wire) -> Value {
    json!({"application/json": {"schema": schema_ref(w)}})
}

/// The error body schema of `status` in `style`.
fn error_wire(style: ErrorStyle, status: u16) -> Wire {
    match (style, status) {
        (ErrorStyle::Hookbox, _) => wire::<dto::Error>(),
        (ErrorStyle::Nest, 400) => wire::<dto::NestBadRequest>(),
        (ErrorStyle::Nest, 401) => wire::<dto::NestUnauthorized>(),
        (ErrorStyle::Nest, _) => wire::<dto::NestError>(),
    }
}

/// One operation object from its route; `profile` for a seed profile's route
/// (tagged with its name, its errors in its shape, its tenant header).
fn operation(r: &Route, profile: Option<&Profile>) -> Value {
    let style = profile.map_or(ErrorStyle::Hookbox, |p| p.style);
    let mut responses = Map::new();
    let status = r.status.as_u16();
    // A text body of each media type in `types`.
    let text = |types: &[&str]| {
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": {"type": "string"}})))
            .collect();
        json!({"description": r.summary, "content": content})
    };
    let success = match &r.response {
        Body::Json(w) => json!({"description": r.summary, "content": json_content(w)}),
        Body::Empty => json!({"description": "No content"}),
        Body::Text => text(&["text/plain"]),
        Body::Html => text(&["text/html"]),
        Body::Asset => text(&["text/javascript", "text/css"]),
    };
    responses.insert(status.to_string(), success);
    for (code, description) in r.also {
        let mut alt = responses[&status.to_string()].clone();
        alt["description"] = json!(description);
        responses.insert(code.to_string(), alt);
    }
    let mut errors: Vec<(u16, &str)> = r.errors.iter().map(|s| (*s, error_meaning(*s))).collect();
    match r.access {
        Access::Public => errors.push((405, "Method not allowed (see the Allow header)")),
        _ => {
            errors.extend_from_slice(COMMON_ERRORS);
            // A body or query outside the schema is a 400, and so is the admin token
            // on a tenant route without X-Tenant-Id.
            if !r.errors.contains(&400) {
                errors.push((
                    400,
                    "Invalid input (outside the schema), every reason listed",
                ));
            }
        }
    }
    for (code, description) in errors {
        let error = error_wire(style, code);
        responses.insert(
            code.to_string(),
            json!({"description": description, "content": json_content(&error)}),
        );
    }
    let mut params: Vec<Value> = Vec::new();
    if let Some(start) = r.path.find('{') {
        let name = r.path[start + 1..].split('}').next().unwrap_or("id");
        params.push(json!({"name": name, "in": "path", "required": true,
            "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}}));
    }
    params.extend(r.query.iter().map(|q| query_parameter(q)));
    let mut op = json!({
        "operationId": format!("{}{}", r.method.as_str().to_lowercase(),
            r.path.replace(['/', '{', '}', '-', '.'], "_")),
        "summary": r.summary,
        "responses": responses,
    });
    if r.errors.contains(&400) {
        op["x-semantic-400"] = json!(true);
    }
    if r.portal {
        op["x-portal"] = json!(true);
    }
    match r.access {
        Access::Public => op["security"] = json!([]),
        Access::Admin => op["x-scope"] = json!("admin"),
        Access::Tenant(scope) => {
            op["x-scope"] = json!(scope.as_str());
            let header = profile.map_or("X-Tenant-Id", |p| p.tenant_header);
            params.push(json!({
                "name": header, "in": "header", "schema": {"type": "string"},
                "description": "With the admin token: the tenant to act for (X-Tenant-Id, \
                    organization-id and TENANT are accepted); with a key, its own tenant or absent",
            }));
        }
    }
    if r.errors.contains(&412) {
        params.push(json!({
            "name": "If-Match", "in": "header", "schema": {"type": "string"},
            "description": "Apply only if the webhook's ETag (from a read) still matches, else 412",
        }));
    }
    if r.path == "/v1/events" && r.method == http::Method::POST {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
                "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"},
            "description": "Same as the body's idempotency_key (visible ASCII)",
        }));
    }
    if !params.is_empty() {
        op["parameters"] = json!(params);
    }
    if let Some(p) = profile {
        op["tags"] = json!([p.which.name()]);
    }
    if let Some(w) = &r.request {
        // Bodies that are all optional may be left out (`{}` is implied).
        let all_optional = matches!(
            (w.name)().as_str(),
            "Rotate" | "WebhookPatch" | "TestEvent" | "PortalSessionCreate"
        );
        op["requestBody"] = json!({
            "required": !all_optional || (w.name)() == "TestEvent",
            "content": json_content(w),
        });
    }
    op
}

/// Adds the alias rules to every object schema that has two or more spellings of
/// a field: at most one spelling may be sent, and where the canonical name is
/// required, one of the spellings is.
///
/// "At most one" is stated as `dependentSchemas`: each later spelling, when
/// present, forbids the earlier ones (`{"properties": {earlier: false}}`), which
/// refuses exactly the bodies with two spellings. The same rule as a
/// `not: {anyOf: [{required: [a, b]}, ...]}` is equivalent but is only checked
/// after the fact by generators (Schemathesis' coverage phase drew whole bodies
/// for minutes before finding its templates unsatisfiable).
fn alias_rules(schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas.iter_mut() {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            continue;
        };
        // The spellings of each aliased field this body has, once each (the
        // tables share `event_type`/`eventType`, a subset of the event's group).
        let mut groups: Vec<Vec<&str>> = aliases()
            .map(|names| {
                let present = names.iter().copied().filter(|n| props.contains_key(*n));
                present.collect::<Vec<&str>>()
            })
            .filter(|present| present.len() > 1)
            .collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
        let mut kept: Vec<Vec<&str>> = Vec::new();
        for g in groups {
            if !kept.iter().any(|k| g.iter().all(|n| k.contains(n))) {
                kept.push(g);
            }
        }
        let mut dependent = Map::new();
        let mut required_any = Vec::new();
        for present in &kept {
            for (i, later) in present.iter().enumerate().skip(1) {
                let earlier: Map<String, Value> = present[..i]
                    .iter()
                    .map(|n| ((*n).to_owned(), Value::Bool(false)))
                    .collect();
                dependent.insert((*later).to_owned(), json!({"properties": earlier}));
            }
            let canonical_required = matches!(
                (name.as_str(), present[0]),
                ("WebhookCreate", "event_types")
                    | ("TestEvent", "event_type")
                    | ("EventCreate", "type")
            );
            if canonical_required {
                required_any.push(json!({"anyOf": present.iter()
                    .map(|n| json!({"required": [n]})).collect::<Vec<_>>()}));
            }
        }
        if !dependent.is_empty() {
            schema["dependentSchemas"] = Value::Object(dependent);
        }
        if !required_any.is_empty() {
            schema["allOf"] = json!(required_any);
        }
    }
}

/// The OpenAPI document: `/v1` and the operational routes, and the routes of
/// each enabled seed profile (tagged with its name). A disabled profile is absent.
pub fn document(enabled: &[ApiProfile]) -> Value {
    let profiles: Vec<&Profile> = enabled.iter().map(|w| profiles::profile(*w)).collect();
    let routes = || {
        ROUTES.iter().map(|r| (r, None)).chain(
            profiles
                .iter()
                .flat_map(|p| p.routes.iter().map(move |r| (r, Some(*p)))),
        )
    };
    let mut collected = Vec::new();
    let mut wires: Vec<Wire> = vec![wire::<dto::Error>()];
    if profiles.iter().any(|p| p.style == ErrorStyle::Nest) {
        wires.extend([400, 401, 403].map(|s| error_wire(ErrorStyle::Nest, s)));
    }
    for (r, _) in routes() {
        wires.extend(r.request);
        if let Body::Json(w) = r.response {
            wires.push(w);
        }
    }
    for w in wires {
        (w.collect)(&mut collected);
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(collected)
        .build();
    let api = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("hookbox")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "An embedded webhook gateway: ingest events, deliver them signed \
                     (Standard Webhooks) with retries.",
                ))
                .build(),
        )
        .components(Some(components))
        .build();
    let mut doc = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    let mut paths = Map::new();
    for (r, profile) in routes() {
        let item = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[r.method.as_str().to_lowercase()] = operation(r, profile);
    }
    doc["paths"] = Value::Object(paths);
    if !profiles.is_empty() {
        doc["tags"] = json!(
            profiles
                .iter()
                .map(|p| json!({
                    "name": p.which.name(),
                    "description": format!("Seed API profile serving seed document(s) {}", p.seeds),
                }))
                .collect::<Vec<_>>()
        );
    }
    doc["jsonSchemaDialect"] = json!("https://spec.openapis.org/oas/3.1/dialect/base");
    doc["security"] = json!([{"bearer": []}, {"apiKey": []}]);
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (hbk_...), a portal session token (hbp_..., on the operations marked x-portal) or the admin token"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "API-KEY", "description": "The seed spelling of the bearer key"},
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        alias_rules(schemas);
    }
    doc
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
