//! Notifications: failure emails over SMTP and operational events.

pub mod email;
