//! `pkg.simulate` with the real dnf 4 (Debian's package of it), planning a
//! RHEL-shaped tree's upgrade from its own rpmdb, repositories and cached
//! metadata (issue #27): packages built with rpmbuild at test time, served
//! by a loopback mirror, cached by a real `dnf makecache` in the tree. Then
//! the dry run, watched by strace: no lock and no write under the tree.

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

/// A RHEL 9-shaped tree whose rpmdb has the 1.0 packages and whose dnf
/// cache holds a loopback mirror's metadata with their updates.
struct Node {
    tree: tempfile::TempDir,
    _mirror: tempfile::TempDir,
    _server: tokio::runtime::Runtime,
}

impl Node {
    fn new() -> Node {
        for tool in ["/usr/bin/dnf", "/usr/bin/rpmbuild", "/usr/bin/createrepo_c"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test installs dnf, rpm and createrepo-c"
            );
        }
        let built = tempfile::tempdir().unwrap();
        let mirror = tempfile::tempdir().unwrap();
        let release = "Provides: system-release(releasever) = 9";
        rpm(built.path(), "redhat-release", "9.4", release, 100);
        for (name, old, new, needs, size) in [
            // 2.0 needs a package no repository has.
            ("app", "1.0", "2.0", "Requires: libgone >= 2", 1000),
            ("tool", "1.0", "1.1", "", 300_000),
            ("kernel-core", "5.14.0", "5.14.1", "", 2000),
            ("pinned", "1.0", "2.0", "", 1000),
        ] {
            rpm(built.path(), name, old, "", 100);
            rpm(mirror.path(), name, new, needs, size);
        }
        run(Command::new("createrepo_c").arg("-q").arg(mirror.path()));
        let (addr, server) = common::signed_repo::serve_dir(mirror.path().to_path_buf());

        let tree = tempfile::tempdir().unwrap();
        let p = |s: &str| tree.path().join(s);
        for d in ["etc/yum.repos.d", "etc/dnf/plugins", "var/lib/rpm"] {
            std::fs::create_dir_all(p(d)).unwrap();
        }
        std::fs::write(
            p("etc/os-release"),
            "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\n",
        )
        .unwrap();
        std::fs::write(
            p("etc/dnf/dnf.conf"),
            "[main]\ngpgcheck=1\nbest=True\nskip_if_unavailable=False\n",
        )
        .unwrap();
        std::fs::write(
            p("etc/yum.repos.d/mirror.repo"),
            format!(
                "[mirror]\nname=A loopback mirror\nbaseurl=http://{addr}/\nenabled=1\ngpgcheck=0\n"
            ),
        )
        .unwrap();
        // versionlock holds `pinned` at 1.0.
        std::fs::write(
            p("etc/dnf/plugins/versionlock.conf"),
            "[main]\nenabled=1\nlocklist=/etc/dnf/plugins/versionlock.list\n",
        )
        .unwrap();
        std::fs::write(
            p("etc/dnf/plugins/versionlock.list"),
            "# Added locks\npinned-0:1.0-1.*\n",
        )
        .unwrap();
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
        // The metadata, as the host's last `dnf makecache` left it.
        let home = tempfile::tempdir().unwrap();
        run(Command::new("dnf")
            .arg(format!("--installroot={}", tree.path().display()))
            .args(["--releasever=9", "-q", "makecache"])
            .env("HOME", home.path()));
        Node {
            tree,
            _mirror: mirror,
            _server: server,
        }
    }

    fn path(&self) -> &Path {
        self.tree.path()
    }
}

#[test]
fn dnf_plans_the_tree_s_upgrade_without_a_lock_or_a_write() {
    let node = Node::new();
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

    // Watched from outside: every lock dnf takes, and every file it opens
    // for writing, is in its scratch directory — none in the tree, whose
    // cached repositories it reads through links (`-y` resolves them).
    let traced = trace(node.path());
    let tree = node.path().display().to_string();
    let under_tree = |l: &&str| l.contains(&format!("<{tree}")) || l.contains(&format!("\"{tree}"));
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
        traced.contains(&format!("<{tree}/var/cache/dnf/")),
        "the cached metadata was read through its links, and strace named where they lead: {traced}"
    );
    assert!(
        traced.contains("/usr/bin/dnf")
            && traced.contains("rpmdb.sqlite")
            && traced.contains("repomd.xml"),
        "strace saw dnf read the rpmdb copy and the cached metadata: {traced}"
    );
    // And the scratch directory is gone.
    let opened = traced
        .lines()
        .filter_map(|l| l.split('"').nth(1))
        .find_map(|p| p.split_once("/ssm-preflight-dnf-"))
        .expect("dnf's scratch directory in the trace");
    let suffix = opened.1.split('/').next().unwrap();
    let dir = format!("{}/ssm-preflight-dnf-{suffix}", opened.0);
    assert!(!Path::new(&dir).exists(), "{dir} was left behind");

    // Without the broken update: the held package warns, a kernel among
    // the upgrades means a reboot, and the download is what the mirror
    // serves (the new tool is 300 kB of noise).
    run(Command::new("rpm")
        .arg(format!("--root={}", node.path().display()))
        .args(["--dbpath=/var/lib/rpm", "-e", "--justdb", "--nodeps", "app"]));
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
    let c = simulate(node.path(), &["--simulate"]);
    assert_eq!(c["status"], "warn", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("2 package(s) to upgrade or install (kernel kernel-core among them: a reboot follows), "),
        "{c:#}"
    );
    assert!(
        summary.ends_with("to download: 1 held package(s) have an upgrade the patch run will not install: pinned; 1 package(s) that exclude= hides from dnf have an upgrade the patch run installs anyway, as its payload does not honour exclude=: kernel-core (kernel* in /etc/dnf/dnf.conf [main]) (reject them in the patch baseline to keep them back); the plan leaves out extras, which has no metadata cached (`sudo dnf makecache` fetches it)"),
        "{c:#}"
    );
    assert_eq!(c["details"]["held"], "pinned", "{c:#}");
    assert_eq!(c["details"]["reboot_expected"], "yes", "{c:#}");
    let download: u64 = c["details"]["download_bytes"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((300_000..320_000).contains(&download), "{c:#}");
}
