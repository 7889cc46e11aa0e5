//! `ssm-preflight check`: wall time and peak RSS of the release binary over
//! repeated runs. Run with `cargo bench --bench check_cli`; budgets and
//! figures are in BENCHMARKS.md.
//!
//! - host checks only, on a fixture root and on the real root;
//! - the same on the agent fixture, without and with the agent and clock
//!   checks answered by a fake systemd and timedated on a private
//!   dbus-daemon: the difference is what the D-Bus checks add.

#[path = "../tests/common/fake_bus.rs"]
#[allow(dead_code)]
mod fake_bus;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 30;

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs the binary once and reads its peak RSS from wait4's rusage.
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_once(root: &Path, config: &Path, only: &str, bus: &str) -> Sample {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ssm-preflight"))
        .args(["check", "--only", only, "--json", "--root"])
        .arg(root)
        .arg("--config")
        .arg(config)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssm-preflight");
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let wall = started.elapsed();
    let code = libc::WEXITSTATUS(status);
    assert!(code <= 2, "check exited {code}: it could not run");
    Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
    }
}

const NO_BUS: &str = "unix:path=/nonexistent/system_bus_socket";

/// Prints the figures and returns the median wall time in milliseconds.
fn report(label: &str, root: &Path, config: &Path, only: &str, bus: &str) -> f64 {
    // One warm-up run so the binary and the files are in the page cache.
    run_once(root, config, only, bus);
    let mut samples: Vec<Sample> = (0..RUNS)
        .map(|_| run_once(root, config, only, bus))
        .collect();
    samples.sort_by_key(|s| s.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[RUNS / 2].wall);
    let p90 = ms(samples[RUNS * 9 / 10].wall);
    let max_rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap() as f64 / 1024.0;
    println!(
        "{label:<34} runs={RUNS} wall median={median:.2} ms p90={p90:.2} ms min={:.2} ms  peak RSS={max_rss:.1} MiB",
        ms(samples[0].wall)
    );
    median
}

fn main() {
    // `cargo test --all-targets` runs benches once in test mode: do nothing then.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let config_dir =
        std::env::temp_dir().join(format!("ssm-preflight-bench-{}", std::process::id()));
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.toml");
    std::fs::write(&config, "").unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fixture: PathBuf = fixtures.join("debian12-clean");
    report("host, fixture root", &fixture, &config, "host", NO_BUS);
    report("host, real root /", Path::new("/"), &config, "host", NO_BUS);

    let bus = fake_bus::PrivateBus::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let usec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let agent = fake_bus::FakeUnit::service("active", "running", 812, 0, usec - 7_200_000_000);
    let _systemd = rt.block_on(fake_bus::serve_systemd(
        &bus.address,
        &[("amazon-ssm-agent.service", agent)],
        false,
    ));
    let _timedate = rt.block_on(fake_bus::serve_timedate(&bus.address, true, true));
    let agent_root = fixtures.join("agent-host");
    let host_only = report(
        "agent fixture, host only",
        &agent_root,
        &config,
        "host",
        &bus.address,
    );
    let with_bus = report(
        "agent fixture, host+agent+clock",
        &agent_root,
        &config,
        "host,agent,clock.sync",
        &bus.address,
    );
    println!(
        "agent and clock checks add {:.2} ms (median against median)",
        with_bus - host_only
    );
    let _ = std::fs::remove_dir_all(&config_dir);
}
