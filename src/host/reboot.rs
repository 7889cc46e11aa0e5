//! What says the host waits for a reboot: `/run/reboot-required`,
//! `needs-restarting -r`, and the running kernel against the newest installed.

use super::{read_optional, version, Root};
use std::time::Duration;

pub const REBOOT_REQUIRED: &str = "/run/reboot-required";

pub const NEEDS_RESTARTING: &[&str] = &["/usr/bin/needs-restarting", "/usr/sbin/needs-restarting"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeedsRestarting {
    NotInstalled,
    /// Exit 1: a reboot is needed; 0: not.
    Said {
        reboot: bool,
    },
    /// It ran but gave no usable answer.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Whether this host uses the Debian `/run/reboot-required` convention.
    pub debian_family: bool,
    /// `Some(packages)` when /run/reboot-required exists.
    pub reboot_required: Option<Vec<String>>,
    pub running_kernel: Option<String>,
    pub installed_kernels: Vec<String>,
    pub needs_restarting: NeedsRestarting,
}

pub fn gather(root: &Root, budget: Duration) -> Facts {
    let reboot_required = root.path(REBOOT_REQUIRED).exists().then(|| {
        read_optional(&root.path(&format!("{REBOOT_REQUIRED}.pkgs")))
            .ok()
            .flatten()
            .map(|t| {
                t.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    });
    let running_kernel = read_optional(&root.path("/proc/sys/kernel/osrelease"))
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Facts {
        debian_family: root.path("/var/lib/dpkg").is_dir(),
        reboot_required,
        running_kernel,
        installed_kernels: installed_kernels(root),
        needs_restarting: needs_restarting(root, budget),
    }
}

/// Kernels in /boot (`vmlinuz-<release>`) and /usr/lib/modules/<release>/vmlinuz.
pub fn installed_kernels(root: &Root) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir(root.path("/boot")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                // RHEL's rescue image is not a kernel anyone boots by default.
                if !release.starts_with("0-rescue") && !release.is_empty() {
                    found.push(release.to_string());
                }
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(root.path("/usr/lib/modules")) {
        for e in dir.flatten() {
            if e.path().join("vmlinuz").is_file() {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found.sort_by(|a, b| version::compare(a, b));
    found.dedup();
    found
}

pub fn needs_restarting(root: &Root, budget: Duration) -> NeedsRestarting {
    use wait_timeout::ChildExt;
    let Some(path) = NEEDS_RESTARTING
        .iter()
        .map(|p| root.path(p))
        .find(|p| p.is_file())
    else {
        return NeedsRestarting::NotInstalled;
    };
    let child = std::process::Command::new(&path)
        .arg("-r")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return NeedsRestarting::Failed(format!("cannot run {}: {e}", path.display())),
    };
    match child.wait_timeout(budget) {
        Ok(Some(status)) => match status.code() {
            Some(0) => NeedsRestarting::Said { reboot: false },
            Some(1) => NeedsRestarting::Said { reboot: true },
            other => NeedsRestarting::Failed(format!("needs-restarting -r exited with {other:?}")),
        },
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            NeedsRestarting::Failed(format!(
                "needs-restarting -r did not answer within {}",
                humantime::format_duration(budget)
            ))
        }
        Err(e) => NeedsRestarting::Failed(e.to_string()),
    }
}
