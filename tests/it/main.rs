//! Integration tests: the real server on port 0, a real redb file in a temp dir,
//! real HTTP over loopback.

mod api;
mod delivery;
mod email;
mod helpers;
mod hostile;
mod hostile_raw;
mod isolation;
mod notify;
mod receiver;
mod receiver_auth;
mod smtp;
