//! The pending upgrade as the host's own package manager plans it, asked
//! without a lock and without a write (issue #27, `pkg.simulate`): apt's
//! plan in `apt`, dnf's in `dnf`. yum (Amazon Linux 2, RHEL 7) and zypper
//! are not asked: each takes a lock of its own even for a dry run.

pub mod apt;
pub mod dnf;

/// Which package manager made the plan: the words and commands the check
/// shows follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    Dnf,
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
/// `kernel-core`, `kernel-uek`, `kernel-rt-core`, `kernel-64k-core`
/// (not `kernel-headers` or `kernel-tools`, which need no reboot).
fn is_kernel(package: &str) -> bool {
    package.starts_with("linux-image-")
        || package == "kernel"
        || package == "kernel-uek"
        || (package.starts_with("kernel") && package.ends_with("-core"))
}
