//! Delivery: signing, the retry schedule, the outbound HTTP client with its SSRF
//! guard, OAuth tokens, and the engine (scheduler, workers, recorder) that drives
//! every delivery to its end. Only the recorder and the engine write to the store.

pub mod client;
mod engine;
pub mod metrics;
pub mod oauth;
mod recorder;
pub mod schedule;
mod scheduler;
pub mod signer;
pub mod ssrf;
pub mod worker;

pub use engine::{Engine, EngineConfig, Work};
