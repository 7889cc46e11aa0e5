//! The idle daemon: resident memory after its start-up run, CPU used while
//! it waits (extrapolated to an hour), and how long `ssm-preflight status`
//! takes against it. Run with `cargo bench --bench daemon_idle`
//! (`SSM_PREFLIGHT_BENCH_IDLE_SECS`, default 120, sets the idle period).
//! Budgets: ≤ 10 MiB RSS, ≤ 0.1 s CPU per idle hour, `status` ≤ 10 ms.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// user + system CPU seconds of a process, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field.
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / ticks_per_second()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let idle: u64 = std::env::var("SSM_PREFLIGHT_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().unwrap();
    let (state, run) = (dir.path().join("state"), dir.path().join("run"));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[window]]\nname = \"production-linux\"\nschedule = \"cron(0 2 ? * SUN#3 *)\"\n",
    )
    .unwrap();
    // SSM_PREFLIGHT_BENCH_BIN measures another build of the binary, such as
    // the packaged one (target/x86_64-unknown-linux-gnu/release/ssm-preflight).
    let bin = std::env::var_os("SSM_PREFLIGHT_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ssm-preflight").into());
    println!("binary: {}", bin.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian12-clean");
    let env = |cmd: &mut Command| {
        cmd.arg("--root")
            .arg(&root)
            .arg("--config")
            .arg(&config)
            .env("STATE_DIRECTORY", &state)
            .env("RUNTIME_DIRECTORY", &run)
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                "unix:path=/nonexistent/system_bus_socket",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut daemon = Command::new(&bin);
    daemon.arg("daemon");
    env(&mut daemon);
    let mut child = daemon.spawn().unwrap();
    let pid = child.id();
    // The start-up run has ended when the state file exists.
    let started = Instant::now();
    while !state.join("state.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no start-up run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss_after_run = rss_kib(pid);
    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(idle));
    let cpu_idle = cpu_seconds(pid) - cpu_before;
    let rss_idle = rss_kib(pid);
    println!(
        "idle daemon: RSS {:.1} MiB after the start-up run, {:.1} MiB after {idle} s idle; CPU {cpu_idle:.3} s in {idle} s idle = {:.3} s per idle hour (budgets 10 MiB, 0.1 s)",
        rss_after_run as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        cpu_idle * 3600.0 / idle as f64
    );

    let mut times = Vec::new();
    for _ in 0..31 {
        let mut status = Command::new(&bin);
        status.arg("status");
        env(&mut status);
        let t = Instant::now();
        assert!(status.status().unwrap().success());
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "ssm-preflight status against the daemon: runs=31 median={:.2} ms p90={:.2} ms (budget 10 ms)",
        times[15].as_secs_f64() * 1000.0,
        times[27].as_secs_f64() * 1000.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
