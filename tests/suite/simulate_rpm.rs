//! `pkg.simulate` with the real dnf 4 and zypper (Debian's packages of
//! them), planning a RHEL- or SLES-shaped tree's upgrade from its own
//! rpmdb, repositories and cached metadata (issue #27): packages built with
//! rpmbuild at test time, served by a loopback mirror, cached by a real
//! `dnf makecache` / `zypper refresh` in the tree. Then the dry run,
//! watched by strace: no lock and no write under the tree.

use crate::common;
use crate::simulate::{simulate, snapshot, trace};
use std::path::Path;
use std::process::Command;

/// Builds a noarch rpm into `out` with `size` bytes of payload.
fn rpm(out: &Path, name: &str, version: &str, extra: &str, size: usize) {
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: {name}, a test package\n\
             License: MIT\nBuildArch: noarch\n{extra}\n%description\nA test package.\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
             head -c {size} /dev/urandom > %{{buildroot}}/usr/share/{name}/data\n\
             %files\n/usr/share/{name}/data\n"
        ),
    )
    .unwrap();
    let status = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", out.display()))
        .arg("--define")
        .arg("_build_name_fmt %{NAME}-%{VERSION}.rpm")
        .arg(&spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("rpmbuild (scripts/test installs rpm)");
    assert!(status.success(), "rpmbuild {name} {version}");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// RHEL 9: dnf, versionlock holding `pinned`.
    Dnf,
    /// SLES 15: zypper, a package lock on `pinned`.
    Zypper,
}

/// A tree whose rpmdb has the 1.0 packages and whose package manager's
/// cache holds a loopback mirror's metadata with their updates.
struct Node {
    tree: tempfile::TempDir,
    _mirror: tempfile::TempDir,
    _server: tokio::runtime::Runtime,
}

impl Node {
    fn new(kind: Kind) -> Node {
        let manager = match kind {
            Kind::Dnf => "/usr/bin/dnf",
            Kind::Zypper => "/usr/bin/zypper",
        };
        for tool in [manager, "/usr/bin/rpmbuild", "/usr/bin/createrepo_c"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test installs dnf, zypper, rpm and createrepo-c"
            );
        }
        let built = tempfile::tempdir().unwrap();
        let mirror = tempfile::tempdir().unwrap();
        let (release, kernel) = match kind {
            Kind::Dnf => ("redhat-release", "kernel-core"),
            Kind::Zypper => ("sles-release", "kernel-default"),
        };
        let provides = "Provides: system-release(releasever) = 9";
        rpm(built.path(), release, "9.4", provides, 100);
        for (name, old, new, needs, size) in [
            // 2.0 needs a package no repository has.
            ("app", "1.0", "2.0", "Requires: libgone >= 2", 1000),
            ("tool", "1.0", "1.1", "", 300_000),
            (kernel, "5.14.0", "5.14.1", "", 2000),
            ("pinned", "1.0", "2.0", "", 1000),
        ] {
            rpm(built.path(), name, old, "", 100);
            rpm(mirror.path(), name, new, needs, size);
        }
        run(Command::new("createrepo_c").arg("-q").arg(mirror.path()));
        let (addr, server) = common::signed_repo::serve_dir(mirror.path().to_path_buf());

        let tree = tempfile::tempdir().unwrap();
        let p = |s: &str| tree.path().join(s);
        let write = |s: &str, text: &str| {
            std::fs::create_dir_all(p(s).parent().unwrap()).unwrap();
            std::fs::write(p(s), text).unwrap();
        };
        std::fs::create_dir_all(p("var/lib/rpm")).unwrap();
        // The installed packages, into the tree's own rpmdb.
        let installed: Vec<_> = std::fs::read_dir(built.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        run(Command::new("rpm")
            .arg(format!("--root={}", tree.path().display()))
            .args([
                "--dbpath=/var/lib/rpm",
                "-i",
                "--justdb",
                "--nodeps",
                "--noscripts",
            ])
            .args(&installed));
        // The metadata, as the host's last refresh left it; the package
        // manager's own files (log, lock, temporary keyrings) kept in the
        // tree or a directory of the test's.
        let scratch = tempfile::tempdir().unwrap();
        let mirror_repo = format!(
            "[mirror]\nname=A loopback mirror\nbaseurl=http://{addr}/\nenabled=1\ngpgcheck=0\n"
        );
        match kind {
            Kind::Dnf => {
                write("etc/os-release", "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\n");
                write(
                    "etc/dnf/dnf.conf",
                    "[main]\ngpgcheck=1\nbest=True\nskip_if_unavailable=False\n",
                );
                write("etc/yum.repos.d/mirror.repo", &mirror_repo);
                // versionlock holds `pinned` at 1.0.
                write(
                    "etc/dnf/plugins/versionlock.conf",
                    "[main]\nenabled=1\nlocklist=/etc/dnf/plugins/versionlock.list\n",
                );
                write(
                    "etc/dnf/plugins/versionlock.list",
                    "# Added locks\npinned-0:1.0-1.*\n",
                );
                run(Command::new("dnf")
                    .arg(format!("--installroot={}", tree.path().display()))
                    .args(["--releasever=9", "-q", "makecache"])
                    .env("HOME", scratch.path()));
            }
            Kind::Zypper => {
                write(
                    "etc/os-release",
                    "NAME=\"SLES\"\nID=\"sles\"\nVERSION_ID=\"15.6\"\n",
                );
                write("etc/zypp/zypp.conf", "[main]\n");
                write(
                    "etc/zypp/repos.d/mirror.repo",
                    &format!("{mirror_repo}autorefresh=0\ntype=rpm-md\n"),
                );
                write("etc/zypp/locks", "type: package\nmatch_type: glob\ncase_sensitive: on\nsolvable_name: pinned\n\n");
                run(Command::new("zypper")
                    .arg("--non-interactive")
                    .arg("--root")
                    .arg(tree.path())
                    .args(["-q", "refresh"])
                    .env("HOME", scratch.path())
                    .env("TMPDIR", scratch.path())
                    .env("ZYPP_LOGFILE", scratch.path().join("zypper.log"))
                    .env("ZYPP_CONF", p("etc/zypp/zypp.conf")));
            }
        }
        Node {
            tree,
            _mirror: mirror,
            _server: server,
        }
    }

    fn path(&self) -> &Path {
        self.tree.path()
    }

    /// Removes `package` from the tree's rpmdb.
    fn remove(&self, package: &str) {
        run(Command::new("rpm")
            .arg(format!("--root={}", self.path().display()))
            .args([
                "--dbpath=/var/lib/rpm",
                "-e",
                "--justdb",
                "--nodeps",
                package,
            ]));
    }

    /// `check --simulate` under strace: every lock the package manager
    /// takes, and every file it opens for writing, is in its scratch
    /// directory — none in the tree, whose cached metadata it reads
    /// (through links, for dnf: `-y` resolves them). Its scratch directory
    /// is gone after.
    fn assert_untouched_by(&self, manager: &str, metadata: &str) {
        let traced = trace(self.path());
        let tree = self.path().display().to_string();
        let under_tree =
            |l: &&str| l.contains(&format!("<{tree}")) || l.contains(&format!("\"{tree}"));
        let locked: Vec<&str> = traced
            .lines()
            .filter(|l| l.contains("F_SETLK") || l.contains("F_OFD_SETLK") || l.contains("flock("))
            .filter(under_tree)
            .collect();
        assert!(locked.is_empty(), "locks taken in the tree: {locked:?}");
        let written: Vec<&str> = traced
            .lines()
            .filter(|l| l.contains("O_WRONLY") || l.contains("O_RDWR") || l.contains("O_CREAT"))
            .filter(under_tree)
            .collect();
        assert!(
            written.is_empty(),
            "opened for writing in the tree: {written:?}"
        );
        assert!(
            traced.contains(&format!("<{tree}{metadata}")),
            "the cached metadata was read where it is ({metadata}): {traced}"
        );
        assert!(
            traced.contains(&format!("/usr/bin/{manager}")) && traced.contains("rpmdb.sqlite"),
            "strace saw {manager} run and read the rpmdb copy: {traced}"
        );
        let prefix = format!("/ssm-preflight-{manager}-");
        let opened = traced
            .lines()
            .filter_map(|l| l.split('"').nth(1))
            .find_map(|p| p.split_once(prefix.as_str()))
            .expect("the scratch directory in the trace");
        let suffix = opened.1.split('/').next().unwrap();
        let dir = format!("{}{prefix}{suffix}", opened.0);
        assert!(!Path::new(&dir).exists(), "{dir} was left behind");
    }
}

#[test]
fn dnf_plans_the_tree_s_upgrade_without_a_lock_or_a_write() {
    let node = Node::new(Kind::Dnf);
    let before = snapshot(node.path());
    let c = simulate(node.path(), &["--simulate"]);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["summary"].as_str().unwrap().contains(
            "dnf cannot plan the upgrade: cannot install the best update candidate for package app-1.0-1.noarch; nothing provides libgone >= 2 needed by app-2.0-1.noarch"
        ),
        "{c:#}"
    );
    assert_eq!(c["details"]["package_manager"], "dnf", "{c:#}");
    assert_eq!(before, snapshot(node.path()), "dnf wrote under the tree");

    node.assert_untouched_by("dnf", "/var/cache/dnf/mirror-");

    // Without the broken update: the held package warns, a kernel among
    // the upgrades means a reboot, and the download is what the mirror
    // serves (the new tool is 300 kB of noise).
    node.remove("app");
    // exclude= hides the kernel from dnf, not from the payload.
    std::fs::write(
        node.path().join("etc/dnf/dnf.conf"),
        "[main]\ngpgcheck=1\nbest=True\nexclude=kernel*\n",
    )
    .unwrap();
    // A repository added since the last makecache has no metadata.
    std::fs::write(
        node.path().join("etc/yum.repos.d/extras.repo"),
        "[extras]\nname=Added since the last makecache\nbaseurl=http://127.0.0.1:9/\nenabled=1\ngpgcheck=0\n",
    )
    .unwrap();
    assert_warns(
        &simulate(node.path(), &["--simulate"]),
        "kernel-core",
        "to download: 1 held package(s) have an upgrade the patch run will not install: pinned; 1 package(s) that exclude= hides from dnf have an upgrade the patch run installs anyway, as its payload does not honour exclude=: kernel-core (kernel* in /etc/dnf/dnf.conf [main]) (reject them in the patch baseline to keep them back); the plan leaves out extras, which has no metadata cached (`sudo dnf makecache` fetches it)",
    );

    // With no metadata cached, there is nothing to plan with: a skip that
    // names the refresh, never a pass.
    std::fs::remove_dir_all(node.path().join("var/cache/dnf")).unwrap();
    let c = simulate(node.path(), &["--simulate"]);
    assert_eq!(c["status"], "skip", "{c:#}");
    assert_eq!(
        c["summary"],
        "dnf has no repository metadata in /var/cache/dnf to plan with; the patch run refreshes them first (`sudo dnf makecache` does the same)",
        "{c:#}"
    );
}

#[test]
fn zypper_plans_the_tree_s_upgrade_without_a_lock_or_a_write() {
    let node = Node::new(Kind::Zypper);
    let before = snapshot(node.path());
    let c = simulate(node.path(), &["--simulate"]);
    // `update` leaves app 2.0 out; asked for it, zypper names why.
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("zypper cannot plan the upgrade: nothing provides libgone >= 2 needed by app-2.0-1.noarch"),
        "{c:#}"
    );
    assert_eq!(c["details"]["package_manager"], "zypper", "{c:#}");
    assert_eq!(before, snapshot(node.path()), "zypper wrote under the tree");
    node.assert_untouched_by("zypper", "/var/cache/zypp/raw/mirror/");

    node.remove("app");
    assert_warns(
        &simulate(node.path(), &["--simulate"]),
        "kernel-default",
        "more installed: 1 held package(s) have an upgrade the patch run will not install: pinned",
    );
}

/// The plan of a tree without the broken update: a warning whose summary
/// starts with the two upgrades (`kernel` among them, so a reboot follows)
/// and ends with `ending`; `pinned` held; the download what the mirror
/// serves (the new tool is 300 kB of noise).
fn assert_warns(c: &serde_json::Value, kernel: &str, ending: &str) {
    assert_eq!(c["status"], "warn", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    let start = format!(
        "2 package(s) to upgrade or install (kernel {kernel} among them: a reboot follows), "
    );
    assert!(summary.starts_with(&start), "{c:#}");
    assert!(summary.ends_with(ending), "{c:#}");
    assert_eq!(c["details"]["held"], "pinned", "{c:#}");
    assert_eq!(c["details"]["reboot_expected"], "yes", "{c:#}");
    let download: u64 = c["details"]["download_bytes"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((300_000..320_000).contains(&download), "{c:#}");
}
