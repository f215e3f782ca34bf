//! Delivery: signing, the retry schedule, the outbound HTTP client with its SSRF
//! guard, OAuth tokens, and the engine that drives every delivery to its end. Only
//! the recorder, the follow-up task and the engine write to the store.
//!
//! Module layers (imports only go down; no cycles): `engine` (the public face) ->
//! `scheduler` or `claimloop` (PostgreSQL), `recorder`, `followup` (the tasks) -> `context` (shared handles) ->
//! `dispatch` (pure decisions, with `bucket`), `plan` (new deliveries) -> `msg` (message types) ->
//! `worker` and the pure leaves (`signer`, `schedule`, `client`, `oauth`, `ssrf`).

pub(crate) mod alloc;
mod bucket;
mod claimloop;
pub mod client;
mod context;
mod dispatch;
mod engine;
mod followup;
pub mod metrics;
mod msg;
pub mod oauth;
pub mod plan;
mod recorder;
pub mod schedule;
mod scheduler;
pub mod signer;
pub mod ssrf;
pub mod worker;

pub use context::EngineConfig;
pub use engine::Engine;
pub use followup::{OP_DISABLED, OP_EXHAUSTED};
pub use msg::Work;
pub use plan::{plan_deliveries, wanted};
