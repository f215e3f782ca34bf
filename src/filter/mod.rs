//! Payload filters (DESIGN.md section 9): the language, its validation and its
//! evaluation over an event's delivered body. Pure: no I/O, no tokio, and nothing
//! from `api`, `store` or `delivery` (they call in here, never the reverse).
//!
//! # The language
//!
//! A filter is a JSON object. Each key is a *path* or a *combinator*; all keys of
//! one object must hold (an implicit `$and`).
//!
//! - Paths: `type` (the event type), `timestamp` (the event's creation time, the
//!   delivered body's `timestamp`), `data` (the whole payload) and `data.<a>.<b>`
//!   (dotted keys into `data`; a segment of decimal digits also indexes an array).
//!   Any other path is refused: the delivered body has nothing else.
//! - A path's value is either a *literal*, meaning equality, or an *operator
//!   object* whose keys all start with `$` (several operators must all hold):
//!   `$eq`, `$ne` (any JSON value), `$gt`, `$gte`, `$lt`, `$lte` (a number or a
//!   string), `$in`, `$nin` (an array), `$exists` (a boolean), `$prefix` (a string).
//!   An object mixing `$` keys and plain keys is refused; to compare with an object
//!   that has `$` keys, there is no way (none is needed by any payload we know).
//! - Combinators: `$and` and `$or` take a non-empty array of filters, `$not` one
//!   filter.
//!
//! # Semantics
//!
//! - Equality is JSON equality: numbers compare as numbers (`1 == 1.0`, exactly, also
//!   for integers beyond 2^53), strings, booleans and `null` by value, arrays element
//!   by element, objects by their key sets and values. There is no implicit "array
//!   contains": `{"data.tags": "a"}` does not match `"tags": ["a"]`; use the whole
//!   array, or an index path (`data.tags.0`).
//! - Order (`$gt`...) compares numbers with numbers and strings with strings (by
//!   Unicode code point). Nothing is coerced across types: the string `"100"` is not
//!   `>= 99`, and a number is never `$prefix`-matched. A comparison across types is
//!   simply false.
//! - `timestamp` operands (except `$prefix`'s) must be RFC 3339 strings and compare
//!   as instants, not as text: `{"timestamp": {"$gte": "2026-01-01T00:00:00Z"}}`
//!   holds for an event created at `2026-01-01T00:00:00.000Z`. `$prefix` matches the
//!   delivered text (`2026-11-30T13:54:32.123Z`, always UTC, milliseconds). `type`
//!   operands must be strings.
//! - A missing path (or `data` that is not valid JSON) satisfies only `$exists:
//!   false`, `$ne` and `$nin`; every other condition on it is false. `null` is a
//!   value: `{"data.x": null}` matches an explicit `null` only, and `$exists: true`
//!   holds for it.
//!
//! # Bounds
//!
//! At most [`MAX_DEPTH`] nested filter objects (the top filter is level 1; each
//! `$and`/`$or`/`$not` element is one level deeper) and [`MAX_BYTES`] bytes of
//! canonical JSON (compact, keys sorted): the text a webhook record stores.

mod eval;
mod parse;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

pub use eval::Subject;
use parse::Node;

/// The deepest nesting of filter objects accepted (the top filter is level 1).
pub const MAX_DEPTH: usize = 8;

/// The largest filter accepted, in bytes of canonical JSON.
pub const MAX_BYTES: usize = 4096;

/// A validated, compiled filter. Cheap to clone; equal when their canonical texts
/// are equal.
#[derive(Clone)]
pub struct Filter {
    source: Arc<str>,
    root: Arc<Node>,
}

impl Filter {
    /// Validates `value` as a filter and compiles it, or lists every reason it is
    /// refused (each prefixed with where in the filter it applies).
    pub fn parse(value: &Value) -> Result<Filter, Vec<String>> {
        let mut reasons = Vec::new();
        let source = match canonical(value) {
            Some(text) => text,
            None => {
                reasons.push(format!(
                    "filter: larger than {MAX_BYTES} bytes as canonical JSON (compact, keys sorted)"
                ));
                String::new()
            }
        };
        let root = parse::compile(value, &mut reasons);
        match root {
            Some(root) if reasons.is_empty() => Ok(Filter {
                source: source.into(),
                root: Arc::new(root),
            }),
            _ => Err(reasons),
        }
    }

    /// Parses a filter from its JSON text (a stored canonical text, or a request).
    pub fn from_json(text: &str) -> Result<Filter, Vec<String>> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| vec![format!("filter: not valid JSON: {e}")])?;
        Filter::parse(&value)
    }

    /// The canonical JSON text (compact, keys sorted): what a record stores and a
    /// read shows.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The filter as a JSON value (for responses).
    pub fn to_value(&self) -> Value {
        // The source was produced from a `Value` by serde_json, so it parses back.
        serde_json::from_str(&self.source).unwrap_or(Value::Null)
    }

    /// Whether the event described by `subject` passes the filter.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        eval::holds(&self.root, subject)
    }

    /// Why the event fails the filter: one human-readable reason per failed
    /// condition, naming its path. Empty exactly when [`Filter::matches`] is true.
    pub fn explain(&self, subject: &Subject<'_>) -> Vec<String> {
        let mut out = Vec::new();
        eval::explain(&self.root, subject, &mut out);
        out
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({})", self.source)
    }
}

/// The canonical JSON text of `value` (compact, keys sorted: serde_json's map is a
/// `BTreeMap` in this build), or `None` past [`MAX_BYTES`]. Writing stops at the
/// limit, so a huge value costs no more than the limit.
fn canonical(value: &Value) -> Option<String> {
    struct Capped(Vec<u8>);
    impl std::io::Write for Capped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len() + buf.len() > MAX_BYTES {
                return Err(std::io::Error::other("over the filter size limit"));
            }
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Capped(Vec::new());
    serde_json::to_writer(&mut w, value).ok()?;
    String::from_utf8(w.0).ok()
}
