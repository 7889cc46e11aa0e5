//! The pending upgrade as the host's own package manager plans it, asked
//! without a lock and without a write (issue #27, `pkg.simulate`): apt's
//! plan in `apt`, dnf's in `dnf`, zypper's in `zypper`. yum (Amazon Linux
//! 2, RHEL 7) is not asked: it locks even for a dry run, and there is no
//! yum here to prove a way around it against.

pub mod apt;
pub mod dnf;
pub mod zypper;

use crate::host::command::{CommandError, Finished};
use crate::host::Root;
use std::path::Path;

/// Which package manager made the plan: the words and commands the check
/// shows follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    Dnf,
    Zypper,
}

/// What the package manager says the upgrade would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    pub manager: Manager,
    pub upgraded: Vec<String>,
    pub installed: Vec<String>,
    pub removed: Vec<String>,
    pub kept_back: Vec<String>,
    /// Bytes to download (archives not yet in the cache).
    pub download: Option<u64>,
    /// Bytes the installed packages grow by (negative: freed); dnf does
    /// not say it for an upgrade.
    pub installed_change: Option<i64>,
    /// What cannot be resolved: apt's unmet dependencies and `E:` lines,
    /// dnf's problems and the packages it would skip for them.
    pub unresolved: Vec<String>,
    /// Repositories the plan left out, having no metadata cached (dnf).
    pub ignored_repos: Vec<String>,
}

impl Simulation {
    pub fn new(manager: Manager) -> Self {
        Simulation {
            manager,
            upgraded: vec![],
            installed: vec![],
            removed: vec![],
            kept_back: vec![],
            download: None,
            installed_change: None,
            unresolved: vec![],
            ignored_repos: vec![],
        }
    }

    /// Whether dnf's or zypper's output held a plan at all: its sizes,
    /// "Nothing to do.", or a problem. Each prints one of these for every
    /// plan it makes; an output with none (a traceback, a broken rpmdb) is
    /// not "nothing to upgrade".
    pub fn planned(&self) -> bool {
        self.download.is_some() || !self.unresolved.is_empty()
    }

    /// The kernels among the packages to install: a reboot follows.
    pub fn kernels(&self) -> Vec<&str> {
        self.upgraded
            .iter()
            .chain(&self.installed)
            .map(String::as_str)
            .filter(|p| is_kernel(p))
            .collect()
    }
}

/// Debian's `linux-image-*`; the rpm distributions' `kernel`,
/// `kernel-core`, `kernel-uek`, `kernel-rt-core`, `kernel-64k-core`;
/// SUSE's `kernel-default` (zypper names a new one with its version)
/// — not `kernel-headers`, `kernel-tools` or `kernel-default-devel`,
/// which need no reboot.
fn is_kernel(package: &str) -> bool {
    let suse_versioned = package
        .strip_prefix("kernel-default-")
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
    package.starts_with("linux-image-")
        || package == "kernel"
        || package == "kernel-uek"
        || package == "kernel-default"
        || suse_versioned
        || (package.starts_with("kernel") && package.ends_with("-core"))
}

/// Where rpm keeps its database under `root`, as the host names it: newer
/// distributions under `/usr/lib/sysimage/rpm` (with `/var/lib/rpm` a
/// link to it).
fn rpmdb_dir(root: &Root) -> Option<&'static str> {
    const FILES: [&str; 3] = ["rpmdb.sqlite", "Packages", "Packages.db"];
    ["/usr/lib/sysimage/rpm", "/var/lib/rpm"]
        .into_iter()
        .find(|d| FILES.iter().any(|f| root.path(d).join(f).is_file()))
}

/// Copies the rpmdb in `from` to `to` with plain reads: reading it in
/// place through sqlite would take a shared lock on it and write its
/// `-shm` and `-wal` files. Not the lock, sqlite's shared-memory index, or
/// Berkeley DB's environment: the reader of the copy makes its own.
fn copy_rpmdb(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.starts_with('.') || n.starts_with("__db.") || n.ends_with("-shm") {
            continue;
        }
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// A scratch directory for a dry run's copies and writes, removed when
/// dropped: under `/var/tmp`, which is on disk where `/tmp` may be memory
/// (an rpmdb copy is tens of MB), else the system's temporary directory.
fn scratch(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match builder.tempdir_in("/var/tmp") {
        Ok(dir) => Ok(dir),
        Err(_) => builder.tempdir(),
    }
}

/// Both streams of a finished dry run, as one text to read.
fn output(finished: &Finished) -> String {
    format!("{}\n{}", finished.stdout, finished.stderr)
}

/// A dry run that printed no plan: the error names the command and shows
/// its last lines.
fn no_plan(command: &str, finished: Finished) -> CommandError {
    let text = output(&finished);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // A repository URL in an error may carry `user:password@`.
    let tail: Vec<String> = lines[lines.len().saturating_sub(3)..]
        .iter()
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    if word.contains("://") {
                        crate::text::redact_url(word)
                    } else {
                        word.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    CommandError::Failed {
        command: command.to_string(),
        status: finished.status,
        stderr: format!("it printed no plan, and ended: {}", tail.join(" / ")),
    }
}
