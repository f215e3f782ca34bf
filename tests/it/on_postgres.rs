//! The same suite on the other engine: this test runs this very test binary again
//! with `HOOKBOX_TEST_BACKEND=postgres`, so every `TestApp` of the API and delivery
//! suite runs on its own database of the throwaway cluster (`pg_cluster`), and
//! `cargo test --release` covers both engines with one suite (parametrised, not
//! copied). Tests about one engine's own mechanics pin it (`Backend::Redb`) and run
//! on it in both passes; the `pg_*` modules test the PostgreSQL store directly and
//! are not run twice.

use std::process::Command;

#[test]
fn the_api_and_delivery_suite_passes_on_postgres() {
    if crate::helpers::postgres_under_test() {
        // Already the PostgreSQL pass (the parent skips this test by name anyway).
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .env("HOOKBOX_TEST_BACKEND", "postgres")
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
    println!("the suite on PostgreSQL:\n{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "the suite failed on PostgreSQL:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
}
