//! Validation of `POST /v1/portal/sessions` bodies. Pure: no I/O, never panics.

use serde_json::Value;

use super::{Fields, whole_number};

/// Shortest portal session, in seconds.
pub const MIN_TTL_SECONDS: u64 = 60;
/// Longest portal session: 24 h.
pub const MAX_TTL_SECONDS: u64 = 24 * 3600;
/// A session's lifetime when the body names none: 1 h.
pub const DEFAULT_TTL_SECONDS: u64 = 3600;

/// A valid session request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSessionSpec {
    /// `None` when the body did not say (the caller's scopes decide).
    pub read_only: Option<bool>,
    pub ttl_seconds: u64,
}

/// Checks a session request, listing every reason.
pub fn portal_session_create(body: &Value) -> Result<PortalSessionSpec, Vec<String>> {
    let mut r = Vec::new();
    let Some(mut fields) = Fields::of(body, String::new(), "request body", &mut r) else {
        return Err(r);
    };
    let read_only = match fields.get(&["read_only"], &mut r) {
        Some(f) if !f.is_null() => match f.value.as_bool() {
            Some(b) => Some(b),
            None => {
                r.push(format!("{} must be true or false", f.name));
                None
            }
        },
        _ => None,
    };
    let ttl_seconds = match fields.get(&["ttl_seconds"], &mut r) {
        Some(f) if !f.is_null() => match whole_number(f.value) {
            Some(n) if (MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&n) => n,
            _ => {
                r.push(format!(
                    "{} must be a whole number of seconds from {MIN_TTL_SECONDS} to \
                     {MAX_TTL_SECONDS} (24 h)",
                    f.name
                ));
                DEFAULT_TTL_SECONDS
            }
        },
        _ => DEFAULT_TTL_SECONDS,
    };
    fields.finish(&mut r);
    if r.is_empty() {
        Ok(PortalSessionSpec {
            read_only,
            ttl_seconds,
        })
    } else {
        Err(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn portal_session_bodies() {
        assert_eq!(
            portal_session_create(&json!({})),
            Ok(PortalSessionSpec {
                read_only: None,
                ttl_seconds: 3600
            })
        );
        assert_eq!(
            portal_session_create(&json!({"read_only": true, "ttl_seconds": 86400})),
            Ok(PortalSessionSpec {
                read_only: Some(true),
                ttl_seconds: 86400
            })
        );
        let r = portal_session_create(
            &json!({"read_only": "yes", "ttl_seconds": 86401, "scope": "admin"}),
        )
        .unwrap_err();
        assert_eq!(
            r,
            [
                "read_only must be true or false",
                "ttl_seconds must be a whole number of seconds from 60 to 86400 (24 h)",
                "unknown field \"scope\"",
            ]
        );
        for bad in [json!(59), json!(-1), json!(1.5), json!("3600")] {
            assert!(
                portal_session_create(&json!({"ttl_seconds": bad})).is_err(),
                "{bad}"
            );
        }
        assert!(portal_session_create(&json!([])).is_err());
    }
}
