//! `ssm-preflight check`: wall time and peak RSS of the release binary over
//! repeated runs. Run with `cargo bench --bench check_cli`; budgets and
//! figures are in BENCHMARKS.md.
//!
//! - host checks only, on a fixture root and on the real root;
//! - the agent fixture, without and with the agent and clock checks
//!   answered by a fake systemd and timedated on a private dbus-daemon: the
//!   difference is what the D-Bus checks add;
//! - `ec2` mode against a healthy loopback site (fake IMDSv2, four TLS
//!   endpoints, EC2 tags, a repository), every check;
//! - the same with every AWS call answered after 10 ms (`ec2-latency`), as
//!   in a region: what the round trips cost;
//! - `ec2` mode with every endpoint black-holed (TCP accepted, never
//!   answered): the run must end within the endpoint timeout + 0.5 s.
//!
//! - the healthy site's run with and without `repo.signature`: what
//!   verifying the repositories' signatures adds to it.
//!
//! `SSM_PREFLIGHT_BENCH_ONLY=ec2` (or `host`, `dbus`, `ec2-latency`, `signature`, `blackholed`, comma
//! separated) runs only those scenarios; `SSM_PREFLIGHT_BENCH_WRAP` runs
//! the binary under a profiler (`strace -f -c -A -o FILE`);
//! `SSM_PREFLIGHT_BENCH_BIN` runs another binary than the one cargo built.
//!
//! Every run's JSON is read and must be what the scenario claims (a
//! healthy site's checks pass, a black-holed endpoint fails, …): a figure
//! taken from a run that went otherwise would measure something else. Each
//! figure is printed with its budget and "within" or "OVER".

#[path = "common/ec2_site.rs"]
mod ec2_site;
#[path = "../tests/suite/common/fake_aws.rs"]
#[allow(dead_code)]
mod fake_aws;
#[path = "../tests/suite/common/fake_bus.rs"]
#[allow(dead_code)]
mod fake_bus;
#[path = "../tests/suite/common/fake_ssm.rs"]
#[allow(dead_code)]
mod fake_ssm;
#[path = "../tests/suite/common/signed_repo.rs"]
#[allow(dead_code)]
mod signed_repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 30;
const NO_BUS: &str = "unix:path=/nonexistent/system_bus_socket";

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
    /// User and system time of the binary (its own CPU, not the fakes').
    cpu: Duration,
    /// Minor page faults: how much of the binary a run maps (BENCHMARKS.md,
    /// "Hot functions first").
    faults: i64,
}

/// What a scenario's run must show: a check by ID with one of the statuses.
type Expect = &'static [(&'static str, &'static [&'static str])];

/// Runs the command once, reads its peak RSS from wait4's rusage, and
/// checks its JSON against `expect` (and that no check is `error` unless
/// listed): a run that is not what the scenario says is not a figure.
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_once(cmd: &mut Command, out: &Path, expect: Expect) -> Sample {
    let started = Instant::now();
    let child = cmd
        .stdout(std::fs::File::create(out).unwrap())
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
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out).unwrap()).expect("check --json printed JSON");
    let checks = json["checks"].as_array().expect("a checks list");
    assert!(!checks.is_empty(), "no check ran");
    for c in checks {
        let id = c["id"].as_str().unwrap();
        let got = c["status"].as_str().unwrap();
        match expect.iter().find(|(want_id, _)| *want_id == id) {
            Some((_, allowed)) => assert!(
                allowed.contains(&got),
                "{id} is {got}, not {allowed:?}: {}",
                c["summary"]
            ),
            None => assert_ne!(got, "error", "{id} could not look: {}", c["summary"]),
        }
    }
    for (id, _) in expect {
        assert!(checks.iter().any(|c| c["id"] == *id), "{id} did not run");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        faults: usage.ru_minflt,
    }
}

/// Whether `SSM_PREFLIGHT_BENCH_ONLY` (a comma-separated list of `host`,
/// `dbus`, `ec2`, `blackholed`; unset: all) asks for a scenario.
fn wanted(scenario: &str) -> bool {
    std::env::var("SSM_PREFLIGHT_BENCH_ONLY")
        .map(|only| only.split(',').any(|s| s.trim() == scenario))
        .unwrap_or(true)
}

/// The binary with an empty config and no bus; callers add the rest.
/// `SSM_PREFLIGHT_BENCH_WRAP` runs it under another command for a profile
/// (`strace -f -c -A -o /tmp/calls`); the figures then include the wrapper.
fn preflight(root: &Path, config: &Path, args: &[&str]) -> Command {
    // SSM_PREFLIGHT_BENCH_BIN measures another build, or a copy of this one
    // (BENCHMARKS.md, "How the binary's file was written").
    let bin = std::env::var("SSM_PREFLIGHT_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ssm-preflight").to_string());
    let bin = bin.as_str();
    let wrap = std::env::var("SSM_PREFLIGHT_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(wrapper) => {
            let mut c = Command::new(wrapper);
            c.args(words).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(config)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Never the machine's own state file: a run recorded there would
        // change what this run asks (the remembered role, the dry run).
        .env("STATE_DIRECTORY", no_state())
        .env("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
        // Any AWS service not pointed at a fake goes to a loopback port where
        // nothing listens, never to its real name.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    cmd
}

/// An empty state directory: no earlier run recorded.
fn no_state() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// A figure against its budget, in words.
/// The critical path as `-v` prints it, over 11 runs: the slowest chain
/// of dependent requests (identity, then a probe or a call) off the host.
fn print_critical_path(mut make: impl FnMut() -> Command) {
    let mut paths: Vec<(u64, String)> = (0..11)
        .map(|_| {
            let out = make().arg("-v").output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let line = stderr
                .lines()
                .find(|l| l.contains("the AWS side's critical path is "))
                .expect("-v prints the critical path")
                .to_string();
            let rest = line.split("critical path is ").nth(1).unwrap();
            let check = rest.split(' ').next().unwrap().to_string();
            let ms: u64 = rest
                .split(" at ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (ms, check)
        })
        .collect();
    paths.sort();
    println!(
        "  the AWS side's critical path (from -v, 11 runs): median {} ms ({} in that run)",
        paths[5].0, paths[5].1
    );
}

fn against(value: f64, budget: f64, unit: &str) -> String {
    let word = if value <= budget { "within" } else { "OVER" };
    format!("{word} the budget of {budget} {unit}")
}

/// Prints the figures and returns the median wall time in milliseconds and
/// the peak RSS in MiB.
fn report(
    label: &str,
    runs: usize,
    expect: Expect,
    mut make: impl FnMut() -> Command,
) -> (f64, f64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    // One warm-up run so the binary and the files are in the page cache.
    run_once(&mut make(), out.path(), expect);
    let mut samples: Vec<Sample> = (0..runs)
        .map(|_| run_once(&mut make(), out.path(), expect))
        .collect();
    samples.sort_by_key(|s| s.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[runs / 2].wall);
    let p90 = ms(samples[(runs * 9 / 10).min(runs - 1)].wall);
    let max_rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap() as f64 / 1024.0;
    let mut cpu: Vec<Duration> = samples.iter().map(|s| s.cpu).collect();
    cpu.sort();
    let mut faults: Vec<i64> = samples.iter().map(|s| s.faults).collect();
    faults.sort();
    println!(
        "{label:<36} runs={runs} wall median={median:.2} ms p90={p90:.2} ms min={:.2} ms max={:.2} ms  CPU median={:.2} ms  peak RSS={max_rss:.1} MiB  faults median={}",
        ms(samples[0].wall),
        ms(samples[runs - 1].wall),
        ms(cpu[runs / 2]),
        faults[runs / 2],
    );
    (median, max_rss)
}

fn main() {
    // `cargo test --all-targets` runs benches once in test mode: do nothing then.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scratch = tempfile::tempdir().unwrap();
    let empty = scratch.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let debian: PathBuf = fixtures.join("debian12-clean");

    if wanted("host") {
        // The clean Debian fixture: every host check looks and passes.
        const CLEAN_HOST: Expect = &[
            ("disk.root", &["pass"]),
            ("pkg.lock", &["pass"]),
            ("pkg.state", &["pass"]),
            ("reboot.pending", &["pass"]),
            ("os.supported", &["pass"]),
        ];
        let (median, rss) = report("host, fixture root", RUNS, CLEAN_HOST, || {
            preflight(&debian, &empty, &["check", "--only", "host", "--json"])
        });
        println!(
            "  host checks on the fixture: median {median:.2} ms, {}; peak RSS {rss:.1} MiB, {}",
            against(median, 20.0, "ms"),
            against(rss, 15.0, "MiB")
        );
        // This machine's own root: whatever it holds, each check looks (no error).
        let (median, rss) = report(
            "host, real root /",
            RUNS,
            &[("os.supported", &["pass", "fail"])],
            || {
                preflight(
                    Path::new("/"),
                    &empty,
                    &["check", "--only", "host", "--json"],
                )
            },
        );
        println!(
            "  host checks on this machine: median {median:.2} ms, {}; peak RSS {rss:.1} MiB, {}",
            against(median, 20.0, "ms"),
            against(rss, 15.0, "MiB")
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();

    if wanted("dbus") {
        // D-Bus: the agent fixture on a fake systemd and timedated.
        let bus = fake_bus::PrivateBus::start();
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
        let on_bus = |only: &str| {
            let mut cmd = preflight(&agent_root, &empty, &["check", "--only", only, "--json"]);
            cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
            cmd
        };
        let (host_only, _) = report("agent fixture, host only", RUNS, &[], || on_bus("host"));
        let (with_bus, _) = report(
            "agent fixture, host+agent+clock",
            RUNS,
            &[("agent.service", &["pass"]), ("clock.sync", &["pass"])],
            || on_bus("host,agent,clock.sync"),
        );
        println!(
            "  agent and clock checks add {:.2} ms (median against median), {}",
            with_bus - host_only,
            against(with_bus - host_only, 10.0, "ms")
        );
    }

    // The AWS side on loopback: everything healthy.
    let site = ec2_site::healthy(&rt, scratch.path(), &fixtures);
    let silent = site.silent;
    let healthy = scratch.path().join("healthy.toml");
    std::fs::write(&healthy, &site.urls).unwrap();

    let ec2_mode = |config: &Path| {
        let mut cmd = preflight(&site.root, config, &["check", "--json", "--mode", "ec2"]);
        site.aim(&mut cmd);
        cmd
    };
    const HEALTHY: Expect = &[
        ("agent.identity", &["pass"]),
        ("credentials.role", &["pass"]),
        ("credentials.valid", &["pass"]),
        ("endpoint.ssm", &["pass"]),
        ("endpoint.ssmmessages", &["pass"]),
        ("endpoint.ec2messages", &["pass"]),
        ("endpoint.s3", &["pass"]),
        ("repo.reachable", &["pass"]),
        ("repo.signature", &["pass"]),
        ("patchgroup.tag", &["pass"]),
        ("os.supported", &["pass"]),
        ("agent.version", &["pass"]),
        ("ssm.ping", &["pass"]),
        ("patchgroup.baseline", &["pass"]),
        ("patch.sources", &["pass"]),
        ("patch.last_run", &["pass"]),
        ("patch.snapshot", &["pass"]),
        ("payload.reachable", &["pass"]),
    ];
    if wanted("ec2") {
        let (median, rss) = report("ec2 mode, healthy loopback site", RUNS, HEALTHY, || {
            ec2_mode(&healthy)
        });
        // On loopback the wall time is the binary's own work; what the
        // round trips cost is the `ec2-latency` figure's budget (issue #28).
        println!(
            "  every check against a healthy site: median {median:.2} ms, {}; peak RSS {rss:.1} MiB, {}",
            against(median, 50.0, "ms"),
            against(rss, 15.0, "MiB")
        );
        print_critical_path(|| ec2_mode(&healthy));
    }

    if wanted("ec2-latency") {
        // As in a region: every AWS call (IMDS, STS, EC2, SSM, S3, the
        // endpoints' probes) answered 10 ms after it arrives.
        fake_aws::LATENCY_MS.store(10, std::sync::atomic::Ordering::Relaxed);
        // A managed node's run: the daemon recorded one before, so the
        // instance profile's role is remembered (one IMDS trip fewer).
        let recorded = tempfile::tempdir().unwrap();
        let mut first = ec2_mode(&healthy);
        first
            .args(["--report"])
            .env("STATE_DIRECTORY", recorded.path());
        let out = first.output().unwrap();
        assert!(
            recorded.path().join("state.json").is_file(),
            "check --report recorded no run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let remembered = || {
            let mut cmd = ec2_mode(&healthy);
            cmd.env("STATE_DIRECTORY", recorded.path());
            cmd
        };
        let (median, rss) = report(
            "ec2 mode, each AWS call 10 ms, a run recorded before",
            RUNS,
            HEALTHY,
            remembered,
        );
        println!(
            "  every check with 10 ms a call: median {median:.1} ms, {}; peak RSS {rss:.1} MiB, {}",
            against(median, 70.0, "ms"),
            against(rss, 15.0, "MiB")
        );
        print_critical_path(remembered);
        // The node's first run, or the first after its role changed.
        let (median, _) = report(
            "ec2 mode, each AWS call 10 ms, no run recorded",
            RUNS,
            HEALTHY,
            || ec2_mode(&healthy),
        );
        println!("  the same with no run recorded (the role listed first): median {median:.1} ms");
        print_critical_path(|| ec2_mode(&healthy));
        fake_aws::LATENCY_MS.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    if wanted("signature") {
        // What verifying signatures adds to the whole run (#27): every
        // check, with and without `repo.signature` (its InRelease fetched,
        // keyring read, gpgv run), each beside the other checks.
        let without = scratch.path().join("without-signature.toml");
        std::fs::write(
            &without,
            format!("[checks]\ndisable = [\"repo.signature\"]\n{}", site.urls),
        )
        .unwrap();
        let mut others: Vec<(&str, &[&str])> = HEALTHY.to_vec();
        others.retain(|(id, _)| *id != "repo.signature");
        let others: Expect = Box::leak(others.into_boxed_slice());
        let (with, _) = report("ec2 mode, with repo.signature", RUNS, HEALTHY, || {
            ec2_mode(&healthy)
        });
        let (bare, _) = report("ec2 mode, without repo.signature", RUNS, others, || {
            ec2_mode(&without)
        });
        println!(
            "  verifying the signatures adds {:.2} ms to the run, {}",
            with - bare,
            against(with - bare, 5.0, "ms")
        );
    }

    if wanted("blackholed") {
        // Every endpoint black-holed, with the default 3 s endpoint timeout.
        let blackholed = scratch.path().join("blackholed.toml");
        let mut config = String::from("[endpoints.urls]\n");
        for service in ["ssm", "ssmmessages", "ec2messages", "s3"] {
            config.push_str(&format!(
                "{service} = \"https://127.0.0.1:{}\"\n",
                silent.port()
            ));
        }
        std::fs::write(&blackholed, config).unwrap();
        const BLACK_HOLED: Expect = &[
            ("endpoint.ssm", &["fail"]),
            ("endpoint.ssmmessages", &["fail"]),
            ("endpoint.ec2messages", &["fail"]),
            ("endpoint.s3", &["fail"]),
            // Its skew is read from the ssm endpoint's answer, which never comes.
            ("clock.sync", &["skip", "error", "pass"]),
        ];
        // The whole AWS side silent, as behind a firewall that drops it:
        // STS and EC2 too (IMDS, on the link, still answers).
        let silent_url = format!("https://127.0.0.1:{}", silent.port());
        let (median, _) = report(
            "ec2 mode, every AWS endpoint black-holed",
            5,
            BLACK_HOLED,
            || {
                let mut cmd = ec2_mode(&blackholed);
                cmd.env("AWS_ENDPOINT_URL_STS", &silent_url)
                    .env("AWS_ENDPOINT_URL_EC2", &silent_url);
                cmd
            },
        );
        println!(
            "  the black-holed run ends {:.0} ms after the 3 s endpoint timeout, {}",
            median - 3000.0,
            against(median - 3000.0, 100.0, "ms")
        );
    }
}
