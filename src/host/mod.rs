//! Facts about the host, read from files under a root directory so that tests
//! run on fixture trees (`tests/fixtures/<case>/…`) instead of this machine.

pub mod agent;
pub mod agent_log;
pub mod apt_keys;
pub mod command;
pub mod credentials;
pub mod disk;
pub mod excludes;
pub mod gpgv;
pub mod ini;
pub mod locks;
pub mod memory;
pub mod mode;
pub mod mounts;
pub mod openpgp;
pub mod os_release;
pub mod pkg_state;
pub mod proc_locks;
pub mod process;
pub mod python;
pub mod reboot;
pub mod repo_tls;
pub mod repos;
pub mod simulate;
pub mod systemd;
pub mod timer;
pub mod version;

use std::path::{Path, PathBuf};

/// The directory that stands for `/`: `/` itself in production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Root(path.into())
    }

    /// The real location of an absolute host path such as `/etc/os-release`.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.0.join(host_path.trim_start_matches('/'))
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Default for Root {
    fn default() -> Self {
        Root(PathBuf::from("/"))
    }
}

/// What a path is, in words (the config, a leaf, owns it: it reads files too).
pub use crate::config::kind_of;

/// Reads a small text file, `None` when it does not exist. Anything but a
/// regular file is an error naming what it is: a FIFO would block the read
/// until someone writes to it. (Files under /proc and /sys are regular.)
pub fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(std::io::Error::other(format!(
                "{} is {}, not a regular file",
                path.display(),
                kind_of(&meta)
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a small text file within `budget`, `None` when it does not exist.
/// A file on a hung mount (a dead NFS or FUSE server) never answers: its
/// reading thread is left behind and the caller hears `TimedOut`.
pub fn read_within(path: &Path, budget: std::time::Duration) -> std::io::Result<Option<String>> {
    let owned = path.to_path_buf();
    within(budget, move || read_optional(&owned)).unwrap_or_else(|| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "{} did not answer within {}",
                path.display(),
                humantime::format_duration(budget)
            ),
        ))
    })
}

/// Runs file work that could block on a hung mount in a thread of its own,
/// and gives up waiting after `budget` (`None`; the thread stays stuck in
/// the kernel). For work outside a check, whose own timeout bounds it.
pub fn within<T: Send + 'static>(
    budget: std::time::Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    start(work).wait(budget)
}

/// Work started on a worker now, its answer awaited later within a bound:
/// the caller does something else meanwhile.
pub struct Pending<T>(std::sync::mpsc::Receiver<T>);

impl<T> Pending<T> {
    /// The answer, or `None` when it has not come within `budget` of now.
    pub fn wait(self, budget: std::time::Duration) -> Option<T> {
        self.0.recv_timeout(budget).ok()
    }
}

/// Starts `work` on a worker (see `spawn_worker`).
pub fn start<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_worker(move || {
        let _ = tx.send(work());
    });
    Pending(rx)
}

/// Runs `work` on a thread that may block: the async runtime's blocking
/// pool when there is one (its threads serve the checks next, so no thread
/// is created for this alone), else a thread of its own.
pub fn spawn_worker(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(work);
        }
        Err(_) => {
            std::thread::spawn(work);
        }
    }
}

/// The package manager that a patch run on this host will drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
    Zypper,
}

impl PackageManager {
    /// The first one whose binary exists under `root` (dnf before yum: on
    /// RHEL 8+ `yum` is a link to dnf).
    pub fn detect(root: &Root) -> Option<PackageManager> {
        [
            ("/usr/bin/apt-get", PackageManager::Apt),
            ("/usr/bin/dnf", PackageManager::Dnf),
            ("/usr/bin/yum", PackageManager::Yum),
            ("/usr/bin/zypper", PackageManager::Zypper),
        ]
        .into_iter()
        .find(|(path, _)| root.path(path).exists())
        .map(|(_, pm)| pm)
    }

    /// The command that empties the package cache.
    pub fn clean_command(self) -> &'static str {
        match self {
            PackageManager::Apt => "sudo apt-get clean",
            PackageManager::Dnf => "sudo dnf clean all",
            PackageManager::Yum => "sudo yum clean all",
            PackageManager::Zypper => "sudo zypper clean --all",
        }
    }

    /// The command that removes kernels older than the running one.
    pub fn remove_old_kernels_command(self) -> &'static str {
        match self {
            PackageManager::Apt => "sudo apt-get autoremove --purge",
            PackageManager::Dnf => "sudo dnf remove --oldinstallonly",
            PackageManager::Yum => "sudo package-cleanup --oldkernels --count=2",
            PackageManager::Zypper => "sudo zypper purge-kernels",
        }
    }
}

/// A file of one record per line: the records read, and how many
/// non-blank lines could not be (the kernel's files change shape between
/// versions; a line we cannot read is counted, not fatal).
pub fn parse_lines<T>(text: &str, parse_line: fn(&str) -> Option<T>) -> (Vec<T>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Some(record) => out.push(record),
            None => bad += 1,
        }
    }
    (out, bad)
}
