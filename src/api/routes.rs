//! The route table: every route the server answers, once. Each entry names its
//! method, path template, who may call it, its request and response wire types and
//! its handler; dispatch (`router.rs`), the 405 `Allow` header, authentication and
//! `/openapi.json` (`openapi.rs`) all read this table and nothing else. It must
//! never hold logic: handlers live in their resource files.

use std::future::{Future, ready};
use std::pin::Pin;

use http::{Method, StatusCode};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

use super::{Call, Reply, dto, events, filters, handlers, portal, requests as rq, webhooks};
use crate::model::Scope;
use crate::portal as site;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication (operational routes).
    Public,
    /// The admin token only.
    Admin,
    /// A tenant key holding the scope, or the admin token naming a tenant.
    Tenant(Scope),
}

/// A named schema: the component name and a function that registers it (and every
/// schema it refers to) in the document.
#[derive(Clone, Copy)]
pub struct Wire {
    /// The component name (`#/components/schemas/<name>`).
    pub name: fn() -> String,
    /// Pushes the schema and those it refers to.
    pub collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

/// The [`Wire`] of a type.
pub const fn wire<T: ToSchema>() -> Wire {
    fn name<T: ToSchema>() -> String {
        T::name().into_owned()
    }
    fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
    }
    Wire {
        name: name::<T>,
        collect: collect::<T>,
    }
}

/// What a successful answer carries.
#[derive(Clone, Copy)]
pub enum Body {
    /// `application/json` of this type.
    Json(Wire),
    /// No body (204).
    Empty,
    /// `text/plain` (the Prometheus exposition format).
    Text,
    /// `text/html` (the portal page).
    Html,
    /// A portal asset: `text/javascript` or `text/css`.
    Asset,
}

/// A handler future, borrowing the call.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// A handler: reads what it needs from the call (tenant, path id, body, query).
pub type Handler = for<'a> fn(&'a Call<'a>) -> HandlerFuture<'a>;

/// One route.
pub struct Route {
    pub method: Method,
    /// Path template; `{id}` or `{name}` matches one non-empty segment.
    pub path: &'static str,
    pub access: Access,
    /// One line for humans (the operation summary).
    pub summary: &'static str,
    /// The JSON request body, if the route takes one.
    pub request: Option<Wire>,
    /// The success status and body.
    pub status: StatusCode,
    pub response: Body,
    /// Other answers with the same body as the success (e.g. an idempotent replay).
    pub also: &'static [(u16, &'static str)],
    /// Query parameters (see `openapi.rs`).
    pub query: &'static [&'static str],
    /// Error statuses this route may answer besides the ones every authenticated
    /// route may (401, 403, 404, 405, 413, 415, 500, 503).
    pub errors: &'static [u16],
    /// Whether a portal session token (`hbp_...`) may call it (still within the
    /// session's scopes). Only a tenant's webhook, delivery, secret, test-send,
    /// recover and catalogue-read routes are.
    pub portal: bool,
    pub handler: Handler,
}

/// One [`Route`]: `route!([portal] METHOD "path", access, "summary", request,
/// STATUS, response, [also ...,] [query ...,] [errors ...,] |call| handler)`; an absent
/// `also`, `query` or `errors` is empty, an absent `portal` is `false`.
macro_rules! route {
    (portal $($rest:tt)*) => { $crate::api::routes::route!(@make true; $($rest)*) };
    (@make $portal:expr; $m:ident $path:literal, $access:expr, $summary:literal, $req:expr,
     $status:ident, $resp:expr, $(also $also:expr,)? $(query $query:expr,)?
     $(errors $errors:expr,)? |$call:ident| $handler:expr) => {
        $crate::api::routes::Route {
            method: http::Method::$m,
            path: $path,
            access: $access,
            summary: $summary,
            request: $req,
            status: http::StatusCode::$status,
            response: $resp,
            also: $crate::api::routes::route!(@or $($also)?; &[]),
            query: $crate::api::routes::route!(@or $($query)?; &[]),
            errors: $crate::api::routes::route!(@or $($errors)?; &[]),
            portal: $portal,
            handler: |$call| $handler,
        }
    };
    (@or ; $default:expr) => { $default };
    (@or $given:expr; $default:expr) => { $given };
    ($($rest:tt)*) => { $crate::api::routes::route!(@make false; $($rest)*) };
}
pub(crate) use route;

use Access::{Admin, Public, Tenant};
use Body::{Asset, Empty, Html, Json, Text};
use Scope::{EventsRead, EventsWrite, WebhooksRead, WebhooksWrite};

const PAGE: &[&str] = &["limit", "cursor"];
/// 400 for a body the schema allows but the server refuses for a semantic reason
/// (an event type not in the catalogue, a tenant that does not exist, a blocked
/// host); the document marks these operations `x-semantic-400`.
pub(crate) const SEMANTIC: &[u16] = &[400];
/// 409: already exists, idempotency key reused, or the webhook is disabled.
const CONFLICT: &[u16] = &[409];
const SEMANTIC_CONFLICT: &[u16] = &[400, 409];
/// 412: `If-Match` does not match the webhook's current `ETag`.
const SEMANTIC_PRECONDITION: &[u16] = &[400, 412];
const PRECONDITION: &[u16] = &[412];

/// A JSON request body of type `T`.
pub(crate) const fn json<T: ToSchema>() -> Option<Wire> {
    Some(wire::<T>())
}

/// Every route the server answers.
pub static ROUTES: &[Route] = &[
    route!(GET "/healthz", Public, "Liveness", None, OK, Json(wire::<dto::Health>()),
        |_c| Box::pin(ready(handlers::healthz()))),
    route!(GET "/readyz", Public, "Readiness: the store can write and shutdown has not begun", None,
        OK, Json(wire::<dto::Ready>()), also &[(503, "Not ready, with the reason")],
        |c| Box::pin(ready(handlers::readyz(c)))),
    route!(GET "/metrics", Public, "Prometheus metrics", None, OK, Text,
        |c| Box::pin(handlers::metrics(c))),
    route!(GET "/openapi.json", Public, "This document", None, OK,
        Json(wire::<dto::OpenApiDocument>()), |c| Box::pin(ready(handlers::openapi(c)))),
    route!(POST "/v1/tenants", Admin, "Create a tenant", json::<rq::TenantCreate>(), CREATED,
        Json(wire::<dto::Tenant>()), errors CONFLICT, |c| Box::pin(handlers::create_tenant(c))),
    route!(GET "/v1/tenants", Admin, "List tenants", None, OK, Json(wire::<dto::TenantList>()),
        |c| Box::pin(ready(handlers::list_tenants(c)))),
    route!(GET "/v1/tenants/{id}", Admin, "Read a tenant", None, OK, Json(wire::<dto::Tenant>()),
        |c| Box::pin(ready(handlers::get_tenant(c, c.id())))),
    route!(DELETE "/v1/tenants/{id}", Admin,
        "Delete a tenant, its keys and catalogue; soft-delete its webhooks", None, NO_CONTENT,
        Empty, |c| Box::pin(handlers::delete_tenant(c, c.id().to_owned()))),
    route!(POST "/v1/api-keys", Admin, "Create an API key (the key is shown only here)",
        json::<rq::ApiKeyCreate>(), CREATED, Json(wire::<dto::ApiKey>()), errors SEMANTIC,
        |c| Box::pin(handlers::create_key(c))),
    route!(GET "/v1/api-keys", Admin, "List API keys", None, OK, Json(wire::<dto::ApiKeyList>()),
        query &["tenant"], |c| Box::pin(ready(handlers::list_keys(c)))),
    route!(GET "/v1/api-keys/{id}", Admin, "Read an API key", None, OK, Json(wire::<dto::ApiKey>()),
        |c| Box::pin(ready(handlers::get_key(c, c.id())))),
    route!(DELETE "/v1/api-keys/{id}", Admin, "Revoke an API key", None, NO_CONTENT, Empty,
        |c| Box::pin(handlers::delete_key(c, c.id().to_owned()))),
    route!(portal GET "/v1/event-types", Tenant(WebhooksRead), "List the event-type catalogue",
        None, OK, Json(wire::<dto::EventTypeList>()),
        |c| Box::pin(ready(handlers::list_event_types(c)))),
    route!(POST "/v1/event-types", Tenant(WebhooksWrite), "Add an event type to the catalogue",
        json::<rq::EventTypeCreate>(), CREATED, Json(wire::<dto::EventType>()), errors CONFLICT,
        |c| Box::pin(handlers::create_event_type(c))),
    route!(portal GET "/v1/event-types/{name}", Tenant(WebhooksRead), "Read an event type", None,
        OK, Json(wire::<dto::EventType>()),
        |c| Box::pin(ready(handlers::get_event_type(c, c.id())))),
    route!(DELETE "/v1/event-types/{name}", Tenant(WebhooksWrite), "Remove an event type", None,
        NO_CONTENT, Empty, |c| Box::pin(handlers::delete_event_type(c, c.id().to_owned()))),
    route!(portal POST "/v1/webhooks", Tenant(WebhooksWrite),
        "Register a webhook; the answer shows its secrets", json::<rq::WebhookCreate>(), CREATED,
        Json(wire::<dto::Webhook>()), errors SEMANTIC, |c| Box::pin(webhooks::create(c))),
    route!(portal GET "/v1/webhooks", Tenant(WebhooksRead), "List webhooks (secrets masked)", None,
        OK, Json(wire::<dto::WebhookList>()), query PAGE, |c| Box::pin(ready(webhooks::list(c)))),
    route!(portal GET "/v1/webhooks/{id}", Tenant(WebhooksRead), "Read a webhook (secrets masked)",
        None, OK, Json(wire::<dto::Webhook>()), |c| Box::pin(ready(webhooks::get(c, c.id())))),
    route!(portal PATCH "/v1/webhooks/{id}", Tenant(WebhooksWrite),
        "Change some fields of a webhook", json::<rq::WebhookPatch>(), OK,
        Json(wire::<dto::Webhook>()), errors SEMANTIC_PRECONDITION,
        |c| Box::pin(webhooks::update(c, c.id()))),
    route!(portal DELETE "/v1/webhooks/{id}", Tenant(WebhooksWrite), "Soft-delete a webhook", None,
        NO_CONTENT, Empty, errors PRECONDITION, |c| Box::pin(webhooks::delete(c, c.id()))),
    route!(portal GET "/v1/webhooks/{id}/secrets", Tenant(WebhooksWrite),
        "Reveal the active signing secrets", None, OK, Json(wire::<dto::WebhookSecrets>()),
        |c| Box::pin(ready(webhooks::secrets(c, c.id())))),
    route!(portal POST "/v1/webhooks/{id}/secrets/rotate", Tenant(WebhooksWrite),
        "Rotate the signing secret; the previous one signs on for the grace period",
        json::<rq::Rotate>(), OK, Json(wire::<dto::WebhookSecrets>()), errors PRECONDITION,
        |c| Box::pin(webhooks::rotate(c, c.id()))),
    route!(portal POST "/v1/webhooks/{id}/test", Tenant(WebhooksWrite),
        "Send a test event now; answers with the attempt", json::<rq::TestEvent>(), OK,
        Json(wire::<dto::Attempt>()), errors SEMANTIC, |c| Box::pin(webhooks::test(c, c.id()))),
    route!(portal POST "/v1/webhooks/{id}/test-event", Tenant(WebhooksWrite),
        "Send a test event now (the seeds' path)", json::<rq::TestEvent>(), OK,
        Json(wire::<dto::Attempt>()), errors SEMANTIC, |c| Box::pin(webhooks::test(c, c.id()))),
    route!(POST "/v1/webhooks/{id}/filter/test", Tenant(WebhooksRead),
        "Whether an event would pass the webhook's payload filter, and which conditions fail",
        json::<filters::FilterTest>(), OK, Json(wire::<filters::FilterTestResult>()),
        errors SEMANTIC, |c| Box::pin(filters::test(c, c.id()))),
    route!(portal GET "/v1/webhooks/{id}/deliveries", Tenant(WebhooksRead),
        "A webhook's delivery log", None, OK, Json(wire::<dto::DeliveryList>()),
        query &["status", "event_type", "since", "until", "limit", "cursor"],
        |c| Box::pin(events::webhook_deliveries(c, c.id()))),
    route!(portal POST "/v1/webhooks/{id}/recover", Tenant(WebhooksWrite),
        "Re-queue failed, exhausted and cancelled deliveries since a time", json::<rq::Recover>(),
        ACCEPTED, Json(wire::<dto::Recovered>()),
        also &[(200, "A dry run (dry_run: true): how many would be re-queued; nothing changed")],
        errors SEMANTIC_CONFLICT, |c| Box::pin(events::recover(c, c.id()))),
    route!(POST "/v1/events", Tenant(EventsWrite), "Ingest one event (202 once durable)",
        json::<rq::EventCreate>(), ACCEPTED, Json(wire::<dto::IngestAccepted>()),
        also &[(200, "An idempotent replay: the stored event, nothing new delivered")],
        errors SEMANTIC_CONFLICT, |c| Box::pin(events::ingest(c))),
    route!(GET "/v1/events", Tenant(EventsRead), "List events", None, OK,
        Json(wire::<dto::EventList>()), query &["type", "since", "limit", "cursor"],
        |c| Box::pin(events::list(c))),
    route!(POST "/v1/events/batch", Tenant(EventsWrite),
        "Ingest up to 1,000 events in one durable commit", json::<rq::EventBatch>(), ACCEPTED,
        Json(wire::<dto::BatchAccepted>()), errors SEMANTIC_CONFLICT,
        |c| Box::pin(events::ingest_batch(c))),
    route!(GET "/v1/events/{id}", Tenant(EventsRead), "An event with its deliveries", None, OK,
        Json(wire::<dto::EventDetail>()), |c| Box::pin(events::get(c, c.id()))),
    route!(portal GET "/v1/deliveries/{id}", Tenant(WebhooksRead), "A delivery with its attempts",
        None, OK, Json(wire::<dto::DeliveryDetail>()), |c| Box::pin(events::delivery(c, c.id()))),
    route!(portal POST "/v1/deliveries/{id}/retry", Tenant(WebhooksWrite),
        "Attempt a delivery now; answers with the attempt", None, OK,
        Json(wire::<dto::DeliveryRetried>()), errors CONFLICT,
        |c| Box::pin(events::retry(c, c.id()))),
    route!(POST "/v1/portal/sessions", Tenant(WebhooksRead),
        "Create a portal session: a link for the tenant's customer (the token is shown only here)",
        json::<rq::PortalSessionCreate>(), CREATED, Json(wire::<dto::PortalSession>()),
        |c| Box::pin(portal::create(c))),
    route!(portal GET "/v1/portal/sessions", Tenant(WebhooksRead),
        "The calling portal session (for a key: what its sessions may do by default)", None, OK,
        Json(wire::<dto::PortalSessionInfo>()), |c| Box::pin(portal::current(c))),
    route!(DELETE "/v1/portal/sessions", Tenant(WebhooksWrite),
        "Revoke every portal session of the tenant", None, NO_CONTENT, Empty,
        |c| Box::pin(portal::revoke(c))),
    route!(GET "/portal", Public, "The portal page (the session token goes in the URL fragment)",
        None, OK, Html, |c| Box::pin(ready(site::page(c)))),
    route!(GET "/portal/webhooks/{id}", Public, "The portal page: a webhook (deep link)", None, OK,
        Html, |c| Box::pin(ready(site::page(c)))),
    route!(GET "/portal/deliveries/{id}", Public, "The portal page: a delivery (deep link)", None,
        OK, Html, |c| Box::pin(ready(site::page(c)))),
    route!(GET "/portal/assets/{name}", Public, "A portal script or stylesheet", None, OK, Asset,
        errors &[404], |c| Box::pin(ready(site::asset(c, c.id())))),
];

/// The outcome of looking a method and path up in the table.
pub enum Found {
    /// The route and its path parameter (empty when the template has none).
    Route(&'static Route, String),
    /// The path exists but not with this method: the methods it has.
    WrongMethod(Vec<&'static str>),
    /// No route has this path.
    NoPath,
}

/// Matches `path` (a trailing `/` ignored) against `template`; the parameter on a
/// match. Literal segments must be equal; `{...}` takes one non-empty segment.
fn matches(template: &str, path: &str) -> Option<String> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut param = String::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(param),
            (Some(ts), Some(ps)) if ts.starts_with('{') && !ps.is_empty() => {
                param = ps.to_owned();
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path`. A literal segment wins over a
/// parameter (`/v1/events/batch` is not the event `batch`). `HEAD` is answered
/// like `GET` on public routes.
pub fn find(method: &Method, path: &str) -> Found {
    find_in(ROUTES, method, path)
}

/// [`find`] in another table (a seed profile's).
pub fn find_in(table: &'static [Route], method: &Method, path: &str) -> Found {
    let candidates: Vec<(&'static Route, String)> = table
        .iter()
        .filter_map(|r| matches(r.path, path).map(|p| (r, p)))
        .collect();
    let Some(template) = candidates
        .iter()
        .map(|(r, _)| r.path)
        .min_by_key(|t| t.matches('{').count())
    else {
        return Found::NoPath;
    };
    let mut allowed = Vec::new();
    for (route, param) in candidates.into_iter().filter(|(r, _)| r.path == template) {
        let head = *method == Method::HEAD && route.access == Public && route.method == Method::GET;
        if route.method == method || head {
            return Found::Route(route, param);
        }
        allowed.push(route.method.as_str());
    }
    Found::WrongMethod(allowed)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
