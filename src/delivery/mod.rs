//! Delivery: signing, the retry schedule, the outbound HTTP client with its SSRF
//! guard, and the scheduler and workers that drive deliveries to their end.

pub mod client;
pub mod schedule;
pub mod signer;
pub mod ssrf;
