//! Human output of the client commands: aligned tables and field lists built from
//! the API's JSON. Text from the server is stripped of control characters so it
//! cannot drive the terminal.

use std::fmt::Write as _;

use serde_json::Value;

/// A `{"data": [...], "next_cursor": ...}` answer as a table, with a hint for the
/// next page.
pub(super) fn list_table(v: &Value, columns: &[(&str, &str)]) -> String {
    let items = v["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = table(columns, items);
    if let Some(next) = v["next_cursor"].as_str() {
        let _ = writeln!(out, "(more: --cursor {})", printable(next));
    }
    out
}

/// Rows of `items` under `columns` (header, field), aligned with two spaces.
pub(super) fn table(columns: &[(&str, &str)], items: &[Value]) -> String {
    if items.is_empty() {
        return "(none)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, f)| cell(&item[*f])).collect())
        .collect();
    let header: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An object's fields as aligned `name  value` lines.
pub(super) fn fields(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return format!("{}\n", cell(v));
    };
    let width = obj.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, val) in obj {
        let _ = writeln!(out, "{k:<width$}  {}", cell(val));
    }
    out
}

/// One value as table text: `-` for null, arrays joined by commas, objects as JSON.
pub(super) fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.is_empty() => "-".to_owned(),
        other => other.to_string(),
    };
    printable(&text)
}

/// Replaces control characters, so text from the server cannot drive the terminal.
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_render_and_strip_control_characters() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(cell(&json!("evil\u{1b}[2J")), "evil?[2J");
    }

    #[test]
    fn tables_align_columns() {
        let items = [
            json!({"id": "a", "name": "Alpha"}),
            json!({"id": "bbbb", "name": null}),
        ];
        let t = table(&[("ID", "id"), ("NAME", "name")], &items);
        assert_eq!(t, "ID    NAME\na     Alpha\nbbbb  -\n");
        assert_eq!(table(&[("ID", "id")], &[]), "(none)\n");
        let page = json!({"data": [], "next_cursor": "c1"});
        assert_eq!(
            list_table(&page, &[("ID", "id")]),
            "(none)\n(more: --cursor c1)\n"
        );
    }
}
