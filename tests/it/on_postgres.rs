//! The same suite on the other engine: each test here runs this very test binary
//! again with `HOOKBOX_TEST_BACKEND` set, so every `TestApp` of the API and delivery
//! suite runs on its own database of the throwaway cluster (`pg_cluster`), directly
//! (`postgres`) and through PgBouncer in transaction mode with unnamed statements
//! (`pgbouncer`, see `pg_bouncer`), and `cargo test --release` covers both engines
//! with one suite (parametrised, not copied). Tests about one engine's own mechanics
//! pin it (`Backend::Redb`) and run on it in every pass; the `pg_*` modules test the
//! PostgreSQL store directly and are not run again.

use std::process::Command;

/// Runs the suite with `HOOKBOX_TEST_BACKEND=backend` and fails with its output
/// when it fails.
fn suite_on(backend: &str) {
    if crate::helpers::postgres_under_test() {
        // Already a PostgreSQL pass (the parent skips these tests by name anyway).
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .env("HOOKBOX_TEST_BACKEND", backend)
        .args([
            "--test-threads",
            "2",
            "--skip",
            "on_postgres::",
            "--skip",
            "pg_",
        ])
        .output()
        .expect("run the suite on PostgreSQL");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test result:") || l.contains("FAILED") || l.contains("panicked"))
        .collect();
    println!("the suite on {backend}:\n{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "the suite failed on {backend}:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_api_and_delivery_suite_passes_on_postgres() {
    suite_on("postgres");
}

#[test]
fn the_api_and_delivery_suite_passes_behind_pgbouncer_in_transaction_mode() {
    suite_on("pgbouncer");
}
