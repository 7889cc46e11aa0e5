//! `pkg.lock`: is a package manager busy right now, and for how long?
//!
//! Found without taking any lock — taking one, even for a moment, can make
//! a real patch run fail. fcntl and flock holders come from `/proc/locks`
//! (matched by device and inode) and from `F_GETLK`, which asks the kernel
//! who would block a lock without taking it; pid-file tools (yum, dnf4,
//! zypper) from the pid they wrote and whether that process is alive.

use super::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::config::units::format_age;
use crate::host::process::{self, ProcessInfo};
use crate::host::{proc_locks, read_optional, Root};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "pkg.lock",
    group: Group::Host,
    title: "Package-manager locks",
    severity: Severity::High,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// fcntl (POSIX or OFD) record lock on the file.
    Fcntl,
    /// flock(2) on the file: only `/proc/locks` shows these.
    Flock,
    /// A file holding the holder's PID.
    PidFile,
}

#[derive(Debug, Clone, Copy)]
pub struct LockSpec {
    pub tool: &'static str,
    pub path: &'static str,
    pub kind: LockKind,
}

const fn lock(tool: &'static str, path: &'static str, kind: LockKind) -> LockSpec {
    LockSpec { tool, path, kind }
}

/// Every lock a patch run can meet (see DESIGN.md, "Lock files").
pub const LOCKS: &[LockSpec] = &[
    lock("dpkg", "/var/lib/dpkg/lock-frontend", LockKind::Fcntl),
    lock("dpkg", "/var/lib/dpkg/lock", LockKind::Fcntl),
    lock("apt", "/var/lib/apt/lists/lock", LockKind::Fcntl),
    lock("apt", "/var/cache/apt/archives/lock", LockKind::Fcntl),
    lock(
        "apt.systemd.daily",
        "/var/lib/apt/daily_lock",
        LockKind::Flock,
    ),
    lock("yum", "/var/run/yum.pid", LockKind::PidFile),
    lock("dnf", "/var/lib/dnf/rpmdb_lock.pid", LockKind::PidFile),
    lock("dnf5", "/run/dnf/rpmtransaction.lock", LockKind::Fcntl),
    lock("rpm", "/var/lib/rpm/.rpm.lock", LockKind::Fcntl),
    lock("rpm", "/usr/lib/sysimage/rpm/.rpm.lock", LockKind::Fcntl),
    lock("zypper", "/run/zypp.pid", LockKind::PidFile),
];

/// dnf4 also keeps `<name>_lock.pid` files in its cache directory.
const DNF_CACHE_DIR: &str = "/var/cache/dnf";

/// Directories whose presence says a package manager is installed.
const MANAGER_DIRS: &[&str] = &["/var/lib/dpkg", "/var/lib/rpm", "/usr/lib/sysimage/rpm"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub tool: &'static str,
    pub path: String,
    /// `None` for an OFD lock, whose owner the kernel does not show.
    pub pid: Option<u32>,
    pub process: Option<ProcessInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Held(Holder),
    /// A pid file naming a process that no longer exists: harmless.
    StalePidFile {
        path: String,
        pid: u32,
    },
    /// A pid file whose content is not a PID: the tool may refuse to start.
    BadPidFile {
        tool: &'static str,
        path: String,
        content: String,
    },
    /// A lock that could not be looked at (permissions, no /proc/locks).
    Unexamined {
        path: String,
        why: String,
    },
}

#[derive(Debug, Default)]
pub struct Gathered {
    pub findings: Vec<Finding>,
    /// Lock paths that exist and were looked at.
    pub examined: Vec<String>,
    pub manager_present: bool,
    /// Lines of `/proc/locks` that could not be read.
    pub bad_proc_lines: usize,
}

pub fn plan(ctx: &Context) -> super::Check {
    let root = ctx.root.clone();
    let stuck_after = ctx.settings.lock_stuck_after;
    ctx.check(&ENTRY, ENTRY.id, move || judge(&gather(&root), stuck_after))
}

/// Looks at every lock; reads, stats and `F_GETLK` only.
pub fn gather(root: &Root) -> Gathered {
    let mut g = Gathered {
        manager_present: MANAGER_DIRS.iter().any(|d| root.path(d).is_dir()),
        ..Default::default()
    };
    let proc_locks = match std::fs::read_to_string(root.path("/proc/locks")) {
        Ok(text) => {
            let (entries, bad) = proc_locks::parse(&text);
            g.bad_proc_lines = bad;
            Ok(entries)
        }
        Err(e) => Err(e.to_string()),
    };

    let mut specs: Vec<(&'static str, String, LockKind)> = LOCKS
        .iter()
        .map(|l| (l.tool, l.path.to_string(), l.kind))
        .collect();
    if let Ok(dir) = std::fs::read_dir(root.path(DNF_CACHE_DIR)) {
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with("_lock.pid"))
            .collect();
        names.sort();
        specs.extend(
            names
                .into_iter()
                .map(|n| ("dnf", format!("{DNF_CACHE_DIR}/{n}"), LockKind::PidFile)),
        );
    }

    for (tool, path, kind) in specs {
        let real = root.path(&path);
        match kind {
            LockKind::PidFile => pid_file(root, tool, &path, &real, &mut g),
            LockKind::Fcntl | LockKind::Flock => {
                let meta = match std::fs::metadata(&real) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        g.findings.push(Finding::Unexamined {
                            path,
                            why: e.to_string(),
                        });
                        continue;
                    }
                };
                let mut pids: Vec<Option<u32>> = Vec::new();
                let mut looked = false;
                if let Ok(entries) = &proc_locks {
                    looked = true;
                    let (major, minor) = (
                        nix::sys::stat::major(meta.dev()) as u32,
                        nix::sys::stat::minor(meta.dev()) as u32,
                    );
                    for e in entries.iter().filter(|e| {
                        !e.waiting && e.inode == meta.ino() && e.major == major && e.minor == minor
                    }) {
                        let is_flock = e.kind == "FLOCK";
                        if is_flock == (kind == LockKind::Flock) && !pids.contains(&e.pid) {
                            pids.push(e.pid);
                        }
                    }
                }
                if kind == LockKind::Fcntl {
                    match query_fcntl_holder(&real) {
                        Ok(Some(pid)) => {
                            looked = true;
                            // An OFD lock answers -1; /proc/locks may name it better.
                            if (pid.is_some() || pids.is_empty()) && !pids.contains(&pid) {
                                pids.push(pid);
                            }
                        }
                        Ok(None) => looked = true,
                        Err(_) => {}
                    }
                }
                if !looked {
                    let why = match &proc_locks {
                        Err(e) => {
                            format!("/proc/locks is unreadable ({e}) and the file cannot be opened")
                        }
                        Ok(_) => "the file cannot be opened".into(),
                    };
                    g.findings.push(Finding::Unexamined { path, why });
                    continue;
                }
                for pid in pids {
                    let process = pid.and_then(|p| process::info(root, p));
                    g.findings.push(Finding::Held(Holder {
                        tool,
                        path: path.clone(),
                        pid,
                        process,
                    }));
                }
                g.examined.push(path);
            }
        }
    }
    g
}

fn pid_file(root: &Root, tool: &'static str, path: &str, real: &std::path::Path, g: &mut Gathered) {
    let content = match read_optional(real) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            g.findings.push(Finding::Unexamined {
                path: path.into(),
                why: e.to_string(),
            });
            return;
        }
    };
    g.examined.push(path.into());
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return; // zypper leaves an empty zypp.pid behind when it exits
    }
    match trimmed.parse::<u32>() {
        Ok(pid) if pid > 0 => {
            if process::is_alive(root, pid) {
                let process = process::info(root, pid);
                g.findings.push(Finding::Held(Holder {
                    tool,
                    path: path.into(),
                    pid: Some(pid),
                    process,
                }));
            } else {
                g.findings.push(Finding::StalePidFile {
                    path: path.into(),
                    pid,
                });
            }
        }
        _ => {
            let mut shown: String = trimmed.chars().take(40).collect();
            if trimmed.chars().count() > 40 {
                shown.push('…');
            }
            g.findings.push(Finding::BadPidFile {
                tool,
                path: path.into(),
                content: shown,
            });
        }
    }
}

/// Asks the kernel who would block a write lock on the whole file, taking
/// none: `F_GETLK` only reports. `Ok(None)` means nobody holds it;
/// `Ok(Some(None))` means an OFD lock, whose owner has no PID.
fn query_fcntl_holder(path: &std::path::Path) -> std::io::Result<Option<Option<u32>>> {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;
    use std::os::unix::fs::OpenOptionsExt;
    // Read-only and non-blocking: opening takes no lock, and F_GETLK does
    // not need write access.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    // SAFETY: flock is plain data; all-zero is a valid starting value.
    let mut query: libc::flock = unsafe { std::mem::zeroed() };
    query.l_type = libc::F_WRLCK as libc::c_short;
    query.l_whence = libc::SEEK_SET as libc::c_short;
    query.l_start = 0;
    query.l_len = 0; // the whole file
    fcntl(&file, FcntlArg::F_GETLK(&mut query)).map_err(std::io::Error::from)?;
    if query.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some(u32::try_from(query.l_pid).ok().filter(|p| *p > 0)))
}

/// What to run once a stuck holder is gone, per tool.
fn repair_command(tool: &str) -> &'static str {
    match tool {
        "dpkg" | "apt" | "apt.systemd.daily" => "sudo dpkg --configure -a",
        "yum" => "sudo yum-complete-transaction --cleanup-only",
        "dnf" | "dnf5" | "rpm" => "sudo rpm -Va --nofiles --nodigest",
        _ => "sudo zypper verify",
    }
}

/// The verdict from what `gather` found. A holder is a wait (warn) until it
/// has run longer than `stuck_after`, then a failure: the patch run would
/// time out behind it.
pub fn judge(g: &Gathered, stuck_after: Duration) -> Outcome {
    let holders: Vec<&Holder> = g
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Held(h) => Some(h),
            _ => None,
        })
        .collect();
    if holders.is_empty()
        && g.examined.is_empty()
        && !g.manager_present
        && !g
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Unexamined { .. }))
    {
        return Outcome::skip("no dpkg, rpm, yum, dnf or zypper state was found on this host, so there is no lock to look at");
    }

    // The same process usually holds several locks (lock-frontend and lock).
    let mut by_process: BTreeMap<Option<u32>, Vec<&Holder>> = BTreeMap::new();
    for h in &holders {
        by_process.entry(h.pid).or_default().push(h);
    }
    let mut sentences = Vec::new();
    let mut remedies = Vec::new();
    let mut stuck = false;
    for (pid, held) in &by_process {
        let paths: Vec<&str> = held.iter().map(|h| h.path.as_str()).collect();
        let tool = held[0].tool;
        let process = held.iter().find_map(|h| h.process.as_ref());
        match (pid, process) {
            (Some(pid), Some(p)) => {
                let age = p
                    .running_for
                    .map(|d| format!(", running for {}", format_age(d)))
                    .unwrap_or_default();
                sentences.push(format!(
                    "pid {pid} (`{}`) holds the {tool} lock {}{age}",
                    p.command,
                    paths.join(" and ")
                ));
                if p.running_for.is_some_and(|d| d >= stuck_after) {
                    stuck = true;
                    remedies.push(format!(
                        "pid {pid} has held it longer than {} (pkg_lock.stuck_after). See what it is doing with `sudo ps -o pid,etime,args -p {pid}` and `sudo journalctl _PID={pid}`; if it is hung, stop it with `sudo kill {pid}` and repair with `{}`.",
                        format_age(stuck_after),
                        repair_command(tool)
                    ));
                } else {
                    remedies.push(format!(
                        "Let pid {pid} finish before the window opens (watch it with `ps -o pid,etime,args -p {pid}`); a patch run started now would wait for it or fail."
                    ));
                }
            }
            (Some(pid), None) => {
                sentences.push(format!(
                    "pid {pid} holds the {tool} lock {}",
                    paths.join(" and ")
                ));
                remedies.push(format!(
                    "See what pid {pid} is with `ps -o pid,etime,args -p {pid}` and let it finish."
                ));
            }
            (None, _) => {
                sentences.push(format!(
                    "an open-file-description lock, whose owner has no PID, is held on {}",
                    paths.join(" and ")
                ));
                remedies.push(format!(
                    "Find the holder with `sudo lsof {}` and let it finish.",
                    paths.join(" ")
                ));
            }
        }
    }

    let mut warnings = Vec::new();
    for f in &g.findings {
        match f {
            Finding::BadPidFile {
                tool,
                path,
                content,
            } => {
                warnings.push(format!(
                    "{path} holds `{content}`, which is not a process ID"
                ));
                remedies.push(format!(
                    "If no {tool} is running (`pgrep -a {tool}`), remove {path}."
                ));
            }
            Finding::Unexamined { path, why } => {
                warnings.push(format!("could not look at {path}: {why}"));
                remedies.push("Run ssm-preflight as root so it can see every lock.".to_string());
            }
            _ => {}
        }
    }
    let stale: Vec<String> = g
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::StalePidFile { path, pid } => {
                Some(format!("{path} names pid {pid}, which is not running"))
            }
            _ => None,
        })
        .collect();

    let mut outcome = if !sentences.is_empty() {
        let mut all = sentences;
        all.extend(warnings);
        let summary = all.join("; ");
        remedies.dedup();
        if stuck {
            Outcome::fail(summary, remedies.join(" "))
        } else {
            Outcome::warn(summary, remedies.join(" "))
        }
    } else if !warnings.is_empty() {
        remedies.dedup();
        Outcome::warn(warnings.join("; "), remedies.join(" "))
    } else {
        let mut summary = format!(
            "no package-manager lock is held ({} looked at)",
            g.examined.len()
        );
        if !stale.is_empty() {
            summary.push_str(&format!("; stale pid file ignored: {}", stale.join(", ")));
        }
        Outcome::pass(summary)
    };
    outcome = outcome.detail("examined", g.examined.join(", "));
    if !stale.is_empty() {
        outcome = outcome.detail("stale_pid_files", stale.join("; "));
    }
    if g.bad_proc_lines > 0 {
        outcome = outcome.detail("unreadable_proc_locks_lines", g.bad_proc_lines);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn holder(pid: u32, path: &str, secs: u64) -> Finding {
        Finding::Held(Holder {
            tool: "dpkg",
            path: path.into(),
            pid: Some(pid),
            process: Some(ProcessInfo {
                pid,
                command: "/usr/bin/python3 /usr/bin/unattended-upgrade".into(),
                running_for: Some(Duration::from_secs(secs)),
            }),
        })
    }

    fn gathered(findings: Vec<Finding>) -> Gathered {
        Gathered {
            findings,
            examined: vec![
                "/var/lib/dpkg/lock-frontend".into(),
                "/var/lib/dpkg/lock".into(),
            ],
            manager_present: true,
            bad_proc_lines: 0,
        }
    }

    const HALF_HOUR: Duration = Duration::from_secs(1800);

    #[test]
    fn nobody_holding_passes() {
        let o = judge(&gathered(vec![]), HALF_HOUR);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.summary, "no package-manager lock is held (2 looked at)");
    }

    #[test]
    fn a_fresh_holder_is_a_wait_and_one_process_is_named_once() {
        let o = judge(
            &gathered(vec![
                holder(4242, "/var/lib/dpkg/lock-frontend", 192),
                holder(4242, "/var/lib/dpkg/lock", 192),
            ]),
            HALF_HOUR,
        );
        assert_eq!(o.status, Status::Warn);
        assert_eq!(
            o.summary,
            "pid 4242 (`/usr/bin/python3 /usr/bin/unattended-upgrade`) holds the dpkg lock /var/lib/dpkg/lock-frontend and /var/lib/dpkg/lock, running for 3m 12s"
        );
        assert!(o.remedy.unwrap().contains("ps -o pid,etime,args -p 4242"));
    }

    #[test]
    fn a_holder_past_stuck_after_fails_with_the_repair() {
        let o = judge(
            &gathered(vec![holder(4242, "/var/lib/dpkg/lock", 7500)]),
            HALF_HOUR,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.summary.contains("running for 2h 5m"));
        let remedy = o.remedy.unwrap();
        assert!(remedy.contains("sudo kill 4242"), "{remedy}");
        assert!(remedy.contains("sudo dpkg --configure -a"), "{remedy}");
    }

    #[test]
    fn stale_and_garbage_pid_files() {
        let stale = judge(
            &gathered(vec![Finding::StalePidFile {
                path: "/var/run/yum.pid".into(),
                pid: 999,
            }]),
            HALF_HOUR,
        );
        assert_eq!(stale.status, Status::Pass);
        assert!(stale
            .summary
            .contains("/var/run/yum.pid names pid 999, which is not running"));
        let bad = judge(
            &gathered(vec![Finding::BadPidFile {
                tool: "zypper",
                path: "/run/zypp.pid".into(),
                content: "hello".into(),
            }]),
            HALF_HOUR,
        );
        assert_eq!(bad.status, Status::Warn);
        assert!(bad.summary.contains("`hello`, which is not a process ID"));
        assert!(bad.remedy.unwrap().contains("pgrep -a zypper"));
    }

    #[test]
    fn a_lock_that_cannot_be_seen_is_not_a_pass() {
        let o = judge(
            &gathered(vec![Finding::Unexamined {
                path: "/var/lib/apt/daily_lock".into(),
                why: "permission denied".into(),
            }]),
            HALF_HOUR,
        );
        assert_eq!(o.status, Status::Warn);
        assert!(o.remedy.unwrap().contains("as root"));
    }

    #[test]
    fn no_package_manager_is_a_skip() {
        let o = judge(&Gathered::default(), HALF_HOUR);
        assert_eq!(o.status, Status::Skip);
    }
}
