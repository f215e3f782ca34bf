//! hookbox: an embedded, single-binary webhook gateway.
//!
//! The module map (see ARCHITECTURE.md for the data flow and the invariants):
//! - [`config`]: TOML + `HOOKBOX_*` environment -> a validated [`config::Config`].
//! - [`model`]: domain types; no I/O.
//! - [`secrets`]: the master key and the sealing of secrets at rest.
//! - [`store`]: the only code that touches redb (codec, tables, group-commit writer).
//! - [`filter`]: payload filters on webhooks (the language, validation, evaluation); pure.
//! - [`registry`]: the in-memory view of tenants, keys, catalogues and webhooks (matching, auth).
//! - [`api`]: the HTTP API (the only hyper server code).
//! - [`delivery`]: signing, retry schedule, outbound client, scheduler and workers.
//! - [`notify`]: failure emails and operational events.
//! - [`portal`]: the portal page (compiled-in assets, CSP, branding).
//! - [`app`]: wires everything together and owns shutdown.
//! - [`cli`]: the operator's client commands (HTTP calls to a running server).

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod filter;
pub mod model;
pub mod notify;
pub mod portal;
pub mod registry;
pub mod secrets;
pub mod store;
