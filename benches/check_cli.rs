//! `ssm-preflight check` with the host checks only: wall time and peak RSS
//! of the release binary, over repeated runs, on a fixture root and on the
//! real root. Run with `cargo bench --bench check_cli`; the budget
//! (BENCHMARKS.md) is a median ≤ 20 ms and a peak RSS ≤ 15 MiB.

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
fn run_once(root: &Path, config: &Path) -> Sample {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ssm-preflight"))
        .args(["check", "--only", "host", "--json", "--root"])
        .arg(root)
        .arg("--config")
        .arg(config)
        .env("AWS_EC2_METADATA_DISABLED", "true")
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

fn report(label: &str, root: &Path, config: &Path) {
    // One warm-up run so the binary and the files are in the page cache.
    run_once(root, config);
    let mut samples: Vec<Sample> = (0..RUNS).map(|_| run_once(root, config)).collect();
    samples.sort_by_key(|s| s.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[RUNS / 2].wall);
    let p90 = ms(samples[RUNS * 9 / 10].wall);
    let max_rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap() as f64 / 1024.0;
    println!(
        "{label:<14} runs={RUNS} wall median={median:.2} ms p90={p90:.2} ms min={:.2} ms  peak RSS={max_rss:.1} MiB",
        ms(samples[0].wall)
    );
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
    let fixture: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian12-clean");
    report("fixture root", &fixture, &config);
    report("real root /", Path::new("/"), &config);
    let _ = std::fs::remove_dir_all(&config_dir);
}
