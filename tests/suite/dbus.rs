//! The agent and clock checks against a fake systemd and timedated on a
//! private dbus-daemon: the real protocol, systemd's names and types.

use crate::common;

use common::fake_bus::{escape_label, serve_systemd, serve_timedate, FakeUnit, PrivateBus};
use ssm_preflight::checks::{self, CheckResult, Context, Status};
use ssm_preflight::config::{ModeSetting, Settings};
use ssm_preflight::host::{mode, Root};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLASSIC: &str = "amazon-ssm-agent.service";
const SNAP: &str = "snap.amazon-ssm-agent.amazon-ssm-agent.service";

/// 2026-11-26T10:30:00Z, the fixture log's "now".
fn now() -> SystemTime {
    SystemTime::from("2026-11-26T10:30:00Z".parse::<jiff::Timestamp>().unwrap())
}

fn usec_ago(secs: u64) -> u64 {
    (now().duration_since(UNIX_EPOCH).unwrap().as_secs() - secs) * 1_000_000
}

async fn run(
    root: &std::path::Path,
    bus: &str,
    mode: ModeSetting,
    only: &[&str],
) -> Vec<CheckResult> {
    let root = Root::new(root);
    let host = mode::detect(&root, mode);
    // Should an AWS check slip into a selection, IMDS is a closed loopback port.
    let mut settings = Settings::default();
    settings.aws.imds_endpoint = Some("http://127.0.0.1:1".into());
    let ctx = Context::new(root, Arc::new(settings), host, Some(bus.to_string()), now());
    let selected = checks::plan_all(&ctx)
        .into_iter()
        .filter(|c| {
            only.iter()
                .any(|o| checks::selects(o, &c.info.id, c.info.group))
        })
        .collect();
    ssm_preflight::run::execute::run(selected).await
}

/// The checks in `only`, against a fake systemd serving `units` on a fresh private bus.
async fn on_systemd(
    units: &[(&str, FakeUnit)],
    mode: ModeSetting,
    only: &[&str],
) -> Vec<CheckResult> {
    let bus = PrivateBus::start();
    let _systemd = serve_systemd(&bus.address, units, false).await;
    run(&agent_host(), &bus.address, mode, only).await
}

fn find<'a>(results: &'a [CheckResult], id: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no {id} in {results:#?}"))
}

fn agent_host() -> std::path::PathBuf {
    common::fixtures().join("agent-host")
}

#[test]
fn object_paths_are_escaped_as_systemd_escapes_them() {
    assert_eq!(escape_label(CLASSIC), "amazon_2dssm_2dagent_2eservice");
    assert_eq!(
        escape_label(SNAP),
        "snap_2eamazon_2dssm_2dagent_2eamazon_2dssm_2dagent_2eservice"
    );
    assert_eq!(
        escape_label("apt-daily-upgrade.timer"),
        "apt_2ddaily_2dupgrade_2etimer"
    );
    assert_eq!(escape_label("2fa.service"), "_32fa_2eservice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_agent_active_as_root() {
    // EC2 mode for the proxy's 169.254.169.254 rule; the agent checks only, no IMDS.
    let results = on_systemd(
        &[(
            CLASSIC,
            FakeUnit::service("active", "running", 812, 0, usec_ago(7200)),
        )],
        ModeSetting::Ec2,
        &["agent.service", "agent.version", "agent.log", "agent.proxy"],
    )
    .await;

    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Pass, "{service:#?}");
    assert_eq!(
        service.summary,
        "amazon-ssm-agent.service is active (running) for 2h 0m, pid 812 as root"
    );

    // At least the minimum; the region's newest is not known here (IMDS
    // is off, so the region is unknown), which is said, not passed over.
    let version = find(&results, "agent.version");
    assert_eq!(version.status, Status::Warn, "{version:#?}");
    assert!(
        version.summary.starts_with("amazon-ssm-agent 3.3.40.0 (at least 3.0.502), but the newest version in this region could not be read: the region is unknown"),
        "{}",
        version.summary
    );

    let proxy = find(&results, "agent.proxy");
    assert_eq!(proxy.status, Status::Warn, "{proxy:#?}");
    assert!(proxy.summary.contains("the agent uses the proxy http://proxy.internal:3128 for https and no_proxy (localhost,127.0.0.1) does not cover 169.254.169.254"));

    let log = find(&results, "agent.log");
    assert!(
        log.summary.contains("failed to connect to ssmmessages"),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snap_agent_active_uses_the_snap_binary() {
    let results = on_systemd(
        &[(
            SNAP,
            FakeUnit::service("active", "running", 812, 0, usec_ago(7200)),
        )],
        ModeSetting::Local,
        &["agent.service", "agent.version"],
    )
    .await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Pass, "{service:#?}");
    assert_eq!(service.details["unit"], SNAP);
    let version = find(&results, "agent.version");
    assert_eq!(version.status, Status::Fail);
    assert!(version.summary.contains("2.3.1319.0 is older than 3.0.502"));
    assert!(version
        .remedy
        .as_deref()
        .unwrap()
        .contains("sudo snap refresh amazon-ssm-agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_agents_installed_warns() {
    let results = on_systemd(
        &[
            (CLASSIC, FakeUnit::service("inactive", "dead", 0, 0, 0)),
            (
                SNAP,
                FakeUnit::service("active", "running", 812, 0, usec_ago(7200)),
            ),
        ],
        ModeSetting::Local,
        &["agent.service"],
    )
    .await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Warn, "{service:#?}");
    assert!(service.summary.contains("both amazon-ssm-agent.service and snap.amazon-ssm-agent.amazon-ssm-agent.service are installed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_restart_loop_fail() {
    let results = on_systemd(
        &[(
            CLASSIC,
            FakeUnit::service("failed", "failed", 0, 3, usec_ago(600)),
        )],
        ModeSetting::Local,
        &["agent.service", "agent.proxy"],
    )
    .await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Fail);
    assert_eq!(
        service.summary,
        "amazon-ssm-agent.service has failed (state failed/failed)"
    );
    assert!(service
        .remedy
        .as_deref()
        .unwrap()
        .contains("sudo journalctl -u amazon-ssm-agent -n 50"));
    assert_eq!(
        find(&results, "agent.proxy").status,
        Status::Skip,
        "no process, no environment"
    );

    let results = on_systemd(
        &[(
            CLASSIC,
            FakeUnit::service("activating", "auto-restart", 0, 17, usec_ago(30)),
        )],
        ModeSetting::Local,
        &["agent.service"],
    )
    .await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Fail);
    assert!(
        service
            .summary
            .contains("keeps crashing: systemd is waiting to restart it after 17 restarts"),
        "{}",
        service.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_and_not_root() {
    let results = on_systemd(
        &[(
            CLASSIC,
            FakeUnit::service("active", "running", 913, 0, usec_ago(7200)),
        )],
        ModeSetting::Local,
        &["agent.service"],
    )
    .await;
    assert!(find(&results, "agent.service")
        .summary
        .contains("runs as uid 1000, not root"));

    let results = on_systemd(
        &[(
            CLASSIC,
            FakeUnit::service("active", "running", 812, 6, usec_ago(90)),
        )],
        ModeSetting::Local,
        &["agent.service"],
    )
    .await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Warn);
    assert!(
        service
            .summary
            .contains("flapping: 6 automatic restarts, the last one 1m 30s ago"),
        "{}",
        service.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_installed_names_the_install_command() {
    let results = on_systemd(&[], ModeSetting::Local, &["agent.service", "agent.proxy"]).await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Fail);
    assert!(service
        .summary
        .starts_with("amazon-ssm-agent is not installed"));
    assert_eq!(
        service.remedy.as_deref(),
        Some("Install the agent: `sudo snap install amazon-ssm-agent --classic`.")
    );
    assert_eq!(find(&results, "agent.proxy").status, Status::Skip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bus_is_a_skip_and_a_bus_without_systemd_an_error() {
    let results = run(
        &agent_host(),
        common::NO_BUS,
        ModeSetting::Local,
        &["agent.service", "clock.sync"],
    )
    .await;
    assert_eq!(find(&results, "agent.service").status, Status::Skip);
    assert_eq!(find(&results, "clock.sync").status, Status::Skip);

    let bus = PrivateBus::start();
    let results = run(
        &agent_host(),
        &bus.address,
        ModeSetting::Local,
        &["agent.service", "clock.sync"],
    )
    .await;
    let service = find(&results, "agent.service");
    assert_eq!(service.status, Status::Error, "{service:#?}");
    assert!(
        service
            .summary
            .starts_with("org.freedesktop.systemd1 does not answer on the system bus"),
        "{}",
        service.summary
    );
    assert_eq!(find(&results, "clock.sync").status, Status::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_systemd_times_out_instead_of_hanging() {
    let bus = PrivateBus::start();
    let _systemd = serve_systemd(
        &bus.address,
        &[(CLASSIC, FakeUnit::service("active", "running", 812, 0, 0))],
        true,
    )
    .await;
    let root = Root::new(agent_host());
    let settings = Settings {
        checks: ssm_preflight::config::ChecksSettings {
            timeout: Duration::from_millis(500),
            disable: vec![],
        },
        ..Default::default()
    };
    let ctx = Context::new(
        root.clone(),
        Arc::new(settings),
        mode::detect(&root, ModeSetting::Local),
        Some(bus.address.clone()),
        now(),
    );
    let selected = checks::plan_all(&ctx)
        .into_iter()
        .filter(|c| c.info.id == "agent.service")
        .collect();
    let results = ssm_preflight::run::execute::run(selected).await;
    assert_eq!(results[0].status, Status::Error);
    assert_eq!(
        results[0].summary,
        "the check did not finish within its 500ms timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_synchronized_or_not() {
    let bus = PrivateBus::start();
    let _td = serve_timedate(&bus.address, true, true).await;
    let results = run(
        &agent_host(),
        &bus.address,
        ModeSetting::Local,
        &["clock.sync"],
    )
    .await;
    let clock = find(&results, "clock.sync");
    assert_eq!(clock.status, Status::Pass);
    assert_eq!(clock.details["timezone"], "Etc/UTC");

    let bus = PrivateBus::start();
    let _td = serve_timedate(&bus.address, false, false).await;
    let results = run(
        &agent_host(),
        &bus.address,
        ModeSetting::Local,
        &["clock.sync"],
    )
    .await;
    let clock = find(&results, "clock.sync");
    assert_eq!(clock.status, Status::Warn);
    assert!(clock
        .remedy
        .as_deref()
        .unwrap()
        .contains("sudo timedatectl set-ntp true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_timers_and_their_next_firing() {
    let bus = PrivateBus::start();
    let next = "2026-11-27T06:14:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_microsecond() as u64;
    let _systemd = serve_systemd(
        &bus.address,
        &[
            ("apt-daily-upgrade.timer", FakeUnit::timer(next)),
            ("apt-daily.timer", FakeUnit::timer(0)),
        ],
        false,
    )
    .await;
    let results = run(
        &agent_host(),
        &bus.address,
        ModeSetting::Local,
        &["pkg.state"],
    )
    .await;
    let state = find(&results, "pkg.state");
    assert_eq!(state.status, Status::Pass, "{state:#?}");
    assert_eq!(
        state.details["timer.apt-daily-upgrade.timer"],
        "2026-11-27T06:14:00Z"
    );
    assert_eq!(state.details["timer.apt-daily.timer"], "not scheduled");
    assert!(!state.details.contains_key("timer.dnf-automatic.timer"));
}

#[test]
fn the_binary_reads_the_bus_from_dbus_system_bus_address() {
    let bus = PrivateBus::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _systemd = rt.block_on(serve_systemd(
        &bus.address,
        &[(CLASSIC, FakeUnit::service("active", "running", 812, 0, 1))],
        false,
    ));
    let _td = rt.block_on(serve_timedate(&bus.address, true, false));
    let config = tempfile::NamedTempFile::new().unwrap();
    let out = common::run_on_bus(
        &agent_host(),
        config.path(),
        &bus.address,
        &["check", "--json", "--only", "agent.service,clock.sync"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(json["checks"][0]["id"], "agent.service");
    assert_eq!(json["checks"][0]["status"], "pass", "{json:#}");
    assert_eq!(json["checks"][1]["status"], "warn");
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_timer_inside_the_next_window_warns() {
    let bus = PrivateBus::start();
    // The third Sunday of December 2026 is the 20th: the window is 02:00–06:00 UTC.
    let inside = "2026-12-20T02:14:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_microsecond() as u64;
    let _systemd = serve_systemd(
        &bus.address,
        &[("apt-daily-upgrade.timer", FakeUnit::timer(inside))],
        false,
    )
    .await;
    let settings = Settings {
        window: vec![ssm_preflight::config::WindowSettings {
            name: "production-linux".into(),
            schedule: ssm_preflight::config::schedule::Schedule::parse("cron(0 2 ? * SUN#3 *)")
                .unwrap(),
            timezone: "UTC".into(),
            offset_days: 0,
            duration: Duration::from_secs(4 * 3600),
        }],
        ..Default::default()
    };
    let root = Root::new(agent_host());
    let ctx = Context::new(
        root.clone(),
        Arc::new(settings),
        mode::detect(&root, ModeSetting::Local),
        Some(bus.address.clone()),
        now(),
    );
    let selected = checks::plan_all(&ctx)
        .into_iter()
        .filter(|c| c.info.id == "pkg.state")
        .collect();
    let results = ssm_preflight::run::execute::run(selected).await;
    assert_eq!(results[0].status, Status::Warn, "{:#?}", results[0]);
    assert!(results[0].summary.contains("apt-daily-upgrade.timer next fires at 2026-12-20T02:14:00Z, inside the window production-linux"), "{}", results[0].summary);
}
