//! Event ingest bodies (single and batch), the hot path: a derived deserializer
//! with a `RawValue` for `data`, so the payload is kept byte-for-byte and never
//! parsed into a tree. Pure: no I/O (the catalogue check is the handler's).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::fields::check_channel_list;
use super::*;

#[derive(Debug, Clone)]
pub struct EventSpec {
    /// Not yet checked against the catalogue: the handler does that with the store.
    pub event_type: String,
    /// The payload exactly as the client sent it.
    pub data: Box<RawValue>,
    /// No duplicates, in the order given.
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
}

/// The wire shape of one event. Every field is optional here so that the checks
/// below can report all missing fields at once instead of serde's first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an event object")]
struct RawEvent {
    #[serde(rename = "type", alias = "event_type", alias = "eventType")]
    event_type: Option<String>,
    /// `Some` whenever the key is present, even for `"data": null`.
    #[serde(default, deserialize_with = "present_raw")]
    data: Option<Box<RawValue>>,
    channels: Option<Vec<String>>,
    #[serde(alias = "idempotencyKey")]
    idempotency_key: Option<String>,
}

/// Deserializes a present value (including `null`) as raw JSON, so that a
/// missing `data` and `"data": null` stay distinguishable.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Turns a serde error into one reason: a syntax error means the bytes are not
/// JSON; anything else means JSON of the wrong shape.
fn serde_reason(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!("invalid request: {e}"),
        _ => format!("invalid JSON: {e}"),
    }
}

/// Checks an idempotency key: 1..=256 characters, none of them a control
/// character.
pub(super) fn check_idempotency_key(name: &str, key: &str, r: &mut Vec<String>) -> bool {
    let n = key.chars().count();
    let ok = (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&n);
    if !ok {
        r.push(format!(
            "{name} must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
        ));
    }
    ok && no_control_chars(name, key, r)
}

/// The field checks of one parsed event.
fn check_event(ev: RawEvent, header_key: Option<&str>) -> Result<EventSpec, Vec<String>> {
    let mut r = Vec::new();
    match &ev.event_type {
        None => r.push("type is required".to_owned()),
        Some(t) if t.is_empty() => r.push("type must not be empty".to_owned()),
        Some(t) if t.chars().count() > MAX_EVENT_TYPE_LEN => r.push(format!(
            "type must be at most {MAX_EVENT_TYPE_LEN} characters"
        )),
        Some(_) => {}
    }
    match &ev.data {
        None => r.push("data is required".to_owned()),
        // A raw value is skipped over, not parsed, so serde_json's recursion limit
        // never saw it: without this check a 100k-deep payload would be stored,
        // then read back as null and break receivers that parse recursively.
        Some(data) if nests_deeper_than(data.get(), MAX_DATA_DEPTH) => r.push(format!(
            "data must not nest arrays and objects more than {MAX_DATA_DEPTH} levels deep"
        )),
        Some(_) => {}
    }
    let channels = match &ev.channels {
        Some(cs) => check_channel_list("channels", cs.iter().map(|c| Some(c.as_str())), &mut r),
        None => Some(Vec::new()),
    };
    if let Some(k) = header_key {
        check_idempotency_key("Idempotency-Key header", k, &mut r);
    }
    if let Some(k) = &ev.idempotency_key {
        check_idempotency_key("idempotency_key", k, &mut r);
        if header_key.is_some_and(|h| h != k) {
            r.push(
                "idempotency_key differs from the Idempotency-Key header; send one or make them equal"
                    .to_owned(),
            );
        }
    }
    match (ev.event_type, ev.data, channels) {
        (Some(event_type), Some(data), Some(channels)) if r.is_empty() => Ok(EventSpec {
            event_type,
            data,
            channels,
            idempotency_key: ev.idempotency_key.or_else(|| header_key.map(str::to_owned)),
        }),
        _ => Err(r),
    }
}

/// Whether the JSON text `json` (known to be valid) nests arrays and objects more
/// than `max` levels deep. One pass over the bytes, skipping string contents.
pub(super) fn nests_deeper_than(json: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Validates one `POST /v1/events` body, keeping `data` byte-for-byte. The
/// `Idempotency-Key` header, when given, must agree with any body key. Whether the
/// type is catalogued is the handler's check.
pub fn event_create(
    raw: &[u8],
    header_idempotency_key: Option<&str>,
) -> Result<EventSpec, Vec<String>> {
    parse_event(raw, "request body")
        .map_err(|reason| vec![reason])
        .and_then(|ev| check_event(ev, header_idempotency_key))
}

/// The first byte that is not JSON whitespace.
fn first_byte(raw: &[u8]) -> Option<u8> {
    raw.iter().find(|b| !b.is_ascii_whitespace()).copied()
}

/// Parses one event object. serde's derive would also accept a JSON array of the
/// fields in order, so anything but an object is refused up front.
fn parse_event(raw: &[u8], what: &str) -> Result<RawEvent, String> {
    if first_byte(raw) != Some(b'{') {
        return Err(format!("{what} must be a JSON object"));
    }
    serde_json::from_slice(raw).map_err(|e| serde_reason(&e))
}

/// The `{"events": [...]}` form of a batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with an \"events\" array")]
struct RawBatch {
    events: Vec<Box<RawValue>>,
}

/// Validates a `POST /v1/events/batch` body: `{"events": [...]}` or a bare array
/// of 1..=1000 events. Reasons of an item are prefixed `events[i]: `. Idempotency
/// keys must be distinct within a batch.
pub fn event_batch(raw: &[u8]) -> Result<Vec<EventSpec>, Vec<String>> {
    let items: Vec<Box<RawValue>> = match first_byte(raw) {
        Some(b'[') => serde_json::from_slice(raw),
        Some(b'{') => serde_json::from_slice::<RawBatch>(raw).map(|b| b.events),
        _ => {
            return Err(vec![
                "request body must be {\"events\": [...]} or a JSON array of events".to_owned(),
            ]);
        }
    }
    .map_err(|e| vec![serde_reason(&e)])?;
    if items.is_empty() {
        return Err(vec!["events must contain at least 1 element".to_owned()]);
    }
    if items.len() > MAX_BATCH {
        return Err(vec![format!(
            "events must contain no more than {MAX_BATCH} elements"
        )]);
    }
    let mut r = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        // Each item was already checked to be JSON, so only shape errors remain.
        let parsed = parse_event(item.get().as_bytes(), "event")
            .map_err(|reason| vec![reason])
            .and_then(|ev| check_event(ev, None));
        match parsed {
            Ok(spec) => {
                if let Some(k) = &spec.idempotency_key {
                    if let Some(j) = keys.get(k) {
                        r.push(format!(
                            "events[{i}]: idempotency_key repeats the one of events[{j}]"
                        ));
                    } else {
                        keys.insert(k.clone(), i);
                    }
                }
                out.push(spec);
            }
            Err(reasons) => r.extend(reasons.into_iter().map(|x| format!("events[{i}]: {x}"))),
        }
    }
    if r.is_empty() { Ok(out) } else { Err(r) }
}
