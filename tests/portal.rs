//! Browser tests of the portal: a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/chromium.sh` when missing) driven over
//! WebDriver (fantoccini) against the real server on port 0 with a loopback
//! receiver. Its own test binary, so it runs beside `tests/it`. It never skips
//! itself: without a browser it installs one, and fails if it cannot.

#[allow(dead_code)]
#[path = "it/contract.rs"]
mod contract;
#[allow(dead_code, clippy::field_reassign_with_default)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "it/pg_bouncer.rs"]
mod pg_bouncer;
#[allow(dead_code)]
#[path = "it/pg_cluster.rs"]
mod pg_cluster;
#[allow(dead_code)]
#[path = "it/receiver.rs"]
mod receiver;

#[path = "portal/browser.rs"]
mod browser;
#[path = "portal/flows.rs"]
mod flows;
