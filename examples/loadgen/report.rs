//! Turning the children's JSON figures into the result: the median, minimum and
//! maximum of each figure over the runs of one phase, and the printed table (with
//! every end-to-end figure also as a share of the null-gateway ceiling). It runs
//! nothing and measures nothing.

use serde_json::{Map, Value, json};

/// One phase's figures over its runs.
pub struct Agg {
    /// Median of every numeric figure (other fields from the first run).
    pub median: Value,
    /// Smallest value of every numeric figure.
    pub min: Value,
    /// Largest value of every numeric figure.
    pub max: Value,
    /// Every run's figures, in order.
    pub runs: Vec<Value>,
}

impl Agg {
    /// Aggregates `runs` (at least one) of one phase.
    pub fn of(runs: Vec<Value>) -> Agg {
        let first = runs.first().cloned().unwrap_or(Value::Null);
        let (mut median, mut min, mut max) = (Map::new(), Map::new(), Map::new());
        if let Value::Object(fields) = &first {
            for (k, v) in fields {
                let mut xs: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
                if !v.is_number() || xs.len() != runs.len() {
                    median.insert(k.clone(), v.clone());
                    continue;
                }
                xs.sort_by(f64::total_cmp);
                let n = xs.len();
                let mid = if n % 2 == 1 {
                    xs[n / 2]
                } else {
                    (xs[n / 2 - 1] + xs[n / 2]) / 2.0
                };
                median.insert(k.clone(), json!(mid));
                min.insert(k.clone(), json!(xs[0]));
                max.insert(k.clone(), json!(xs[n - 1]));
            }
        }
        Agg {
            median: Value::Object(median),
            min: Value::Object(min),
            max: Value::Object(max),
            runs,
        }
    }

    /// The JSON of this phase: medians, minima, maxima and every run.
    pub fn to_json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "runs": self.runs})
    }

    /// Figure `k` with `dec` decimals, and its range when there was more than one
    /// run ("n/a" when missing).
    fn num(&self, k: &str, dec: usize) -> String {
        let Some(m) = self.median[k].as_f64() else {
            return "n/a".into();
        };
        if self.runs.len() < 2 {
            return format!("{m:.dec$}");
        }
        let lo = self.min[k].as_f64().unwrap_or(f64::NAN);
        let hi = self.max[k].as_f64().unwrap_or(f64::NAN);
        format!("{m:.dec$} [{lo:.dec$}-{hi:.dec$}]")
    }

    fn f(&self, k: &str) -> f64 {
        self.median[k].as_f64().unwrap_or(f64::NAN)
    }
}

/// The aggregated phase whose median matches every `(key, value)` of `want`.
fn find<'a>(aggs: &'a [Agg], want: &[(&str, Value)]) -> Option<&'a Agg> {
    let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    aggs.iter()
        .find(|a| want.iter().all(|(k, v)| same(&a.median[*k], v)))
}

fn share(x: f64, of: f64) -> String {
    if x.is_finite() && of.is_finite() && of > 0.0 {
        format!("{:.0} %", 100.0 * x / of)
    } else {
        String::new()
    }
}

/// CPU per event: the gateway's, PostgreSQL's (when on it) and both.
fn cpu(a: &Agg) -> String {
    if a.median["cpu_postgres_ms_per_event"].is_number() {
        format!(
            "{} + {} = {}",
            a.num("cpu_gateway_ms_per_event", 3),
            a.num("cpu_postgres_ms_per_event", 3),
            a.num("cpu_both_ms_per_event", 3)
        )
    } else {
        a.num("cpu_gateway_ms_per_event", 3)
    }
}

/// Prints the table: metric, measured (median [min-max] over the runs), share of
/// the ceiling, target.
pub fn print_table(mode: &str, runs: usize, aggs: &[Agg]) {
    let empty = Agg::of(vec![json!({})]);
    let get = |want: &[(&str, Value)]| find(aggs, want).unwrap_or(&empty);
    let store = aggs
        .iter()
        .find_map(|a| a.median["store"].as_str().filter(|s| *s != "none"))
        .unwrap_or("redb");
    let tp = |fanout: u64, nodes: u64| {
        get(&[
            ("phase", json!("throughput")),
            ("fanout", json!(fanout)),
            ("ordering", json!("none")),
            ("nodes", json!(nodes)),
        ])
    };
    let ceil = |fanout: u64| get(&[("phase", json!("ceiling")), ("fanout", json!(fanout))]);
    let lat = |rate: u64, nodes: u64| {
        get(&[
            ("phase", json!("latency")),
            ("rate", json!(rate)),
            ("nodes", json!(nodes)),
        ])
    };
    let fifo = get(&[("phase", json!("throughput")), ("ordering", json!("fifo"))]);
    let pend = get(&[("phase", json!("pending"))]);
    let mib = |a: &Agg, k: &str| format!("{:.1}", a.f(k) / 1024.0);
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |m: String, v: String, c: String, t: &str| rows.push([m, v, c, t.to_owned()]);

    for fanout in [1u64, 10] {
        let (t, c) = (tp(fanout, 1), ceil(fanout));
        let subs = if fanout == 1 { "1 sub" } else { "10 subs" };
        row(
            format!("null gateway (ceiling), {subs}: deliveries/s"),
            c.num("deliveries_per_s", 0),
            "100 %".into(),
            "",
        );
        row(
            format!("null gateway, {subs}: e2e p50 / p99 at max load (ms)"),
            format!("{} / {}", c.num("e2e_p50_ms", 2), c.num("e2e_p99_ms", 2)),
            String::new(),
            "",
        );
        row(
            format!("ingest, {subs}, {:.0} events (events/s 202)", t.f("events")),
            t.num("ingest_events_per_s", 0),
            String::new(),
            "",
        );
        row(
            format!("end to end, {subs} (events/s delivered)"),
            t.num("end_to_end_events_per_s", 0),
            String::new(),
            if fanout == 1 { "15,000" } else { "4,000" },
        );
        row(
            format!("deliveries/s, {subs}"),
            t.num("deliveries_per_s", 0),
            share(t.f("deliveries_per_s"), c.f("deliveries_per_s")),
            if fanout == 1 {
                ">= 85 % of ceiling"
            } else {
                ">= 75 % of ceiling"
            },
        );
        row(
            format!("e2e p50 / p99 at max load, {subs} (ms)"),
            format!("{} / {}", t.num("e2e_p50_ms", 2), t.num("e2e_p99_ms", 2)),
            format!(
                "ceiling {:.2} / {:.2}",
                c.f("e2e_p50_ms"),
                c.f("e2e_p99_ms")
            ),
            if fanout == 1 { "p99 < 100" } else { "" },
        );
        row(
            format!("drain after last ack, {subs} (s)"),
            t.num("drain_after_last_ack_s", 2),
            String::new(),
            "",
        );
        row(
            format!("CPU per event at max load, {subs} (ms; hookbox [+ PG = both])"),
            cpu(t),
            format!("ceiling {:.3}", c.f("cpu_gateway_ms_per_event")),
            "",
        );
        if fanout == 1 {
            row(
                format!(
                    "end to end, 1 FIFO sub, {:.0} events (events/s delivered)",
                    fifo.f("events")
                ),
                fifo.num("end_to_end_events_per_s", 0),
                String::new(),
                "one request at a time",
            );
        }
    }
    let (l50, l1k) = (lat(50, 1), lat(1000, 1));
    for (l, rate, target) in [(l50, 50, "<=1 / <=3"), (l1k, 1000, "p99 <=5")] {
        row(
            format!("latency @{rate} ev/s p50 / p99 / p99.9 (ms)"),
            format!(
                "{} / {} / {}",
                l.num("p50_ms", 2),
                l.num("p99_ms", 2),
                l.num("p999_ms", 2)
            ),
            String::new(),
            target,
        );
        row(
            "  same run: fdatasync / fsync of 100 B in the data dir, p50 / p99 (ms)".into(),
            format!(
                "{} / {}; {} / {}",
                l.num("fdatasync_p50_ms", 2),
                l.num("fdatasync_p99_ms", 2),
                l.num("fsync_p50_ms", 2),
                l.num("fsync_p99_ms", 2)
            ),
            format!(
                "p99 - fdatasync p50: {}",
                l.num("p99_minus_fdatasync_p50_ms", 2)
            ),
            "p99 <= one fsync + 0.5",
        );
        row(
            format!("  CPU per event @{rate} ev/s (ms; hookbox [+ PG = both])"),
            cpu(l),
            String::new(),
            if rate == 50 { "<= 0.5" } else { "" },
        );
    }
    row(
        "202 ack @50 ev/s p50 / p99 (ms)".into(),
        format!(
            "{} / {}",
            l50.num("ack_p50_ms", 2),
            l50.num("ack_p99_ms", 2)
        ),
        String::new(),
        "",
    );
    let t1 = tp(1, 1);
    row(
        "RSS idle, process incl. generator (MiB)".into(),
        format!(
            "{} (generator alone {})",
            mib(t1, "rss_idle_kib"),
            mib(t1, "rss_base_kib")
        ),
        String::new(),
        "<=30",
    );
    row(
        "peak RSS, 1 sub / 10 subs run (MiB)".into(),
        format!(
            "{} / {}",
            mib(t1, "rss_peak_kib"),
            mib(tp(10, 1), "rss_peak_kib")
        ),
        String::new(),
        "",
    );
    // The pending phase, when run.
    if find(aggs, &[("phase", json!("pending"))]).is_some() {
        row(
            format!("batch ingest, {:.0} events (events/s)", pend.f("events")),
            pend.num("batch_ingest_events_per_s", 0),
            String::new(),
            "150,000",
        );
        row(
            format!("RSS with {:.0} pending (MiB)", pend.f("pending")),
            format!(
                "{} (peak {})",
                mib(pend, "rss_pending_kib"),
                mib(pend, "rss_peak_kib")
            ),
            String::new(),
            "<=100 @1M",
        );
        row(
            "data file per million deliveries (MiB)".into(),
            pend.num("data_file_mib_per_million", 0),
            String::new(),
            "",
        );
        row(
            "restart: App::build / first delivery (s)".into(),
            format!(
                "{} / {}",
                pend.num("restart_build_s", 3),
                pend.num("restart_first_delivery_s", 3)
            ),
            String::new(),
            "<1 @1M",
        );
    }
    // Several nodes on one PostgreSQL, when run.
    for a in aggs.iter().filter(|a| a.f("nodes") > 1.0) {
        let n = a.f("nodes");
        if a.median["phase"] == "latency" {
            row(
                format!("{n} nodes: latency @{:.0} ev/s p50 / p99 (ms)", a.f("rate")),
                format!("{} / {}", a.num("p50_ms", 2), a.num("p99_ms", 2)),
                String::new(),
                "",
            );
            row(
                format!("{n} nodes: CPU per event @{:.0} ev/s (ms)", a.f("rate")),
                cpu(a),
                String::new(),
                "",
            );
        } else {
            let fanout = a.f("fanout") as u64;
            let c = ceil(fanout);
            row(
                format!("{n} nodes, {fanout} sub(s): deliveries/s (duplicates)"),
                format!(
                    "{} ({})",
                    a.num("deliveries_per_s", 0),
                    a.num("duplicates", 0)
                ),
                share(a.f("deliveries_per_s"), c.f("deliveries_per_s")),
                "",
            );
            row(
                format!("{n} nodes, {fanout} sub(s): e2e p50 / p99 (ms)"),
                format!("{} / {}", a.num("e2e_p50_ms", 2), a.num("e2e_p99_ms", 2)),
                String::new(),
                "",
            );
            row(
                format!("{n} nodes, {fanout} sub(s): CPU per event (ms)"),
                cpu(a),
                String::new(),
                "",
            );
        }
    }
    let ranges = if runs > 1 {
        format!(", median [min-max] of {runs} interleaved runs")
    } else {
        String::new()
    };
    println!("\nhookbox loadgen ({mode}, store {store}{ranges})\n");
    println!("| metric | measured | of ceiling | target |\n|---|---|---|---|");
    for [m, v, c, t] in rows {
        println!("| {m} | {v} | {c} | {t} |");
    }
}
