//! The end-to-end load benchmark: the real hookbox (`App::build`) with a fresh temp
//! data dir (or a fresh PostgreSQL database), a loopback receiver that answers 200,
//! and a load generator, all over real HTTP on loopback; beside it the null gateway,
//! the ceiling no gateway can beat on this machine. It never asserts timings; it
//! measures and prints one table.
//!
//! ```text
//! cargo run --release --example loadgen -- [--quick] [--runs N] [--nodes N] [--skip LIST] [--json out.json]
//! cargo run --release --example loadgen -- --phase throughput --fanout 1 --events 5000 [--ordering fifo] [--nodes 3]
//! cargo run --release --example loadgen -- --phase ceiling --fanout 10 --events 5000
//! cargo run --release --example loadgen -- --phase latency --rate 50 --secs 10 [--nodes 3]
//! cargo run --release --example loadgen -- --phase pending --count 100000
//! cargo run --release --example loadgen -- --phase drain --count 100000
//! cargo run --release --example loadgen -- --phase steady --rate 200 --secs 1800 --retention 60 [--every 60]
//! ```
//!
//! - `HOOKBOX_LOADGEN_POSTGRES=postgres://...` runs every hookbox phase on
//!   PostgreSQL, a fresh database per phase (PostgreSQL's CPU is then counted too).
//!   `HOOKBOX_LOADGEN_STATEMENTS=unnamed` runs them with `postgres_statements =
//!   "unnamed"` (the mode for poolers in transaction mode).
//! - `--nodes N` (N > 1, PostgreSQL only) adds to the full run the throughput (1 and
//!   10 subscriptions) and 50 ev/s latency phases with N nodes on one database; the
//!   generator's 64 clients are spread over the nodes.
//! - `--runs N` runs the phases N times, interleaved (1, 2, ..., 1, 2, ...), and
//!   prints the median of each figure with its range.
//! - `--phase drain --count N` (not in the full run): N events wait behind a 1/s
//!   rate limit, then the limit is lifted and the drain is timed (deliveries/s).
//! - `--skip a,b` leaves phases out of the full run: `fifo`, `ceiling`, `latency`,
//!   `pending`, `throughput`. `--events1 N`, `--events10 N`, `--events-fifo N` and
//!   `--secs N` (50 ev/s latency) change the sizes (PostgreSQL drains a large
//!   backlog slowly, see BENCHMARKS.md).
//!
//! Each phase runs in a child process (this binary with `--phase ...`), so every RSS
//! figure belongs to one phase only. The child holds hookbox (each node on its own
//! runtime, threads `hookbox-rt`), the receiver and the generator (the main runtime);
//! `rss_base_kib` (measured before hookbox starts) is the share of the generator and
//! receiver. The FIFO phase sends to one webhook with `ordering: "fifo"`: one
//! request at a time, each after the previous one's outcome is committed.

mod common;
mod drain;
mod hookbox;
mod measure;
mod nullgw;
mod phases;
mod receiver;
mod report;
mod steady;

use serde_json::{Value, json};

use report::Agg;

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run_child(args: &[String]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    eprintln!("loadgen: running phase {}", args.join(" "));
    let out = std::process::Command::new(exe)
        .arg("--phase")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({"phase": args.join(" "), "error": format!("{:?}", out.status)}));
    eprintln!("loadgen: {v}");
    v
}

/// Runs one phase in this process and prints its figures as one JSON line.
async fn child(phase: &str, args: &[String]) {
    let n = |name: &str| {
        arg_value(args, name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let nodes = (n("--nodes") as usize).max(1);
    if nodes > 1 && std::env::var("HOOKBOX_LOADGEN_POSTGRES").is_err() {
        println!(
            "{}",
            json!({"phase": phase, "error": "--nodes needs HOOKBOX_LOADGEN_POSTGRES"})
        );
        return;
    }
    let load = |ceiling: bool| phases::Load {
        fanout: n("--fanout") as usize,
        events: n("--events"),
        fifo: arg_value(args, "--ordering").as_deref() == Some("fifo"),
        nodes,
        ceiling,
    };
    let out = match phase {
        "throughput" => phases::throughput(load(false)).await,
        "ceiling" => phases::throughput(load(true)).await,
        "latency" => phases::latency(n("--rate"), n("--secs"), nodes).await,
        "pending" => phases::pending(n("--count")).await,
        "drain" => drain::drain(n("--count")).await,
        "steady" => {
            steady::steady(steady::Steady {
                rate: n("--rate"),
                secs: n("--secs"),
                retention: n("--retention"),
                every: arg_value(args, "--every")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60),
            })
            .await
        }
        other => json!({"error": format!("unknown phase {other}")}),
    };
    println!("{out}");
}

/// The phases of a full (or quick) run, each as its child's arguments.
/// `--events1`, `--events10`, `--events-fifo` and `--secs` (the 50 ev/s latency
/// phase) override the sizes of the mode.
fn plan(args: &[String], quick: bool, nodes: usize, skip: &[String]) -> Vec<Vec<String>> {
    let (e1, efifo, e10, s50, s1k, pending) = if quick {
        ("20000", "5000", "5000", "10", "5", "100000")
    } else {
        ("200000", "20000", "40000", "40", "20", "1000000")
    };
    let size = |name: &str, default: &str| arg_value(args, name).unwrap_or(default.to_owned());
    let (e1, efifo, e10, s50) = (
        size("--events1", e1),
        size("--events-fifo", efifo),
        size("--events10", e10),
        size("--secs", s50),
    );
    let (e1, efifo, e10, s50) = (e1.as_str(), efifo.as_str(), e10.as_str(), s50.as_str());
    let skipped = |name: &str| skip.iter().any(|s| s == name);
    let mut specs: Vec<Vec<&str>> = Vec::new();
    if !skipped("throughput") {
        specs.push(vec!["throughput", "--fanout", "1", "--events", e1]);
    }
    if !skipped("fifo") {
        specs.push(vec![
            "throughput",
            "--fanout",
            "1",
            "--events",
            efifo,
            "--ordering",
            "fifo",
        ]);
    }
    if !skipped("throughput") {
        specs.push(vec!["throughput", "--fanout", "10", "--events", e10]);
    }
    if !skipped("ceiling") {
        specs.push(vec!["ceiling", "--fanout", "1", "--events", e1]);
        specs.push(vec!["ceiling", "--fanout", "10", "--events", e10]);
    }
    if !skipped("latency") {
        specs.push(vec!["latency", "--rate", "50", "--secs", s50]);
        specs.push(vec!["latency", "--rate", "1000", "--secs", s1k]);
    }
    if !skipped("pending") {
        specs.push(vec!["pending", "--count", pending]);
    }
    let n = nodes.to_string();
    if nodes > 1 {
        specs.push(vec![
            "throughput",
            "--fanout",
            "1",
            "--events",
            e1,
            "--nodes",
            &n,
        ]);
        specs.push(vec![
            "throughput",
            "--fanout",
            "10",
            "--events",
            e10,
            "--nodes",
            &n,
        ]);
        specs.push(vec![
            "latency", "--rate", "50", "--secs", s50, "--nodes", &n,
        ]);
    }
    specs
        .into_iter()
        .map(|s| s.into_iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::main]
async fn main() {
    common::micros();
    // `RUST_LOG=hookbox=debug` shows hookbox's own log on stderr.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(phase) = arg_value(&args, "--phase") {
        child(&phase, &args).await;
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runs = arg_value(&args, "--runs")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let nodes = arg_value(&args, "--nodes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    let skip: Vec<String> = arg_value(&args, "--skip")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let specs = plan(&args, quick, nodes, &skip);
    let mut results: Vec<Vec<Value>> = vec![Vec::new(); specs.len()];
    for run in 0..runs {
        for (spec, out) in specs.iter().zip(results.iter_mut()) {
            eprintln!("loadgen: run {} of {runs}", run + 1);
            out.push(run_child(spec));
        }
    }
    let aggs: Vec<Agg> = results.into_iter().map(Agg::of).collect();
    let mode = if quick { "quick" } else { "full" };
    report::print_table(mode, runs, &aggs);
    if let Some(path) = arg_value(&args, "--json") {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let doc = json!({
            "mode": mode,
            "runs": runs,
            "loadavg_at_end": load.trim(),
            "results": aggs.iter().map(|a| a.median.clone()).collect::<Vec<_>>(),
            "phases": specs.iter().zip(&aggs).map(|(s, a)| {
                let mut v = a.to_json();
                v["args"] = json!(s.join(" "));
                v
            }).collect::<Vec<_>>(),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write json");
        eprintln!("loadgen: wrote {path}");
    }
}
