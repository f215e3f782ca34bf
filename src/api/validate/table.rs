//! The request field table: for each JSON body, its fields (wire name and seed
//! aliases, [`Kind`] with its constraint, [`Req`]), read here to check a body
//! (every reason listed, in table order, then unknown fields) and by `requests.rs`
//! to build the body's OpenAPI schema, so the check and the document cannot drift.
//! Pure: no I/O, never panics on client input, never echoes a secret value.

use std::any::Any;
use std::collections::BTreeMap;

use serde_json::Value;

pub(crate) use super::fields::WEBHOOK_HEADERS;
use super::fields::*;
use super::portal::{DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS};
use super::*;
use crate::model::{Secret, UnixMs, Webhook};

/// What a field holds, with its constraint; each kind has one check (below) and
/// one schema (`requests.rs`).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A string of `min..=max` characters; with `min > 0`, not only whitespace.
    Text(usize, usize),
    /// A tenant or API key name: text of 1..=200 characters, no control characters.
    Name,
    /// A tenant id: 1..=64 of `[A-Za-z0-9_-]`.
    TenantId,
    /// An http(s) URL (https when required, SSRF host check).
    Url,
    /// 1..=100 event-type filters: catalogued names, `*`/`all`, `prefix.*`.
    EventTypes,
    /// 0..=100 channel names of 1..=128 characters (the ingest form has no
    /// "not only whitespace" pattern in the document).
    Channels { ingest: bool },
    /// Up to 32 custom headers under these rules.
    Headers(&'static HeaderRules),
    /// Up to 50 string entries.
    Metadata,
    /// One `whsec_` signing secret.
    Secret,
    /// 0..=2 distinct signing secrets.
    Secrets,
    /// A whole number in `min..=max`.
    Int(u64, u64),
    /// A whole number of seconds in `min..=max` (a portal session's lifetime).
    Seconds(u64, u64),
    /// `"none"` or `"fifo"`.
    Ordering,
    /// A boolean; `strict_text` picks the reason ("must be a boolean" or "must be
    /// true or false", both kept as the API has always said them).
    Bool { strict_text: bool },
    /// An e-mail address.
    Email,
    /// The nested OAuth object (fields in [`OAUTH`]).
    OAuth,
    /// The OAuth client secret: text; a mask keeps the stored one.
    ClientSecret,
    /// A name in the tenant's catalogue.
    Catalogued,
    /// A new catalogue name (not `all`, not `hookbox.*`).
    NewEventType,
    /// An ingest event type (the catalogue check is the handler's).
    IngestType,
    /// A JSON Schema object.
    JsonSchema,
    /// An RFC 3339 time, not in the future.
    Since,
    /// A payload filter.
    Filter,
    /// 1 or more API key scopes.
    Scopes,
    /// Any JSON value.
    Any,
    /// An idempotency key.
    IdempotencyKey,
    /// 1..=1000 events (the batch wrapper).
    Batch,
}

/// Whether a field must be sent, and what `null` means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Req {
    /// Absent or null: "`<name>` is required".
    Need,
    /// Required on create, may be left out of a PATCH; null: "must not be null".
    NeedOnCreate,
    /// Optional; null clears it (or means the default). Nullable in the document.
    Null,
    /// Optional; null is refused by the kind's check.
    Opt,
    /// Create only (null allowed); a PATCH that sends it is refused.
    CreateOnly,
}

/// A default the document states and [`Read::take`] applies.
#[derive(Clone, Copy)]
pub(crate) enum Dflt {
    Int(u64),
    Bool(bool),
}

/// One field: its spellings (canonical first, then seed aliases), kind, whether
/// required, and optionally its documentation and default.
pub(crate) struct F {
    pub(crate) names: &'static [&'static str],
    pub(crate) kind: Kind,
    pub(crate) req: Req,
    pub(crate) doc: Option<&'static str>,
    pub(crate) default: Option<Dflt>,
}

const fn f(names: &'static [&'static str], kind: Kind, req: Req) -> F {
    F {
        names,
        kind,
        req,
        doc: None,
        default: None,
    }
}

impl F {
    const fn doc(mut self, doc: &'static str) -> Self {
        self.doc = Some(doc);
        self
    }
    const fn default(mut self, d: Dflt) -> Self {
        self.default = Some(d);
        self
    }
}

/// One JSON body: its description and fields.
pub(crate) struct Table {
    pub(crate) doc: &'static str,
    pub(crate) fields: &'static [F],
}

use Req::*;

/// `POST /v1/webhooks` and `PATCH /v1/webhooks/{id}`.
pub(crate) static WEBHOOK: Table = Table {
    doc: "",
    fields: &[
        f(&["url"], Kind::Url, NeedOnCreate),
        f(
            &["event_types", "subscriptions", "events"],
            Kind::EventTypes,
            NeedOnCreate,
        ),
        f(
            &["channels", "facilities"],
            Kind::Channels { ingest: false },
            Null,
        ),
        f(&["description"], Kind::Text(0, MAX_DESCRIPTION_LEN), Null),
        // OAuth before headers: whether `authorization` is reserved depends on it.
        f(&["oauth", "oauth_configuration"], Kind::OAuth, Null),
        f(&["headers"], Kind::Headers(&WEBHOOK_HEADERS), Null),
        f(&["secrets"], Kind::Secrets, CreateOnly),
        f(
            &["notification_email", "notificationEmail"],
            Kind::Email,
            Null,
        ),
        f(&["enabled"], Kind::Bool { strict_text: true }, Opt),
        f(&["metadata"], Kind::Metadata, Null),
        f(
            &["rate_limit_per_second"],
            Kind::Int(1, MAX_RATE_LIMIT),
            Null,
        ),
        f(&["ordering"], Kind::Ordering, Opt),
        f(&["filter"], Kind::Filter, Null),
    ],
};

/// The `oauth` object of a webhook.
pub(crate) static OAUTH: Table = Table {
    doc: "OAuth2 client credentials fetched before each delivery (cached).",
    fields: &[
        f(&["token_url"], Kind::Url, Need),
        f(&["client_id"], Kind::Text(1, MAX_TEXT_LEN), Need),
        f(&["client_secret"], Kind::ClientSecret, Need),
        f(&["scope"], Kind::Text(1, MAX_TEXT_LEN), Null),
        f(&["headers"], Kind::Headers(&OAUTH_HEADERS), Null),
    ],
};

/// `POST /v1/webhooks/{id}/secrets/rotate`.
pub(crate) static ROTATE: Table = Table {
    doc: "`POST /v1/webhooks/{id}/secrets/rotate`; `{}` (or no body) generates a secret.",
    fields: &[
        f(&["secret"], Kind::Secret, Null),
        f(&["grace_seconds"], Kind::Int(0, MAX_GRACE_SECONDS), Null)
            .default(Dflt::Int(DEFAULT_GRACE_SECONDS)),
    ],
};

/// `POST /v1/webhooks/{id}/test`.
pub(crate) static TEST_EVENT: Table = Table {
    doc: "`POST /v1/webhooks/{id}/test`. One spelling of `event_type` is required.",
    fields: &[
        f(&["event_type", "eventType"], Kind::Catalogued, Need),
        f(&["message"], Kind::Text(1, MAX_TEXT_LEN), Null),
    ],
};

/// `POST /v1/webhooks/{id}/recover`.
pub(crate) static RECOVER: Table = Table {
    doc: "`POST /v1/webhooks/{id}/recover`.",
    fields: &[
        f(&["since"], Kind::Since, Need)
            .doc("Deliveries created at or after this time; not in the future (a 400)."),
        f(&["dry_run"], Kind::Bool { strict_text: false }, Null)
            .doc("Only count: answer 200 with how many would be re-queued, change nothing.")
            .default(Dflt::Bool(false)),
    ],
};

/// `POST /v1/tenants`.
pub(crate) static TENANT: Table = Table {
    doc: "`POST /v1/tenants`.",
    fields: &[
        f(&["id"], Kind::TenantId, Null),
        f(&["name"], Kind::Name, Need),
    ],
};

/// `POST /v1/api-keys`.
pub(crate) static API_KEY: Table = Table {
    doc: "`POST /v1/api-keys`.",
    fields: &[
        f(&["tenant"], Kind::TenantId, Need),
        f(&["name"], Kind::Name, Need),
        f(&["scopes"], Kind::Scopes, Need),
    ],
};

/// `POST /v1/event-types`.
pub(crate) static EVENT_TYPE: Table = Table {
    doc: "`POST /v1/event-types`.",
    fields: &[
        f(&["name"], Kind::NewEventType, Need),
        f(&["description"], Kind::Text(0, MAX_DESCRIPTION_LEN), Null),
        f(&["schema"], Kind::JsonSchema, Null),
    ],
};

/// `POST /v1/portal/sessions`.
pub(crate) static PORTAL_SESSION: Table = Table {
    doc: "`POST /v1/portal/sessions`; `{}` (or no body) asks for the default session.",
    fields: &[
        f(&["read_only"], Kind::Bool { strict_text: false }, Null).doc(
            "A session that can only read (`webhooks:read`). Default false, except that a\n\
             caller without `webhooks:write` always gets a read-only session, and asking\n\
             it for `false` explicitly is a 403.",
        ),
        f(
            &["ttl_seconds"],
            Kind::Seconds(MIN_TTL_SECONDS, MAX_TTL_SECONDS),
            Null,
        )
        .doc("How long the link works, in seconds (at most 24 h)")
        .default(Dflt::Int(DEFAULT_TTL_SECONDS)),
    ],
};

/// `POST /v1/events` (and each item of a batch). Ingest is the hot path: it reads
/// this shape with a derived deserializer (`event.rs`, same spellings); the table
/// gives its document.
pub(crate) static EVENT: Table = Table {
    doc: "`POST /v1/events` (and each item of a batch). One spelling of `type` is required.",
    fields: &[
        f(&["type", "event_type", "eventType"], Kind::IngestType, Need),
        f(&["data"], Kind::Any, Need),
        f(&["channels"], Kind::Channels { ingest: true }, Null),
        f(
            &["idempotency_key", "idempotencyKey"],
            Kind::IdempotencyKey,
            Null,
        ),
    ],
};

/// `{"events": [...]}`, one form of `POST /v1/events/batch`.
pub(crate) static BATCH: Table = Table {
    doc: "`{\"events\": [...]}`.",
    fields: &[f(&["events"], Kind::Batch, Need)],
};

/// A checked value of one field (its type is the kind's: `String`, `u64`, ...).
pub(crate) type Val = Box<dyn Any>;

/// One field as read: left out, `null`, refused (a reason was recorded) or valid.
enum Got {
    Absent,
    Null,
    Bad,
    Val(Val),
}

/// What checks need besides the value: the handler's [`Ctx`], the clock, for a
/// PATCH the stored webhook and the stored values a mask `"****"` keeps while
/// their destination stays (the webhook's, or for the nested `oauth` object its
/// own); plus what earlier fields said (`url` moved, `oauth` set).
pub(crate) struct Cx<'a> {
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) now: UnixMs,
    pub(crate) current: Option<&'a Webhook>,
    pub(super) stored_url: Option<&'a str>,
    pub(super) keep_headers: Option<&'a BTreeMap<String, Secret>>,
    pub(super) keep_secret: Option<&'a Secret>,
    pub(super) moved: Option<String>,
    pub(super) oauth_set: bool,
}

fn unknown_type(_: &str) -> bool {
    false
}

fn no_block(_: &str) -> Option<String> {
    None
}

/// The context of a body that needs neither the catalogue nor the SSRF check.
pub(crate) const PLAIN: Ctx<'static> = Ctx {
    require_https: false,
    known_event_type: &unknown_type,
    host_blocked: &no_block,
};

impl<'a> Cx<'a> {
    pub(crate) fn new(ctx: &'a Ctx<'a>, now: UnixMs, current: Option<&'a Webhook>) -> Self {
        Self {
            ctx,
            now,
            current,
            stored_url: current.map(|w| w.url.as_str()),
            keep_headers: current.map(|w| &w.headers),
            keep_secret: None,
            moved: None,
            oauth_set: current.is_some_and(|w| w.oauth.is_some()),
        }
    }

    /// The context of the nested `oauth` object: its stored values are the stored
    /// OAuth configuration's.
    pub(super) fn oauth(&self) -> Cx<'a> {
        let stored = self.current.and_then(|w| w.oauth.as_ref());
        Cx {
            current: None,
            stored_url: stored.map(|o| o.token_url.as_str()),
            keep_headers: stored.map(|o| &o.headers),
            keep_secret: stored.map(|o| &o.client_secret),
            oauth_set: false,
            ..Cx::new(self.ctx, self.now, None)
        }
    }
}

/// The fields of a body that passed its table's check.
pub(crate) struct Read {
    table: &'static Table,
    got: Vec<Got>,
}

impl Read {
    fn slot(&mut self, name: &str) -> (Got, Option<Dflt>) {
        let i = self.table.fields.iter().position(|d| d.names[0] == name);
        match i {
            Some(i) => (
                std::mem::replace(&mut self.got[i], Got::Absent),
                self.table.fields[i].default,
            ),
            None => (Got::Absent, None),
        }
    }

    /// The value of field `name` (canonical spelling), or its default; `None` when
    /// left out or null without a default.
    pub(crate) fn take<T: 'static>(&mut self, name: &str) -> Option<T> {
        let v: Val = match self.slot(name) {
            (Got::Val(v), _) => v,
            (_, Some(Dflt::Int(n))) => Box::new(n),
            (_, Some(Dflt::Bool(b))) => Box::new(b),
            _ => return None,
        };
        v.downcast().ok().map(|b| *b)
    }

    /// A PATCH field: `None` when left out, `Some(None)` when null (clear it).
    pub(crate) fn patch<T: 'static>(&mut self, name: &str) -> Option<Option<T>> {
        match self.slot(name).0 {
            Got::Null => Some(None),
            Got::Val(v) => Some(v.downcast().ok().map(|b| *b)),
            Got::Absent | Got::Bad => None,
        }
    }
}

impl Table {
    /// Checks `body` field by field; every reason, or the values.
    pub(crate) fn check(&'static self, body: &Value, cx: &mut Cx) -> Result<Read, Vec<String>> {
        let mut r = Vec::new();
        let read = self.read(body, "", "request body", cx, &mut r);
        if r.is_empty() { Ok(read) } else { Err(r) }
    }

    /// Reads `body` (`what`, its fields named `<prefix><name>`) field by field in
    /// table order, recording reasons in `r`.
    pub(crate) fn read(
        &'static self,
        body: &Value,
        prefix: &str,
        what: &str,
        cx: &mut Cx,
        r: &mut Vec<String>,
    ) -> Read {
        let mut got = Vec::with_capacity(self.fields.len());
        if let Some(mut fields) = Fields::of(body, prefix.to_owned(), what, r) {
            let creating = cx.current.is_none();
            for d in self.fields {
                let need = d.req == Need || (d.req == NeedOnCreate && creating);
                let g = match fields.get(d.names, r) {
                    None => {
                        if need {
                            r.push(format!("{prefix}{} is required", d.names[0]));
                        }
                        Got::Absent
                    }
                    Some(f) if d.req == CreateOnly && !creating => {
                        r.push(format!(
                            "{} cannot be changed here; use POST /v1/webhooks/{{id}}/secrets/rotate",
                            f.name
                        ));
                        Got::Bad
                    }
                    Some(f) if f.is_null() && d.req != Opt => {
                        match d.req {
                            Need => r.push(format!("{prefix}{} is required", d.names[0])),
                            NeedOnCreate => r.push(format!("{} must not be null", f.name)),
                            _ => {}
                        }
                        if matches!(d.req, Null | CreateOnly) {
                            Got::Null
                        } else {
                            Got::Bad
                        }
                    }
                    Some(f) => d.kind.check(&f, cx, r).map_or(Got::Bad, Got::Val),
                };
                if let Kind::OAuth = d.kind {
                    cx.oauth_set = match g {
                        Got::Absent => cx.current.is_some_and(|w| w.oauth.is_some()),
                        Got::Null => false,
                        _ => true,
                    };
                }
                if let (Kind::Headers(_), Got::Absent) = (d.kind, &g) {
                    headers_left_out(cx, r);
                }
                got.push(g);
            }
            fields.finish(r);
        }
        got.resize_with(self.fields.len(), || Got::Absent);
        Read { table: self, got }
    }
}

/// Stored header values left out of a PATCH that moves `url` would follow the
/// webhook to its new host just as masked ones would; `authorization` is still
/// reserved when oauth is (now) set.
fn headers_left_out(cx: &Cx, r: &mut Vec<String>) {
    let Some(w) = cx.current else { return };
    if let Some(why) = &cx.moved {
        for name in w.headers.keys() {
            r.push(format!("headers.{name} must be sent again: {why}"));
        }
    }
    reserved_with_oauth(cx, w.headers.keys().map(String::as_str), r);
}

pub(super) fn reserved_with_oauth<'s>(
    cx: &Cx,
    names: impl Iterator<Item = &'s str>,
    r: &mut Vec<String>,
) {
    for name in names.filter(|n| cx.oauth_set && n.eq_ignore_ascii_case("authorization")) {
        r.push(format!(
            "header {} is reserved when oauth is set",
            quote(name)
        ));
    }
}
