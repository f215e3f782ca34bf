//! The HTTP API: routing, auth, wire types, validation and handlers.

pub mod dto;
pub mod validate;
