//! `ssm-preflight fleet` over 10,000 nodes in four patch groups against the
//! fake fleet with 20 ms per call: wall time, peak RSS and calls made,
//! against the budget (≤ 10 s, ≤ 60 MiB, calls within 2·(nodes/50) + one
//! per non-compliant node + the windows' few). Run with
//! `cargo bench --bench fleet_view`; figures in BENCHMARKS.md.
//!
//! Two sites: SSM answering every call, and SSM throttling by rate (400
//! calls a second, bursts of 50), whose throttled calls are retried after a
//! jittered backoff. Every run's JSON is checked against the fleet's known counts.

#[path = "../tests/suite/common/fake_aws.rs"]
#[allow(dead_code)]
mod fake_aws;
#[path = "../tests/suite/common/fake_fleet.rs"]
#[allow(dead_code)]
mod fake_fleet;
#[path = "../tests/suite/common/fake_ssm.rs"]
#[allow(dead_code)]
mod fake_ssm;

use fake_fleet::{Fleet, RateLimit, BATCH, DEV, PRODUCTION, STAGING};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const PER_GROUP: usize = 2500;

// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_once(addr: std::net::SocketAddr, out: &std::path::Path) -> (Duration, f64) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ssm-preflight"))
        .args(["fleet", "--json"])
        .args([
            "--patch-group",
            PRODUCTION,
            "--patch-group",
            STAGING,
            "--patch-group",
            DEV,
            "--patch-group",
            BATCH,
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))
        .env("AWS_ACCESS_KEY_ID", fake_ssm::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", fake_ssm::SECRET_KEY)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let wall = started.elapsed();
    assert_eq!(
        libc::WEXITSTATUS(status),
        2,
        "the synthetic fleet has one group over"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    for (name, want) in fake_fleet::expected(PER_GROUP) {
        let g = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["patch_group"] == name)
            .unwrap();
        let got = ["ready", "blocked", "stale", "silent", "offline"]
            .map(|k| g["counts"][k].as_u64().unwrap() as usize);
        assert_eq!(
            got, want,
            "{name}: a run that counted otherwise is no figure"
        );
    }
    (wall, usage.ru_maxrss as f64 / 1024.0)
}

fn site(rt: &tokio::runtime::Runtime, label: &str, limit: Option<RateLimit>) {
    let mut fleet = Fleet::synthetic(PER_GROUP, 0);
    fleet.latency = Duration::from_millis(20);
    fleet.rate_limit = limit;
    let non_compliant = fleet.fresh_non_compliant();
    let nodes = fleet.nodes.len();
    let (state, addr) = rt.block_on(fake_fleet::start(fleet));
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut samples = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..RUNS {
        let before = {
            let s = state.lock().unwrap();
            (s.total_calls(), s.throttled)
        };
        samples.push(run_once(addr, out.path()));
        let s = state.lock().unwrap();
        calls.push((s.total_calls() - before.0, s.throttled - before.1));
    }
    samples.sort_by_key(|s| s.0);
    let median = samples[RUNS / 2].0.as_secs_f64();
    let rss = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let (total, throttled) = calls[0];
    let answered = total - throttled;
    let formula = 2 * nodes.div_ceil(50) + non_compliant + 7 * 4;
    let word = |ok: bool| if ok { "within" } else { "OVER" };
    println!(
        "{label:<44} runs={RUNS} wall median={median:.2} s min={:.2} s max={:.2} s  peak RSS={rss:.1} MiB  calls={answered} (+{throttled} throttled)",
        samples[0].0.as_secs_f64(),
        samples[RUNS - 1].0.as_secs_f64()
    );
    println!(
        "  {nodes} nodes: median {median:.2} s, {} the budget of 10 s; peak RSS {rss:.1} MiB, {} the budget of 60 MiB; {answered} calls answered, {} the formula's {formula}",
        word(median <= 10.0),
        word(rss <= 60.0),
        word(answered <= formula)
    );
}

fn main() {
    // `cargo test --all-targets` runs benches once in test mode: do nothing then.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    site(&rt, "10,000 nodes, 20 ms a call", None);
    site(
        &rt,
        "10,000 nodes, 20 ms a call, throttled at 400/s",
        Some(RateLimit::new(400.0, 50.0)),
    );
}
