//! Validates a filter document and compiles it into a tree of conditions with
//! pre-split paths and pre-converted operands, listing every reason it is refused.
//! Never evaluates anything and never panics on any JSON value.

use std::fmt;

use serde_json::Value;

use super::MAX_DEPTH;
use crate::model::parse_rfc3339;

/// A compiled filter object or combinator.
pub(super) enum Node {
    /// Every child holds (a filter object's keys, or `$and`).
    All(Vec<Node>),
    /// At least one child holds (`$or`).
    Any(Vec<Node>),
    /// The child does not hold (`$not`).
    Not(Box<Node>),
    /// One operator on one path.
    Cond(Cond),
}

/// One operator applied to one path.
pub(super) struct Cond {
    pub path: Path,
    pub op: Op,
    /// How the condition reads in explanations: `data.amount $gte 100`.
    pub shown: String,
}

/// Where a condition looks in the delivered body.
pub(super) enum Path {
    /// The event type (a string).
    Type,
    /// The creation time; operands are held as Unix milliseconds.
    Timestamp,
    /// Keys into `data`; empty for the whole payload.
    Data(Vec<Box<str>>),
}

/// A comparison operator.
#[derive(Clone, Copy)]
pub(super) enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// An operator with its checked operand. For [`Path::Timestamp`] every operand but
/// `$prefix`'s is a number of Unix milliseconds.
pub(super) enum Op {
    Eq(Value),
    Ne(Value),
    Cmp(Cmp, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Prefix(String),
}

const OPERATORS: &str = "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $prefix";
const COMBINATORS: &str = "$and, $or, $not";

/// Compiles a whole filter; `None` when any reason was added.
pub(super) fn compile(value: &Value, reasons: &mut Vec<String>) -> Option<Node> {
    filter_object(value, "filter", 1, reasons)
}

fn filter_object(v: &Value, at: &str, depth: usize, reasons: &mut Vec<String>) -> Option<Node> {
    if depth > MAX_DEPTH {
        reasons.push(format!(
            "{at}: nested deeper than {MAX_DEPTH} levels of filter objects"
        ));
        return None;
    }
    let Value::Object(map) = v else {
        reasons.push(format!(
            "{at}: a filter must be a JSON object, got {}",
            kind(v)
        ));
        return None;
    };
    let before = reasons.len();
    let mut nodes = Vec::with_capacity(map.len());
    for (key, val) in map {
        if key.starts_with('$') {
            if let Some(n) = combinator(key, val, at, depth, reasons) {
                nodes.push(n);
            }
        } else if let Some(path) = path(key, at, reasons) {
            conditions(key, &path, val, at, reasons, &mut nodes);
        }
    }
    if reasons.len() > before {
        return None;
    }
    Some(match nodes.len() {
        1 => nodes.pop()?,
        _ => Node::All(nodes),
    })
}

fn combinator(
    key: &str,
    val: &Value,
    at: &str,
    depth: usize,
    reasons: &mut Vec<String>,
) -> Option<Node> {
    match key {
        "$and" | "$or" => {
            let Value::Array(items) = val else {
                reasons.push(format!(
                    "{at}: {key} takes an array of filters, got {}",
                    kind(val)
                ));
                return None;
            };
            if items.is_empty() {
                reasons.push(format!("{at}: {key} must list at least one filter"));
                return None;
            }
            let before = reasons.len();
            let children: Vec<Node> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    filter_object(item, &format!("{at}.{key}[{i}]"), depth + 1, reasons)
                })
                .collect();
            if reasons.len() > before {
                return None;
            }
            Some(if key == "$and" {
                Node::All(children)
            } else {
                Node::Any(children)
            })
        }
        "$not" => filter_object(val, &format!("{at}.$not"), depth + 1, reasons)
            .map(|n| Node::Not(Box::new(n))),
        _ => {
            let hint = if OPERATORS.split(", ").any(|op| op == key) {
                format!(
                    "; {key} is an operator: use it on a path, as {{\"data.x\": {{\"{key}\": ...}}}}"
                )
            } else {
                String::new()
            };
            reasons.push(format!(
                "{at}: unknown combinator \"{key}\" (known: {COMBINATORS}){hint}"
            ));
            None
        }
    }
}

fn path(key: &str, at: &str, reasons: &mut Vec<String>) -> Option<Path> {
    match key {
        "type" => return Some(Path::Type),
        "timestamp" => return Some(Path::Timestamp),
        "data" => return Some(Path::Data(Vec::new())),
        _ => {}
    }
    match key.strip_prefix("data.") {
        Some(rest) => {
            let segments: Vec<Box<str>> = rest.split('.').map(Box::from).collect();
            if segments.iter().any(|s| s.is_empty()) {
                reasons.push(format!("{at}: path \"{key}\" has an empty segment"));
                return None;
            }
            Some(Path::Data(segments))
        }
        None => {
            reasons.push(format!(
                "{at}: unknown path \"{key}\": the delivered body has only \"type\", \"timestamp\" and \"data\" (use \"data.<key>.<key>\" for fields of the payload)"
            ));
            None
        }
    }
}

/// The conditions of one path: a literal (equality) or an operator object.
fn conditions(
    name: &str,
    path: &Path,
    val: &Value,
    at: &str,
    reasons: &mut Vec<String>,
    out: &mut Vec<Node>,
) {
    let ops = match val {
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => m,
        literal => {
            if let Some(op) = operator(name, path, "$eq", literal, at, reasons) {
                out.push(cond(name, path, "$eq", literal, op));
            }
            return;
        }
    };
    let plain: Vec<&str> = ops
        .keys()
        .filter(|k| !k.starts_with('$'))
        .map(String::as_str)
        .collect();
    if !plain.is_empty() {
        reasons.push(format!(
            "{at}: {name}: an operator object may hold only $ keys, but also has {}",
            quoted(&plain)
        ));
    }
    for (op_name, operand) in ops.iter().filter(|(k, _)| k.starts_with('$')) {
        if let Some(op) = operator(name, path, op_name, operand, at, reasons) {
            out.push(cond(name, path, op_name, operand, op));
        }
    }
}

fn cond(name: &str, path: &Path, op_name: &str, operand: &Value, op: Op) -> Node {
    Node::Cond(Cond {
        path: match path {
            Path::Type => Path::Type,
            Path::Timestamp => Path::Timestamp,
            Path::Data(segments) => Path::Data(segments.clone()),
        },
        op,
        shown: format!("{name} {op_name} {operand}"),
    })
}

fn operator(
    name: &str,
    path: &Path,
    op_name: &str,
    operand: &Value,
    at: &str,
    reasons: &mut Vec<String>,
) -> Option<Op> {
    let mut fail = |what: String| {
        reasons.push(format!("{at}: {name}: {op_name} {what}"));
        None
    };
    match op_name {
        "$eq" | "$ne" => {
            let v = match value_operand(path, operand) {
                Ok(v) => v,
                Err(need) => return fail(format!("needs {need}, got {}", kind(operand))),
            };
            Some(if op_name == "$eq" {
                Op::Eq(v)
            } else {
                Op::Ne(v)
            })
        }
        "$gt" | "$gte" | "$lt" | "$lte" => {
            let cmp = match op_name {
                "$gt" => Cmp::Gt,
                "$gte" => Cmp::Gte,
                "$lt" => Cmp::Lt,
                _ => Cmp::Lte,
            };
            let ok = match path {
                Path::Data(_) => matches!(operand, Value::Number(_) | Value::String(_)),
                _ => true,
            };
            match value_operand(path, operand) {
                Ok(v) if ok => Some(Op::Cmp(cmp, v)),
                Ok(_) => fail(format!("needs a number or a string, got {}", kind(operand))),
                Err(need) => fail(format!("needs {need}, got {}", kind(operand))),
            }
        }
        "$in" | "$nin" => {
            let Value::Array(items) = operand else {
                return fail(format!("needs an array, got {}", kind(operand)));
            };
            let mut values = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match value_operand(path, item) {
                    Ok(v) => values.push(v),
                    Err(need) => {
                        ok = false;
                        fail(format!("[{i}] needs {need}, got {}", kind(item)));
                    }
                }
            }
            if !ok {
                return None;
            }
            Some(if op_name == "$in" {
                Op::In(values)
            } else {
                Op::Nin(values)
            })
        }
        "$exists" => match operand {
            Value::Bool(b) => Some(Op::Exists(*b)),
            _ => fail(format!("needs a boolean, got {}", kind(operand))),
        },
        "$prefix" => match operand {
            Value::String(s) => Some(Op::Prefix(s.clone())),
            _ => fail(format!("needs a string, got {}", kind(operand))),
        },
        "$and" | "$or" | "$not" => fail(format!(
            "is a combinator, not an operator: write {{\"{op_name}\": [...]}} around filters on paths"
        )),
        _ => fail(format!("is an unknown operator (known: {OPERATORS})")),
    }
}

/// Checks an operand compared with the value at `path` by equality or order, and
/// converts `timestamp` operands to Unix milliseconds. `Err` says what was needed.
fn value_operand(path: &Path, operand: &Value) -> Result<Value, &'static str> {
    match path {
        Path::Data(_) => Ok(operand.clone()),
        Path::Type => match operand {
            Value::String(_) => Ok(operand.clone()),
            _ => Err("a string (type is a string)"),
        },
        Path::Timestamp => match operand.as_str().and_then(parse_rfc3339) {
            Some(ms) => Ok(Value::from(ms)),
            None => Err("an RFC 3339 timestamp string"),
        },
    }
}

/// How a JSON value's type reads in a reason.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Type => f.write_str("type"),
            Path::Timestamp => f.write_str("timestamp"),
            Path::Data(segments) => {
                f.write_str("data")?;
                for s in segments {
                    write!(f, ".{s}")?;
                }
                Ok(())
            }
        }
    }
}
