//! `remediate.hold_updaters` through the built daemon against the fake
//! systemd on a private bus: a window's timeline (the hold begins at the
//! lead time, the timers are stopped and every updater unit runtime-masked,
//! then unmasked and the timers started again at the end), a reboot in the
//! middle, an updater already running, a unit that does not exist, and an
//! unmask that fails and is retried.

use crate::common;
use crate::daemon::Daemon;
use common::fake_bus::{self, FakeUnit, PrivateBus};
use std::time::{Duration, Instant};

fn updaters() -> Vec<(&'static str, FakeUnit)> {
    vec![
        ("apt-daily.timer", FakeUnit::timer(0)),
        ("apt-daily-upgrade.timer", FakeUnit::timer(0)),
        (
            "apt-daily.service",
            FakeUnit::service("inactive", "dead", 0, 0, 0),
        ),
        (
            "apt-daily-upgrade.service",
            FakeUnit::service("inactive", "dead", 0, 0, 0),
        ),
    ]
}

/// A config whose one window starts `in_secs` from now (UTC), held from
/// 2 s before it for `hold_max` seconds after it starts.
fn config(in_secs: i64, hold_max: u64, updater_wait: u64) -> String {
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(in_secs);
    format!(
        "[metrics]\ntextfile = \"{{DIR}}/preflight.prom\"\n\n[remediate]\nhold_updaters = true\nhold_before = \"2s\"\nhold_max = \"{hold_max}s\"\nupdater_wait = \"{updater_wait}s\"\n\n[[window]]\nname = \"soon\"\nschedule = \"at({})\"\ntimezone = \"UTC\"\n",
        start.strftime("%Y-%m-%dT%H:%M:%S")
    )
}

/// The daemon's environment here: the private bus, and a watchdog slow
/// enough that its notify messages, which these tests do not read, never
/// fill the socket (systemd reads every one).
fn env(address: String) -> Vec<(&'static str, String)> {
    vec![
        ("DBUS_SYSTEM_BUS_ADDRESS", address),
        ("WATCHDOG_USEC", "600000000".into()),
    ]
}

/// Waits (bounded) until a call starting with `prefix` was made.
fn wait_call(fake: &fake_bus::Systemd, prefix: &str, within: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let calls = fake.calls();
        if calls.iter().any(|c| c.starts_with(prefix)) {
            return calls;
        }
        assert!(
            started.elapsed() < within,
            "no {prefix} within {within:?}: {calls:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon on a root whose boot ID is `boot`, on the private bus, with
/// the state an earlier daemon left.
async fn start(
    bus: &PrivateBus,
    config: String,
    boot: &'static str,
    state: Option<String>,
) -> Daemon {
    let address = bus.address.clone();
    tokio::task::spawn_blocking(move || {
        Daemon::start_with(
            &config,
            root_with_boot(boot),
            &env(address),
            state.as_deref(),
        )
    })
    .await
    .unwrap()
}

/// `wait_call` off the runtime's threads, which serve the fake systemd.
async fn called(fake: &fake_bus::Systemd, prefix: &'static str, within_secs: u64) -> Vec<String> {
    let fake = fake.clone();
    tokio::task::spawn_blocking(move || wait_call(&fake, prefix, Duration::from_secs(within_secs)))
        .await
        .unwrap()
}

fn state(d: &Daemon) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.dirs.path().join("state/state.json")).unwrap()).unwrap()
}

/// The state's hold once the daemon has recorded one: it writes the state
/// after the reload the test sees on the bus, so a loaded machine can read
/// the file in between (within 5 s).
fn recorded_hold(d: &Daemon) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let holding = state(d)["hold"]["holding"].clone();
        if !holding.is_null() || Instant::now() > deadline {
            return holding;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn root_with_boot(boot: &str) -> tempfile::TempDir {
    let root = common::fixture_root("debian12-clean");
    let dir = root.path().join("proc/sys/kernel/random");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("boot_id"), format!("{boot}\n")).unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_s_timeline_masks_then_unmasks() {
    let bus = PrivateBus::start();
    let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &updaters(), false).await;
    let d = start(&bus, config(4, 3, 5), "boot-a", None).await;
    let started = Instant::now();
    // The daemon reloads systemd right after masking: waiting for the mask
    // alone raced the reload on a loaded machine.
    let calls = called(&fake, "Reload", 15).await;
    // Not before the lead time: the window starts 4 s after the daemon, the hold 2 s before.
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "held too early: {calls:?}"
    );
    // The timers stopped first, then every unit present masked for this boot only, then a reload.
    let stop_a = calls
        .iter()
        .position(|c| c == "StopUnit apt-daily.timer replace")
        .unwrap();
    let stop_b = calls
        .iter()
        .position(|c| c == "StopUnit apt-daily-upgrade.timer replace")
        .unwrap();
    let mask = calls
        .iter()
        .position(|c| c.starts_with("MaskUnitFiles"))
        .unwrap();
    assert!(stop_a < mask && stop_b < mask, "{calls:?}");
    assert_eq!(
        calls[mask],
        "MaskUnitFiles runtime=true force=true apt-daily.timer,apt-daily-upgrade.timer,apt-daily.service,apt-daily-upgrade.service"
    );
    assert_eq!(calls[mask + 1], "Reload");
    // Units that do not exist here (dnf-automatic, yum-cron) are not touched.
    assert!(
        !calls.iter().any(|c| c.contains("dnf") || c.contains("yum")),
        "{calls:?}"
    );
    let holding = &recorded_hold(&d);
    assert_eq!(holding["window"], "soon");
    assert_eq!(holding["boot_id"], "boot-a");
    assert_eq!(holding["restart"].as_array().unwrap().len(), 2);
    // The metrics textfile follows the hold, between runs too.
    let metrics =
        || std::fs::read_to_string(d.dirs.path().join("preflight.prom")).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        metrics().contains("\nssm_preflight_updaters_held 1\n"),
        "{}",
        metrics()
    );
    let status = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(text.contains("Updaters: holding apt-daily.timer, apt-daily-upgrade.timer, apt-daily.service, apt-daily-upgrade.service until"), "{text}");
    // The end: 3 s after the start, unmasked, then the timers started again.
    let calls = called(&fake, "StartUnit apt-daily-upgrade.timer", 15).await;
    let unmask = calls
        .iter()
        .position(|c| c.starts_with("UnmaskUnitFiles runtime=true"))
        .unwrap();
    assert!(
        calls
            .iter()
            .position(|c| c == "StartUnit apt-daily.timer replace")
            .unwrap()
            > unmask
    );
    std::thread::sleep(Duration::from_millis(300));
    let hold = &state(&d)["hold"];
    assert!(hold["holding"].is_null(), "{hold}");
    assert!(
        hold["last"]["how"]
            .as_str()
            .unwrap()
            .contains("the window ended"),
        "{hold}"
    );
    // One hold per window: nothing more is masked afterwards.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("MaskUnitFiles"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_in_the_middle_ends_the_hold_without_masking_again() {
    let bus = PrivateBus::start();
    let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &updaters(), false).await;
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)).to_string();
    let before = serde_json::json!({
        "last_run": null, "history": [], "delivery": null, "last_delivered_run": null,
        "hold": {"holding": {"window": "soon", "window_id": null, "began_at": "2026-12-20T01:45:00Z", "until": until,
                             "units": ["apt-daily.timer"], "restart": ["apt-daily.timer"], "boot_id": "boot-a"}}
    });
    // The window began 10 s ago and lasts an hour: still on, but the host rebooted.
    let d = start(
        &bus,
        config(-10, 3600, 5),
        "boot-b",
        Some(before.to_string()),
    )
    .await;
    let d = tokio::task::spawn_blocking(move || {
        d.wait_for("STATUS=last run");
        d
    })
    .await
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let calls = fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("MaskUnitFiles") || c.starts_with("StopUnit")),
        "re-masked after the reboot: {calls:?}"
    );
    let hold = &state(&d)["hold"];
    assert!(hold["holding"].is_null(), "{hold}");
    assert!(
        hold["last"]["how"]
            .as_str()
            .unwrap()
            .contains("a reboot removed the runtime masks"),
        "{hold}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_before_the_window_opens_masks_them_again() {
    // Issue #26 item 11: the reboot `reboot.pending` asks for, taken after
    // the hold began and before the window opens, must not free the
    // updaters to run into the window.
    let bus = PrivateBus::start();
    let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &updaters(), false).await;
    let start_at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    let at = start_at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let config = config(60, 3600, 5)
        .replace("hold_before = \"2s\"", "hold_before = \"120s\"")
        .lines()
        .map(|l| {
            if l.starts_with("schedule = ") {
                format!("schedule = \"at({at})\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let until = (start_at + jiff::SignedDuration::from_secs(3600)).to_string();
    let before = serde_json::json!({
        "last_run": null, "history": [], "delivery": null, "last_delivered_run": null,
        "hold": {"holding": {"window": "soon", "window_id": null, "began_at": "2026-12-20T01:45:00Z", "until": until,
                             "units": ["apt-daily.timer"], "restart": ["apt-daily.timer"], "boot_id": "boot-a",
                             "window_start": format!("{at}Z")}}
    });
    let d = start(&bus, config, "boot-b", Some(before.to_string())).await;
    let masked = called(&fake, "MaskUnitFiles", 20).await;
    assert!(!masked.is_empty(), "masked again: {:?}", fake.calls());
    let holding = recorded_hold(&d);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut holding = holding;
    while holding["boot_id"] != "boot-b" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        holding = recorded_hold(&d);
    }
    assert_eq!(holding["boot_id"], "boot-b", "{holding}");
    assert_eq!(holding["window"], "soon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_updater_is_waited_for_and_never_stopped() {
    let bus = PrivateBus::start();
    let mut units = updaters();
    units[3].1 = FakeUnit::service("activating", "start", 4242, 0, 0);
    let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &units, false).await;
    let d = start(&bus, config(2, 60, 30), "boot-a", None).await;
    // The hold is due at once; the upgrade runs for 3 s more.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("MaskUnitFiles")),
        "masked while the upgrade ran: {:?}",
        fake.calls()
    );
    fake.set(
        "apt-daily-upgrade.service",
        FakeUnit::service("inactive", "dead", 0, 0, 0),
    );
    let calls = called(&fake, "MaskUnitFiles", 10).await;
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("StopUnit apt-daily-upgrade.service")),
        "a running updater is never stopped: {calls:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(state(&d)["hold"]["holding"]["left_running"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmask_that_fails_is_retried_and_reported() {
    let bus = PrivateBus::start();
    let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &updaters(), false).await;
    fake.fail_unmask
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let d = start(&bus, config(2, 1, 5), "boot-a", None).await;
    let fake2 = fake.clone();
    let waited = tokio::task::spawn_blocking(move || {
        wait_call(&fake2, "UnmaskUnitFiles", Duration::from_secs(15))
    })
    .await;
    assert!(waited.is_ok(), "{}", d.log());
    std::thread::sleep(Duration::from_millis(500));
    // Refused once: still held, the error in the state and in `status`.
    let hold = &state(&d)["hold"];
    assert!(!hold["holding"].is_null(), "{hold}");
    assert!(
        hold["error"]
            .as_str()
            .unwrap()
            .contains("could not be unmasked"),
        "{hold}"
    );
    let text = String::from_utf8_lossy(&d.cli(&["status"]).stdout).to_string();
    assert!(
        text.contains("the last attempt to end it failed and is retried"),
        "{text}"
    );
    // Retried after the backoff (5 s at most), then ended.
    let calls = called(&fake, "StartUnit apt-daily.timer", 15).await;
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("UnmaskUnitFiles"))
            .count(),
        2,
        "{calls:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let hold = &state(&d)["hold"];
    assert!(
        hold["holding"].is_null() && hold["error"].is_null(),
        "{hold}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: hold --release is for root only"]
async fn hold_release_ends_it_now_and_the_window_is_not_held_again() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "run as root (scripts/test does)"
    );
    let bus = PrivateBus::start();
    let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &updaters(), false).await;
    let d = start(&bus, config(2, 3600, 5), "boot-a", None).await;
    called(&fake, "MaskUnitFiles", 10).await;
    let shown = String::from_utf8_lossy(&d.cli(&["hold"]).stdout).to_string();
    assert!(
        shown.starts_with("Updaters: holding apt-daily.timer"),
        "{shown}"
    );
    let d = tokio::task::spawn_blocking(move || {
        let out = d.cli(&["hold", "--release"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("released by hand (ssm-preflight hold --release)"),
            "{text}"
        );
        d
    })
    .await
    .unwrap();
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("UnmaskUnitFiles runtime=true")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c == "StartUnit apt-daily.timer replace"),
        "{calls:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("MaskUnitFiles"))
            .count(),
        1,
        "held again after the release"
    );
    assert!(state(&d)["hold"]["holding"].is_null());
}

/// In a container the kernel's boot ID outlives a reboot of the container;
/// a daemon that finds its hold's units no longer runtime-masked ends it
/// the same way, and one that finds them masked keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masks_gone_on_the_same_boot_end_the_hold_and_masks_kept_keep_it() {
    for masks_kept in [false, true] {
        let bus = PrivateBus::start();
        let (_conn, fake) = fake_bus::serve_systemd_shared(&bus.address, &updaters(), false).await;
        if masks_kept {
            fake.masked.lock().unwrap().insert("apt-daily.timer".into());
        }
        let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)).to_string();
        let before = serde_json::json!({
            "last_run": null, "history": [], "delivery": null, "last_delivered_run": null,
            "hold": {"holding": {"window": "soon", "window_id": null, "began_at": "2026-12-20T01:45:00Z", "until": until,
                                 "units": ["apt-daily.timer"], "restart": ["apt-daily.timer"], "boot_id": "boot-a"}}
        });
        let d = tokio::task::spawn_blocking({
            let address = bus.address.clone();
            move || {
                let d = Daemon::start_with(
                    &config(-10, 3600, 5),
                    root_with_boot("boot-a"),
                    &env(address),
                    Some(&before.to_string()),
                );
                d.wait_for("STATUS=last run");
                d
            }
        })
        .await
        .unwrap();
        let hold = &state(&d)["hold"];
        assert!(
            !fake.calls().iter().any(|c| c.starts_with("MaskUnitFiles")),
            "{:?}",
            fake.calls()
        );
        if masks_kept {
            assert_eq!(hold["holding"]["window"], "soon", "{hold}");
        } else {
            assert!(hold["holding"].is_null(), "{hold}");
            assert!(
                hold["last"]["how"]
                    .as_str()
                    .unwrap()
                    .contains("its runtime masks were gone"),
                "{hold}"
            );
        }
    }
}
