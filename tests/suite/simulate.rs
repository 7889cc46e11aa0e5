//! `pkg.simulate` with the real apt-get of the test machine, planning a
//! fixture tree's upgrade from its own status file and lists (issue #27):
//! an upgrade that fits, a held package, and an update whose dependency no
//! repository has. And `check` without `--simulate` does not run it.

use crate::common;

pub(crate) fn simulate(root: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    // The config outside the tree, so the tree holds only what apt reads.
    let config = tempfile::NamedTempFile::new().unwrap();
    let config = config.path();
    let mut args = vec![
        "check",
        "--json",
        "--mode",
        "local",
        "--only",
        "pkg.simulate",
    ];
    args.extend(extra);
    let out = common::command(root, config, &args).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    json["checks"][0].clone()
}

#[test]
fn apt_plans_the_fixture_s_upgrade_without_a_lock_or_a_write() {
    if !std::path::Path::new("/usr/bin/apt-get").exists() {
        panic!("this test asks the machine's apt-get: install apt (scripts/test runs on Debian)");
    }
    let root = common::fixture_root("apt-upgrade");
    let before = snapshot(root.path());
    let c = simulate(root.path(), &["--simulate"]);
    // `app` 2.0 needs libgone, which no repository has: the patch run,
    // which marks each update itself, would fail on it.
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["summary"].as_str().unwrap().contains(
            "apt cannot plan the upgrade: app : Depends: libgone (>= 2) but it is not installable"
        ),
        "{c:#}"
    );
    assert_eq!(c["details"]["upgraded"], "1", "{c:#}");
    assert_eq!(c["details"]["held"], "pinned", "{c:#}");
    assert_eq!(c["details"]["kept_back"], "app pinned", "{c:#}");
    // Nothing under the tree changed: no lock file, no cache, no log.
    assert_eq!(before, snapshot(root.path()), "apt wrote under the tree");
    // And, watched from outside, no lock taken anywhere and nothing opened
    // for writing under the tree or the machine's own apt and dpkg state.
    let traced = trace(root.path());
    let taken: Vec<&str> = traced
        .lines()
        .filter(|l| {
            l.contains("F_SETLK")
                || l.contains("F_OFD_SETLK")
                || (l.contains("flock(") && !l.contains("LOCK_UN"))
        })
        .collect();
    assert!(taken.is_empty(), "locks taken: {taken:?}");
    let tree = root.path().display().to_string();
    let written: Vec<&str> = traced
        .lines()
        .filter(|l| l.contains("O_WRONLY") || l.contains("O_RDWR") || l.contains("O_CREAT"))
        .filter(|l| {
            [
                tree.as_str(),
                "/var/lib/dpkg",
                "/var/lib/apt",
                "/var/cache/apt",
                "/var/log/apt",
            ]
            .iter()
            .any(|p| l.contains(&format!("\"{p}")))
        })
        .collect();
    assert!(written.is_empty(), "opened for writing: {written:?}");
    assert!(
        traced.contains("apt-get"),
        "strace saw apt-get run: {traced}"
    );

    // Without the broken update: the held package warns, the rest fits.
    let status = root.path().join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).unwrap();
    let without_app: String = text
        .split("\n\n")
        .filter(|s| !s.starts_with("Package: app\n"))
        .collect::<Vec<_>>()
        .join("\n\n");
    std::fs::write(&status, without_app).unwrap();
    let c = simulate(root.path(), &["--simulate"]);
    assert_eq!(c["status"], "warn", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("1 package(s) to upgrade or install, 0 B to download, 2.8 MiB more installed: 1 held package(s) have an upgrade the patch run will not install: pinned"),
        "{c:#}"
    );
}

#[test]
fn check_shows_the_daemon_s_dry_run_and_runs_none_itself() {
    let root = common::fixture_root("apt-upgrade");
    let c = simulate(root.path(), &[]);
    assert_eq!(c["status"], "skip", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("no dry run recorded yet (the daemon runs one on each of its runs); `ssm-preflight check --simulate` runs it now"),
        "{c:#}"
    );
}

/// What `check --simulate` opened and locked, as `strace -f -y` saw it
/// (`-y`: each file descriptor with the path it resolves to, so a file
/// reached through a link is seen where it is).
pub(crate) fn trace(root: &std::path::Path) -> String {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=execve,open,openat,fcntl,flock",
            "-o",
        ])
        .arg(out_file.path())
        .arg(env!("CARGO_BIN_EXE_ssm-preflight"))
        .args([
            "check",
            "--json",
            "--mode",
            "local",
            "--only",
            "pkg.simulate",
            "--simulate",
            "--root",
        ])
        .arg(root)
        .arg("--config")
        .arg(config.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", common::NO_BUS)
        .env("STATE_DIRECTORY", root.join("no-state"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("strace (scripts/test installs it)");
    assert!(status.code().is_some_and(|c| c <= 2), "{status:?}");
    std::fs::read_to_string(out_file.path()).unwrap()
}

/// Every path under `root` with its size and modification time.
pub(crate) fn snapshot(root: &std::path::Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.push((
                e.path().display().to_string(),
                meta.len(),
                meta.modified().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// A tmpfs mount, lazily unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn archives_larger_than_the_cache_s_filesystem_fail_naming_the_sizes() {
    let root = common::fixture_root("apt-upgrade");
    let p = |s: &str| root.path().join(s);
    // From a mirror, not file:, so apt counts the archives it must fetch;
    // the lists keep their content under the name apt gives that mirror.
    // Nothing is fetched: the plan only prints the URIs.
    std::fs::write(
        p("etc/apt/sources.list"),
        "deb [trusted=yes] http://mirror.invalid/repo ./\n",
    )
    .unwrap();
    for list in ["Packages", "Release"] {
        std::fs::rename(
            p(&format!("var/lib/apt/lists/_srv_repo_._{list}")),
            p(&format!("var/lib/apt/lists/mirror.invalid_repo_._{list}")),
        )
        .unwrap();
    }
    // Without the update that cannot be resolved, and without the held one.
    let status = p("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).unwrap();
    let only_hello: String = text
        .split("\n\n")
        .filter(|s| !s.starts_with("Package: app\n") && !s.starts_with("Package: pinned\n"))
        .collect::<Vec<_>>()
        .join("\n\n");
    std::fs::write(&status, only_hello).unwrap();
    // hello 2.0's archive is 50 MB; the cache's filesystem has 4 MiB.
    let archives = p("var/cache/apt/archives");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&archives)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs (run as root)");
    let _mount = Tmpfs(archives.clone());
    std::fs::create_dir_all(archives.join("partial")).unwrap();

    let c = simulate(root.path(), &["--simulate"]);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["summary"].as_str().unwrap().ends_with(
            "the packages to download (47.7 MiB) do not fit in /var/cache/apt/archives (4.0 MiB free)"
        ),
        "{c:#}"
    );
    assert_eq!(c["details"]["download_bytes"], "50000000", "{c:#}");
}
