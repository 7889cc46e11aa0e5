//! The package database's own state: an interrupted dpkg or yum
//! transaction, and the host's update timers as systemd schedules them.

use super::systemd::{self, BusError, SystemBus};
use super::Root;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DPKG_DIR: &str = "/var/lib/dpkg";

pub const YUM_DIR: &str = "/var/lib/yum";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub dpkg_present: bool,
    /// Journal entries in /var/lib/dpkg/updates.
    pub dpkg_journal: Vec<String>,
    /// Packages in a state other than installed / not-installed / config-files.
    pub dpkg_unfinished: Vec<(String, String)>,
    pub yum_present: bool,
    pub yum_unfinished: Vec<String>,
    /// Files that exist but could not be read.
    pub unreadable: Vec<String>,
    /// Automatic-update timers that are active, and when each next fires.
    pub timers: Vec<Timer>,
    /// Why the timers could not be listed (no bus, systemd not answering).
    pub timers_unknown: Option<String>,
    /// A live process holding dpkg's lock: with journal entries waiting,
    /// that is dpkg at work, not dpkg interrupted.
    pub dpkg_holder: Option<super::locks::Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub name: String,
    pub next: Option<SystemTime>,
}

/// Timers that install or download updates on their own.
pub const UPDATE_TIMERS: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dnf-automatic.timer",
    "dnf-automatic-install.timer",
    "dnf-automatic-download.timer",
    "dnf5-automatic.timer",
    "yum-cron.timer",
];

/// The active update timers on this host, asked about all at once.
pub async fn timers(bus: &SystemBus) -> Result<Vec<Timer>, BusError> {
    let answers =
        futures_util::future::join_all(UPDATE_TIMERS.iter().map(|name| systemd::unit(bus, name)))
            .await;
    let mut found = Vec::new();
    for unit in answers {
        let unit = unit?;
        if unit.exists() && unit.active_state == "active" {
            let next = unit
                .next_elapse_usec
                .filter(|u| *u > 0 && *u != u64::MAX)
                .map(|u| UNIX_EPOCH + Duration::from_micros(u));
            found.push(Timer {
                name: unit.name,
                next,
            });
        }
    }
    Ok(found)
}

pub fn gather(root: &Root) -> Facts {
    let mut f = Facts {
        dpkg_present: root.path(DPKG_DIR).is_dir(),
        yum_present: root.path(YUM_DIR).is_dir(),
        ..Default::default()
    };
    if f.dpkg_present {
        match std::fs::read_dir(root.path(&format!("{DPKG_DIR}/updates"))) {
            Ok(dir) => {
                let mut names: Vec<String> = dir
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // dpkg writes tmp.i while it records; only numbered entries are a journal.
                    .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
                    .collect();
                names.sort();
                f.dpkg_journal = names;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => f.unreadable.push(format!("{DPKG_DIR}/updates ({e})")),
        }
        match std::fs::read_to_string(root.path(&format!("{DPKG_DIR}/status"))) {
            Ok(text) => f.dpkg_unfinished = unfinished_packages(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => f.unreadable.push(format!("{DPKG_DIR}/status ({e})")),
        }
    }
    if !f.dpkg_journal.is_empty() || !f.dpkg_unfinished.is_empty() {
        // Looked up only when it matters: who holds dpkg's lock (queried, never taken).
        f.dpkg_holder = super::locks::gather(root)
            .findings
            .into_iter()
            .find_map(|finding| match finding {
                super::locks::Finding::Held(h) if h.tool == "dpkg" => Some(h),
                _ => None,
            });
    }
    if f.yum_present {
        match std::fs::read_dir(root.path(YUM_DIR)) {
            Ok(dir) => {
                let mut names: Vec<String> = dir
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("transaction-all."))
                    .collect();
                names.sort();
                f.yum_unfinished = names;
            }
            // Unread is not "no interrupted run" (issue #17).
            Err(e) => f.unreadable.push(format!("{YUM_DIR} ({e})")),
        }
    }
    f
}

/// Packages whose dpkg `Status:` is neither installed nor removed.
pub fn unfinished_packages(status_file: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in status_file.split("\n\n") {
        let mut name = None;
        let mut state = None;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Status:") {
                // "install ok installed": want, flag, state
                state = v.split_whitespace().nth(2).map(str::to_string);
            }
        }
        if let (Some(name), Some(state)) = (name, state) {
            if !matches!(
                state.as_str(),
                "installed" | "not-installed" | "config-files"
            ) {
                out.push((name, state));
            }
        }
    }
    out
}
