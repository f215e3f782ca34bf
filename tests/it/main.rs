//! Integration tests: the real server on port 0, a real redb file in a temp dir,
//! real HTTP over loopback.

mod api;
mod delivery;
mod delivery_ops;
mod delivery_outcomes;
mod email;
mod helpers;
mod receiver;
mod smtp;
