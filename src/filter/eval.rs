//! Evaluates a compiled filter over one event, and explains a failure. The event's
//! `data` is parsed lazily, at most once per [`Subject`], however many filters are
//! evaluated against it; nothing here allocates per filter except explanations.

use std::cell::{Cell, OnceCell};
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::parse::{Cmp, Cond, Node, Op, Path, kind};
use crate::model::{Event, UnixMs, rfc3339};

/// One event as filters see it: its type, creation time and `data` text. Build one
/// per event and evaluate every filter against it, so `data` is parsed once (the
/// first time a condition needs it) and shared. Not `Sync`: it lives for one
/// matching pass on one thread.
pub struct Subject<'a> {
    event_type: &'a str,
    created_at: UnixMs,
    payload: &'a str,
    type_value: OnceCell<Value>,
    time_value: OnceCell<Value>,
    time_text: OnceCell<String>,
    data: OnceCell<Option<Value>>,
    parses: Cell<u32>,
}

impl<'a> Subject<'a> {
    /// An event of `event_type` created at `created_at` whose `data` is the JSON text
    /// `payload` (as ingested; not parsed here).
    pub fn new(event_type: &'a str, created_at: UnixMs, payload: &'a str) -> Self {
        Subject {
            event_type,
            created_at,
            payload,
            type_value: OnceCell::new(),
            time_value: OnceCell::new(),
            time_text: OnceCell::new(),
            data: OnceCell::new(),
            parses: Cell::new(0),
        }
    }

    /// The subject of a stored or planned event.
    pub fn of(event: &'a Event) -> Self {
        Subject::new(&event.event_type, event.created_at, &event.payload)
    }

    /// How many times `data` was parsed: 0 until a condition on `data` ran, then 1
    /// for good.
    pub fn data_parses(&self) -> u32 {
        self.parses.get()
    }

    fn data(&self) -> Option<&Value> {
        self.data
            .get_or_init(|| {
                self.parses.set(self.parses.get() + 1);
                // Ingest validated it; anything unparsable is treated as absent.
                serde_json::from_str(self.payload).ok()
            })
            .as_ref()
    }

    fn time_text(&self) -> &str {
        self.time_text.get_or_init(|| rfc3339(self.created_at))
    }

    /// The value at `path`, `None` when missing. `timestamp` reads as Unix ms.
    fn resolve(&self, path: &Path) -> Option<&Value> {
        match path {
            Path::Type => Some(
                self.type_value
                    .get_or_init(|| Value::String(self.event_type.to_owned())),
            ),
            Path::Timestamp => Some(self.time_value.get_or_init(|| Value::from(self.created_at))),
            Path::Data(segments) => {
                let mut at = self.data()?;
                for seg in segments {
                    at = match at {
                        Value::Object(m) => m.get(&**seg)?,
                        Value::Array(items) => items.get(index(seg)?)?,
                        _ => return None,
                    };
                }
                Some(at)
            }
        }
    }
}

/// A path segment as an array index: canonical decimal digits only (`0`, `12`, not
/// `012` or `+1`).
fn index(seg: &str) -> Option<usize> {
    let canonical =
        seg == "0" || (!seg.starts_with('0') && seg.bytes().all(|b| b.is_ascii_digit()));
    if !canonical || seg.is_empty() {
        return None;
    }
    seg.parse().ok()
}

/// Whether `node` holds for `s`.
pub(super) fn holds(node: &Node, s: &Subject<'_>) -> bool {
    match node {
        Node::All(children) => children.iter().all(|c| holds(c, s)),
        Node::Any(children) => children.iter().any(|c| holds(c, s)),
        Node::Not(child) => !holds(child, s),
        Node::Cond(c) => cond_holds(c, s),
    }
}

fn cond_holds(c: &Cond, s: &Subject<'_>) -> bool {
    if let Op::Prefix(p) = &c.op {
        return match c.path {
            Path::Timestamp => s.time_text().starts_with(p.as_str()),
            _ => s
                .resolve(&c.path)
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with(p.as_str())),
        };
    }
    let got = s.resolve(&c.path);
    match (&c.op, got) {
        (Op::Exists(want), got) => got.is_some() == *want,
        (Op::Ne(_) | Op::Nin(_), None) => true,
        (_, None) => false,
        (Op::Eq(v), Some(g)) => json_eq(g, v),
        (Op::Ne(v), Some(g)) => !json_eq(g, v),
        (Op::Cmp(cmp, v), Some(g)) => order(g, v).is_some_and(|o| accepts(*cmp, o)),
        (Op::In(vs), Some(g)) => vs.iter().any(|v| json_eq(g, v)),
        (Op::Nin(vs), Some(g)) => !vs.iter().any(|v| json_eq(g, v)),
        (Op::Prefix(_), Some(_)) => false,
    }
}

fn accepts(cmp: Cmp, o: Ordering) -> bool {
    match cmp {
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Gte => o != Ordering::Less,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Lte => o != Ordering::Greater,
    }
}

/// Order between two values of the same kind (numbers or strings); `None` across
/// kinds: nothing is coerced.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

/// JSON equality with numbers compared as numbers (`1 == 1.0`).
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Exact numeric order: integers as integers (no rounding past 2^53), an integer
/// against a float without rounding the integer.
pub(super) fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => int_float(x, b.as_f64()?),
        (None, Some(y)) => int_float(y, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Orders an integer against a finite float exactly.
fn int_float(x: i128, f: f64) -> Option<Ordering> {
    if !f.is_finite() {
        return None;
    }
    // Beyond every i64/u64 (and far from i128's bounds): the sign decides.
    if f >= 1e30 {
        return Some(Ordering::Less);
    }
    if f <= -1e30 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range by the checks above, so the cast is exact.
    match x.cmp(&(whole as i128)) {
        Ordering::Equal => (0.0).partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

/// Adds one reason per failed condition of `node` to `out`.
pub(super) fn explain(node: &Node, s: &Subject<'_>, out: &mut Vec<String>) {
    match node {
        Node::All(children) => {
            for c in children {
                explain(c, s, out);
            }
        }
        Node::Any(children) => {
            if children.iter().any(|c| holds(c, s)) {
                return;
            }
            let mut why = Vec::new();
            for c in children {
                explain(c, s, &mut why);
            }
            out.push(format!("$or: no branch held ({})", why.join("; ")));
        }
        Node::Not(child) => {
            if holds(child, s) {
                out.push(format!(
                    "$not: the negated filter held ({})",
                    describe(child)
                ));
            }
        }
        Node::Cond(c) => {
            if !cond_holds(c, s) {
                out.push(reason(c, s));
            }
        }
    }
}

fn describe(node: &Node) -> String {
    let join =
        |children: &[Node], sep: &str| children.iter().map(describe).collect::<Vec<_>>().join(sep);
    match node {
        Node::All(children) => join(children, " and "),
        Node::Any(children) => format!("({})", join(children, " or ")),
        Node::Not(child) => format!("not ({})", describe(child)),
        Node::Cond(c) => c.shown.clone(),
    }
}

/// Why one condition failed, naming the path and what it held.
fn reason(c: &Cond, s: &Subject<'_>) -> String {
    let path = &c.path;
    let got = match path {
        Path::Timestamp => Some(Value::String(s.time_text().to_owned())),
        _ => s.resolve(path).cloned(),
    };
    let Some(got) = got else {
        return format!("{path} is missing (the filter needs {})", c.shown);
    };
    let shown_got = shorten(&got.to_string());
    let mismatch = match (&c.op, path) {
        (Op::Cmp(_, v), Path::Data(_)) if order(&got, v).is_none() => Some(kind(v)),
        (Op::Prefix(_), Path::Data(_)) if !got.is_string() => Some("a string"),
        _ => None,
    };
    match mismatch {
        Some(needed) => format!(
            "{path} is {shown_got} ({}), but {} applies only to {}: values are not converted across types",
            kind(&got),
            c.shown,
            plural(needed)
        ),
        None => format!("{path} is {shown_got}, which fails {}", c.shown),
    }
}

fn plural(kind: &str) -> String {
    format!(
        "{}s",
        kind.trim_start_matches("an ").trim_start_matches("a ")
    )
}

/// A value's JSON cut to about 80 characters (on a character boundary).
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
