//! Every host-check verdict from a fixture tree, through the root parameter.

use crate::common;

use common::{fixture_root, os_release_root};
use ssm_preflight::checks::{
    self, os_supported, pkg_lock, pkg_state, reboot, CheckResult, Context, Status,
};
use ssm_preflight::config::{ModeSetting, Settings};
use ssm_preflight::host::{mode, Root};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const STUCK: Duration = Duration::from_secs(30 * 60);

fn root(dir: &tempfile::TempDir) -> Root {
    Root::new(dir.path())
}

fn run_all(dir: &Path, settings: Settings) -> Vec<CheckResult> {
    let root = Root::new(dir);
    let host = mode::detect(&root, ModeSetting::Auto);
    // No system bus: these tests are about the host files only.
    let no_bus = Some("unix:path=/nonexistent/system_bus_socket".to_string());
    let ctx = Context::new(root, Arc::new(settings), host, no_bus, SystemTime::now());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ssm_preflight::run::execute::run(checks::plan_all(&ctx)))
}

fn find<'a>(results: &'a [CheckResult], id: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no {id} in {results:#?}"))
}

#[test]
fn a_clean_debian_host_passes_everything() {
    let dir = fixture_root("debian12-clean");
    let results = run_all(dir.path(), Settings::default());
    let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    assert!(
        ids.contains(&"pkg.lock") && ids.contains(&"os.supported"),
        "{ids:?}"
    );
    for id in ["pkg.lock", "pkg.state", "reboot.pending", "os.supported"] {
        assert_eq!(
            find(&results, id).status,
            Status::Pass,
            "{:#?}",
            find(&results, id)
        );
    }
    assert_eq!(
        find(&results, "pkg.lock").summary,
        "no package-manager lock is held (4 looked at)"
    );
}

#[test]
fn dpkg_holder_from_proc_locks() {
    let dir = fixture_root("dpkg-held");
    let o = pkg_lock::judge(&ssm_preflight::host::locks::gather(&root(&dir)), STUCK);
    assert_eq!(o.status, Status::Warn);
    assert_eq!(
        o.summary,
        "pid 4242 (`/usr/bin/python3 /usr/bin/unattended-upgrade --download-only`) holds the dpkg lock /var/lib/dpkg/lock-frontend and /var/lib/dpkg/lock, running for 3m 12s"
    );
    assert!(!o.summary.contains("5151"), "a waiter is not a holder");
}

#[test]
fn a_holder_running_for_hours_is_stuck() {
    let dir = fixture_root("dpkg-stuck");
    let o = pkg_lock::judge(&ssm_preflight::host::locks::gather(&root(&dir)), STUCK);
    assert_eq!(o.status, Status::Fail);
    assert!(
        o.summary.contains("`/usr/bin/apt-get install -y nginx`"),
        "{}",
        o.summary
    );
    assert!(o.summary.contains("running for 2h 5m"), "{}", o.summary);
    assert!(o.remedy.unwrap().contains("sudo dpkg --configure -a"));
}

#[test]
fn flock_holder_of_apt_daily() {
    let dir = fixture_root("apt-daily-flock");
    let o = pkg_lock::judge(&ssm_preflight::host::locks::gather(&root(&dir)), STUCK);
    assert_eq!(o.status, Status::Warn);
    assert!(o.summary.starts_with("pid 777 (`/bin/sh /usr/lib/apt/apt.systemd.daily update`) holds the apt.systemd.daily lock /var/lib/apt/daily_lock"), "{}", o.summary);
}

#[test]
fn yum_pid_file_with_a_live_and_a_dead_pid() {
    let live = fixture_root("yum-live");
    let o = pkg_lock::judge(&ssm_preflight::host::locks::gather(&root(&live)), STUCK);
    assert_eq!(o.status, Status::Warn);
    assert!(o.summary.contains("pid 4343 (`/usr/bin/python /usr/bin/yum -y update`) holds the yum lock /var/run/yum.pid, running for 3m 20s"), "{}", o.summary);

    let dead = fixture_root("yum-dead");
    let o = pkg_lock::judge(&ssm_preflight::host::locks::gather(&root(&dead)), STUCK);
    assert_eq!(o.status, Status::Pass);
    assert!(
        o.summary.contains(
            "stale pid file ignored: /var/run/yum.pid names pid 99999, which is not running"
        ),
        "{}",
        o.summary
    );
}

#[test]
fn zypper_pid_file() {
    let dir = fixture_root("zypper-held");
    let o = pkg_lock::judge(&ssm_preflight::host::locks::gather(&root(&dir)), STUCK);
    assert_eq!(o.status, Status::Warn);
    assert!(o.summary.contains("pid 2121 (`zypper --non-interactive patch`) holds the zypper lock /run/zypp.pid, running for 1m 39s"), "{}", o.summary);
}

#[test]
fn a_running_dpkg_is_at_work_not_interrupted() {
    // Journal entries while a live process holds dpkg's lock: an install in
    // progress (our own package's postinst runs the service's first check).
    let dir = fixture_root("dpkg-installing");
    let o = pkg_state::judge(&ssm_preflight::host::pkg_state::gather(&root(&dir)));
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(
        o.summary.starts_with("dpkg is installing right now: pid 4242 (`/usr/bin/python3 /usr/bin/unattended-upgrade --download-only`) holds /var/lib/dpkg/lock-frontend"),
        "{}",
        o.summary
    );
    assert!(!o.remedy.unwrap().contains("dpkg --configure -a"));
}

#[test]
fn dpkg_interrupted_fails_with_the_repair_command() {
    let dir = fixture_root("dpkg-interrupted");
    let o = pkg_state::judge(&ssm_preflight::host::pkg_state::gather(&root(&dir)));
    assert_eq!(o.status, Status::Fail);
    assert!(
        o.summary
            .contains("1 journal entries wait in /var/lib/dpkg/updates"),
        "{}",
        o.summary
    );
    assert_eq!(
        o.remedy.as_deref(),
        Some("Run `sudo dpkg --configure -a`, then `sudo apt-get -f install`.")
    );
}

#[test]
fn reboot_required_and_a_newer_kernel() {
    let dir = fixture_root("reboot-required");
    let o = reboot::judge(&ssm_preflight::host::reboot::gather(
        &root(&dir),
        Duration::from_secs(2),
    ));
    assert_eq!(o.status, Status::Warn);
    assert_eq!(
        o.summary,
        "a reboot is pending: /run/reboot-required asks for a reboot for linux-image-6.1.0-28-amd64, libc6; kernel 6.1.0-26-amd64 is running but 6.1.0-28-amd64 is installed"
    );
}

#[test]
fn needs_restarting_is_asked_on_rpm_hosts() {
    let dir = fixture_root("needs-restarting");
    let o = reboot::judge(&ssm_preflight::host::reboot::gather(
        &root(&dir),
        Duration::from_secs(5),
    ));
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(o
        .summary
        .contains("`needs-restarting -r` says a reboot is needed"));
    // The rescue image in /boot is not taken for a newer kernel.
    let clean = fixture_root("yum-dead");
    let o = reboot::judge(&ssm_preflight::host::reboot::gather(
        &root(&clean),
        Duration::from_secs(2),
    ));
    assert_eq!(o.status, Status::Pass, "{o:?}");
}

#[test]
fn noexec_var_under_the_agent_fails_its_filesystem() {
    let dir = fixture_root("noexec");
    let results = run_all(dir.path(), Settings::default());
    let var = find(&results, "disk.var");
    assert_eq!(var.status, Status::Fail, "{var:#?}");
    assert!(var
        .summary
        .contains("/var/lib/amazon is on /var, which is mounted noexec"));
    assert_eq!(
        var.details["paths"],
        "/var, /var/cache/apt, /var/lib/amazon, /var/lib/amazon/ssm"
    );
    assert_eq!(
        find(&results, "disk.root").details["paths"],
        "/, /boot, /tmp"
    );
}

#[test]
fn one_disk_result_per_filesystem_without_mountinfo() {
    let dir = fixture_root("debian12-clean");
    let results = run_all(dir.path(), Settings::default());
    let disks: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.id.starts_with("disk."))
        .collect();
    // The fixture tree is one directory on one filesystem.
    assert_eq!(disks.len(), 1, "{disks:#?}");
    assert_eq!(disks[0].id, "disk.root");
    assert_eq!(disks[0].status, Status::Pass, "{:#?}", disks[0]);
    // With the agent's directory there, no mountinfo means its noexec
    // option is unknown: a warning, not a pass (issue #17).
    std::fs::create_dir_all(dir.path().join("var/lib/amazon")).unwrap();
    let results = run_all(dir.path(), Settings::default());
    let root_fs = find(&results, "disk.root");
    assert_eq!(root_fs.status, Status::Warn, "{root_fs:#?}");
    assert!(
        root_fs
            .summary
            .contains("whether /var/lib/amazon is mounted noexec could not be told"),
        "{}",
        root_fs.summary
    );
}

#[test]
fn a_configured_path_that_does_not_exist_warns() {
    let dir = fixture_root("debian12-clean");
    let mut settings = Settings::default();
    settings.disk.configured.push("/data".into());
    let results = run_all(dir.path(), settings);
    let data = find(&results, "disk.data");
    assert_eq!(data.status, Status::Warn);
    assert!(data
        .remedy
        .as_deref()
        .unwrap()
        .contains("[disk.paths.\"/data\"]"));
}

#[test]
fn os_release_for_each_family() {
    for entry in std::fs::read_dir(common::fixtures().join("os-release")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let dir = os_release_root(&name);
        let os = ssm_preflight::host::os_release::OsRelease::read(&root(&dir))
            .unwrap()
            .unwrap()
            .0;
        let o = os_supported::judge(&os);
        let expected = if name.starts_with("unsupported-") {
            Status::Fail
        } else {
            Status::Pass
        };
        assert_eq!(o.status, expected, "{name}: {}", o.summary);
        if expected == Status::Fail {
            assert!(o.remedy.is_some(), "{name}");
        }
    }
}

#[test]
fn bad_input_never_panics_and_explains() {
    let dir = fixture_root("malformed");
    let results = run_all(dir.path(), Settings::default());
    assert!(
        results.iter().all(|r| !r.summary.contains("crashed")),
        "{results:#?}"
    );

    let lock = find(&results, "pkg.lock");
    assert_eq!(lock.status, Status::Warn, "{lock:#?}");
    assert!(
        lock.summary
            .contains("could not look at /var/lib/dpkg/lock"),
        "{}",
        lock.summary
    );
    assert!(
        lock.summary
            .contains("/run/zypp.pid holds `garbage`, which is not a process ID"),
        "{}",
        lock.summary
    );
    assert_eq!(lock.details["unreadable_proc_locks_lines"], "3");

    let os = find(&results, "os.supported");
    assert_eq!(os.status, Status::Error);
    assert!(os
        .summary
        .contains("neither /etc/os-release nor /usr/lib/os-release exists"));
    assert!(os.remedy.as_deref().unwrap().contains("base-files"));
}

#[test]
fn mode_from_local_files_only() {
    let ec2 = mode::detect(
        &Root::new(common::fixtures().join("ec2-nitro")),
        ModeSetting::Auto,
    );
    assert_eq!(ec2.mode, mode::Mode::Ec2);
    assert_eq!(ec2.instance_id.as_deref(), Some("i-0123456789abcdef0"));
    let xen = mode::detect(
        &Root::new(common::fixtures().join("ec2-xen")),
        ModeSetting::Auto,
    );
    assert_eq!(xen.mode, mode::Mode::Ec2);
    let hybrid = mode::detect(
        &Root::new(common::fixtures().join("hybrid")),
        ModeSetting::Auto,
    );
    assert_eq!(
        (
            hybrid.mode,
            hybrid.instance_id.as_deref(),
            hybrid.region.as_deref()
        ),
        (
            mode::Mode::Hybrid,
            Some("mi-0123456789abcdef0"),
            Some("eu-west-1")
        )
    );
    let local = mode::detect(
        &Root::new(common::fixtures().join("empty")),
        ModeSetting::Auto,
    );
    assert_eq!(local.mode, mode::Mode::Local);
    let forced = mode::detect(
        &Root::new(common::fixtures().join("ec2-nitro")),
        ModeSetting::Local,
    );
    assert_eq!(forced.mode, mode::Mode::Local);
}

#[test]
fn nothing_to_look_at_is_skip_not_pass() {
    let dir = fixture_root("empty");
    let results = run_all(dir.path(), Settings::default());
    for id in ["pkg.lock", "pkg.state", "reboot.pending"] {
        assert_eq!(find(&results, id).status, Status::Skip, "{id}");
    }
}

#[test]
fn excluded_packages_on_an_amazon_linux_tree_warn() {
    // Amazon Linux 2's shape: yum.conf's [main] and a repository's own
    // exclude; a disabled repository's is not counted.
    let dir = os_release_root("amzn-2");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("yum.repos.d")).unwrap();
    std::fs::write(
        etc.join("yum.conf"),
        "[main]\ncachedir=/var/cache/yum/$basearch/$releasever\nexclude=kernel* docker\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("yum.repos.d/epel.repo"),
        "[epel]\nmirrorlist=https://mirrors.example/epel-7\nenabled=1\nexclude=nginx*\n\n[epel-testing]\nenabled=0\nexclude=all*\n",
    )
    .unwrap();
    let results = run_all(dir.path(), Settings::default());
    let c = find(&results, "pkg.exclude");
    assert_eq!(c.status, Status::Warn, "{c:#?}");
    assert_eq!(c.summary, "3 package pattern(s) are excluded from yum/dnf, which Patch Manager does not honour: kernel* docker (/etc/yum.conf [main]); nginx* (/etc/yum.repos.d/epel.repo [epel])");
}
