//! `remediate.clean_package_cache` through the daemon, on a root whose
//! /var/cache/apt is a small tmpfs the test fills: the real `apt-get clean`
//! (pointed at the root) empties it and the disk check passes again; with a
//! real holder of dpkg's lock, nothing is cleaned and the state says why.
//! `check` only says what the daemon would do.

use crate::daemon::Daemon;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CONFIG: &str = "[metrics]\ntextfile = \"{DIR}/preflight.prom\"\n\n[remediate]\nclean_package_cache = true\n\n[disk.paths.\"/var/cache/apt\"]\nwarn_below = \"3MiB\"\nfail_below = \"2MiB\"\n";

/// A tmpfs mount, lazily unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A root with apt, dpkg's lock files, the kernel's lock table, and an
/// 8 MiB tmpfs at /var/cache/apt holding a 7 MiB package. No mountinfo: the
/// filesystems are told apart by device, as on a host without /proc.
fn root_with_full_cache() -> (tempfile::TempDir, Tmpfs) {
    let root = tempfile::tempdir().unwrap();
    let p = |s: &str| root.path().join(s);
    for dir in ["usr/bin", "var/lib/dpkg", "var/cache/apt", "etc", "proc"] {
        std::fs::create_dir_all(p(dir)).unwrap();
    }
    std::os::unix::fs::symlink("/proc/locks", p("proc/locks")).unwrap();
    std::fs::write(p("usr/bin/apt-get"), "").unwrap();
    std::fs::write(p("var/lib/dpkg/lock-frontend"), "").unwrap();
    std::fs::write(p("var/lib/dpkg/lock"), "").unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(p("var/cache/apt"))
        .status()
        .unwrap();
    assert!(status.success(), "mount a tmpfs (run as root)");
    let mount = Tmpfs(p("var/cache/apt"));
    std::fs::create_dir_all(p("var/cache/apt/archives/partial")).unwrap();
    std::fs::write(
        p("var/cache/apt/archives/big_1.0_all.deb"),
        vec![0u8; 7 << 20],
    )
    .unwrap();
    (root, mount)
}

fn state(d: &Daemon) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.dirs.path().join("state/state.json")).unwrap()).unwrap()
}

fn package(root: &Path) -> PathBuf {
    root.join("var/cache/apt/archives/big_1.0_all.deb")
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn a_full_cache_is_cleaned_and_checked_again() {
    let (root, _mount) = root_with_full_cache();
    let package = package(root.path());
    // `check` says what the daemon would do, and does nothing.
    let config = tempfile::tempdir().unwrap();
    let text = CONFIG.replace("{DIR}", &config.path().display().to_string());
    std::fs::write(config.path().join("config.toml"), text).unwrap();
    let out =
        crate::common::run_with_config(root.path(), &config.path().join("config.toml"), &["check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(
            "is short and holds /var/cache/apt: the daemon would run `apt-get clean -o Dir="
        ),
        "{text}"
    );
    assert!(package.exists(), "the dry run cleaned");

    let d = Daemon::start_with(CONFIG, root, &[], None);
    d.wait_for("STATUS=last run");
    assert!(!package.exists(), "not cleaned: {}", d.log());
    let s = state(&d);
    let cleaned = &s["cleaned"];
    assert!(
        cleaned["command"]
            .as_str()
            .unwrap()
            .starts_with("apt-get clean -o Dir="),
        "{cleaned}"
    );
    assert_eq!(cleaned["status_after"], "pass", "{cleaned}");
    assert!(
        cleaned["freed_bytes"].as_u64().unwrap() >= 7 << 20,
        "{cleaned}"
    );
    assert!(cleaned["error"].is_null());
    // The run's own record has the disk check as it is after the clean.
    let disk = s["last_run"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["details"]["paths"]
                .as_str()
                .is_some_and(|p| p.contains("/var/cache/apt"))
        })
        .unwrap()
        .clone();
    assert_eq!(disk["status"], "pass", "{disk}");
    assert!(disk["details"]["cleaned_with"].as_str().is_some(), "{disk}");
    let status = String::from_utf8_lossy(&d.cli(&["status"]).stdout).to_string();
    assert!(
        status.contains("Package cache: cleaned with `apt-get clean"),
        "{status}"
    );
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn nothing_is_cleaned_while_a_lock_is_held() {
    let (root, _mount) = root_with_full_cache();
    let package = package(root.path());
    // A real holder of dpkg's frontend lock (on the root's own file).
    let script = "import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\nfcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n";
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(root.path().join("var/lib/dpkg/lock-frontend"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let d = Daemon::start_with(CONFIG, root, &[], None);
    d.wait_for("STATUS=last run");
    assert!(package.exists(), "cleaned while dpkg's lock was held");
    let cleaned = &state(&d)["cleaned"];
    assert!(cleaned["command"].is_null(), "{cleaned}");
    assert!(
        cleaned["error"].as_str().unwrap().contains("pkg.lock is"),
        "{cleaned}"
    );
    drop(holder.stdin.take());
    let _ = holder.wait();
}
