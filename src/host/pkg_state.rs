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
        match std::fs::read(root.path(&format!("{DPKG_DIR}/status"))) {
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

/// The packages dpkg's status file shows in a state other than installed,
/// not-installed or config-files, as (name, state).
///
/// Only the `Status:` lines are read: memchr's vectorised search finds
/// them, and a package's stanza is read only when its state is
/// unfinished. (Splitting the whole file into stanzas and lines first,
/// as this did, cost 8 million instructions for a 700-package host's
/// 600 KB: three quarters of a `check` on the real root.) Bytes, not text:
/// a description in another encoding must not make the file unreadable.
pub fn unfinished_packages(status_file: &[u8]) -> Vec<(String, String)> {
    packages_where(status_file, |_, state| {
        !matches!(state, b"installed" | b"not-installed" | b"config-files")
    })
}

/// The installed packages marked `hold` (`apt-mark hold`): apt's upgrade
/// keeps them back, so the patch run leaves them as they are.
pub fn held_packages(status_file: &[u8]) -> Vec<String> {
    packages_where(status_file, |want, state| {
        want == b"hold" && state == b"installed"
    })
    .into_iter()
    .map(|(name, _)| name)
    .collect()
}

/// The (name, state) of each package whose `Status:` (want, flag, state)
/// `keep` keeps.
fn packages_where(
    status_file: &[u8],
    keep: impl Fn(&[u8], &[u8]) -> bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(status_file, b"Status:") {
        // A field begins a line; the word elsewhere is not one.
        if at > 0 && status_file[at - 1] != b'\n' {
            continue;
        }
        let value_end =
            memchr::memchr(b'\n', &status_file[at..]).map_or(status_file.len(), |n| at + n);
        // "install ok installed": want, flag, state.
        let mut words = status_file[at + b"Status:".len()..value_end]
            .split(u8::is_ascii_whitespace)
            .filter(|word| !word.is_empty());
        let (Some(want), Some(state)) = (words.next(), words.nth(1)) else {
            continue;
        };
        if !keep(want, state) {
            continue;
        }
        // The package's stanza: between the blank lines around this one.
        let start = memchr::memmem::rfind(&status_file[..at], b"\n\n").map_or(0, |n| n + 2);
        let end =
            memchr::memmem::find(&status_file[at..], b"\n\n").map_or(status_file.len(), |n| at + n);
        let name = status_file[start..end]
            .split(|b| *b == b'\n')
            .find_map(|line| line.strip_prefix(b"Package:"));
        if let Some(name) = name {
            out.push((
                String::from_utf8_lossy(name.trim_ascii()).into_owned(),
                String::from_utf8_lossy(state).into_owned(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{held_packages, unfinished_packages};

    #[test]
    fn held_packages_are_the_installed_ones_marked_hold() {
        let text = b"Package: a\nStatus: hold ok installed\n\nPackage: b\nStatus: install ok installed\n\nPackage: c\nStatus: hold ok config-files\n";
        assert_eq!(held_packages(text), ["a"]);
    }

    /// The reading this replaced, kept as the reference: every stanza,
    /// every line.
    fn stanza_by_stanza(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for stanza in text.split("\n\n") {
            let (mut name, mut state) = (None, None);
            for line in stanza.lines() {
                if let Some(v) = line.strip_prefix("Package:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("Status:") {
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

    #[test]
    fn status_file_states() {
        let cases: [(&str, &[(&str, &str)]); 3] = [
            (
                "Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: install ok half-configured\nVersion: 1\n\nPackage: c\nStatus: deinstall ok config-files\n\nPackage: d\nStatus: install reinstreq half-installed\n",
                &[("b", "half-configured"), ("d", "half-installed")],
            ),
            // The word Status inside a field is not a status line.
            (
                "Package: a\nStatus: install ok installed\nDescription: x\n Status: install ok half-installed\nX-Status: install ok unpacked\n\nPackage: b\nStatus: install ok unpacked\n",
                &[("b", "unpacked")],
            ),
            // The Package line is looked for in the whole stanza, wherever it is.
            (
                "Status: install ok half-configured\nPackage: first\n\nPackage: last\nStatus: install reinstreq half-installed",
                &[("first", "half-configured"), ("last", "half-installed")],
            ),
        ];
        for (text, want) in cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(p, s)| (p.to_string(), s.to_string()))
                .collect();
            assert_eq!(unfinished_packages(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn a_status_at_the_file_edges() {
        // A stanza with no package name, a short Status, an empty file.
        assert!(unfinished_packages(
            b"Status: install ok unpacked\n\nPackage: c\nStatus: install\n"
        )
        .is_empty());
        assert!(unfinished_packages(b"").is_empty());
    }

    #[test]
    fn a_description_in_latin_1_does_not_hide_the_states() {
        let text = b"Package: a\nStatus: install ok unpacked\nDescription: caf\xe9\n\nPackage: b\nStatus: install ok installed\n";
        assert_eq!(
            unfinished_packages(text),
            vec![("a".into(), "unpacked".into())]
        );
    }

    #[test]
    fn every_fixture_reads_as_stanza_by_stanza_did() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut read = 0;
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let status = entry.unwrap().path().join("var/lib/dpkg/status");
            if let Ok(text) = std::fs::read_to_string(&status) {
                assert_eq!(
                    unfinished_packages(text.as_bytes()),
                    stanza_by_stanza(&text),
                    "{}",
                    status.display()
                );
                read += 1;
            }
        }
        assert!(read >= 5, "only {read} fixture status files found");
    }
}
