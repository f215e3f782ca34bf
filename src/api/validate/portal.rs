//! Validation of `POST /v1/portal/sessions` bodies. Pure: no I/O, never panics.

use serde_json::Value;

use super::table::{Cx, PLAIN, PORTAL_SESSION};

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
    let mut v = PORTAL_SESSION.check(body, &mut Cx::new(&PLAIN, 0, None))?;
    Ok(PortalSessionSpec {
        read_only: v.take("read_only"),
        ttl_seconds: v.take("ttl_seconds").unwrap_or(DEFAULT_TTL_SECONDS),
    })
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
