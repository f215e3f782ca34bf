//! Many hookbox nodes on one PostgreSQL (DESIGN.md section 7, issue #16), each a
//! real server on port 0 against a real cluster (`pg_cluster`), delivering over
//! loopback to a real receiver. `spread`: events ingested at any node are
//! delivered, a change made on one node is in force on another within a second, a
//! rate limit holds across nodes. `faults`: a node killed with SIGKILL mid-flight
//! loses no acknowledged event; a database that goes away for a few seconds costs
//! 503s, never an event. `followups`: a webhook is disabled, emailed and announced
//! once whatever node sees its failures; each exhausted delivery is emailed (or
//! counted by the throttle) once. `streak`: a node whose registry lags judges
//! the failure streak on the stored row. `retention`: one node at a time runs retention.
//! `fifo`: FIFO order holds for events ingested at three nodes. `copy`: a stopped
//! redb store copied with `hookbox store copy` serves the same reads and delivers
//! its waiting deliveries. Shared helpers are in `support`.

#[allow(dead_code)]
#[path = "../it/contract.rs"]
mod contract;
#[allow(dead_code, clippy::field_reassign_with_default)]
#[path = "../it/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../it/pg_bouncer.rs"]
mod pg_bouncer;
#[allow(dead_code)]
#[path = "../it/pg_cluster.rs"]
mod pg_cluster;
#[allow(dead_code)]
#[path = "../common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../it/receiver.rs"]
mod receiver;
#[allow(dead_code)]
#[path = "../it/smtp.rs"]
mod smtp;

mod support;

mod copy;
mod faults;
mod fifo;
mod followups;
mod retention;
mod spread;
mod streak;
