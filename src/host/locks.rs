//! Who holds the package managers' locks, found without taking any: the
//! fcntl holders by `F_GETLK`, flock and fcntl holders in `/proc/locks`,
//! and the pid files yum, dnf and zypper write.

use super::proc_locks::{self, LockEntry};
use super::process::{self, ProcessInfo};
use super::{read_optional, Root};
use std::os::unix::fs::MetadataExt;

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

pub const fn lock(tool: &'static str, path: &'static str, kind: LockKind) -> LockSpec {
    LockSpec { tool, path, kind }
}

/// Every lock a patch run can meet (docs/checks.md, `pkg.lock`).
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
pub const DNF_CACHE_DIR: &str = "/var/cache/dnf";

/// Directories whose presence says a package manager is installed.
pub const MANAGER_DIRS: &[&str] = &["/var/lib/dpkg", "/var/lib/rpm", "/usr/lib/sysimage/rpm"];

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

    for (tool, path, kind) in lock_files(root) {
        let real = root.path(&path);
        match kind {
            LockKind::PidFile => pid_file(root, tool, &path, &real, &mut g),
            LockKind::Fcntl | LockKind::Flock => {
                let held = LockFile { tool, path, kind };
                held.look(root, &proc_locks, &mut g)
            }
        }
    }
    g
}

/// Every lock file to look at: the fixed ones and dnf4's per-cache pid files.
fn lock_files(root: &Root) -> Vec<(&'static str, String, LockKind)> {
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
    specs
}

/// A file locked with fcntl or flock.
struct LockFile {
    tool: &'static str,
    path: String,
    kind: LockKind,
}

impl LockFile {
    /// Its holders, from /proc/locks (by device and inode) and, for fcntl,
    /// `F_GETLK`; a file neither can see is `Unexamined`.
    fn look(self, root: &Root, proc_locks: &Result<Vec<LockEntry>, String>, g: &mut Gathered) {
        let real = root.path(&self.path);
        let meta = match std::fs::metadata(&real) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                g.findings.push(Finding::Unexamined {
                    path: self.path,
                    why: e.to_string(),
                });
                return;
            }
        };
        let mut pids: Vec<Option<u32>> = Vec::new();
        let mut looked = false;
        if let Ok(entries) = proc_locks {
            looked = true;
            let (major, minor) = (
                nix::sys::stat::major(meta.dev()) as u32,
                nix::sys::stat::minor(meta.dev()) as u32,
            );
            for e in entries.iter().filter(|e| {
                !e.waiting && e.inode == meta.ino() && e.major == major && e.minor == minor
            }) {
                let is_flock = e.kind == "FLOCK";
                if is_flock == (self.kind == LockKind::Flock) && !pids.contains(&e.pid) {
                    pids.push(e.pid);
                }
            }
        }
        if self.kind == LockKind::Fcntl {
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
            let why = match proc_locks {
                Err(e) => format!("/proc/locks is unreadable ({e}) and the file cannot be opened"),
                Ok(_) => "the file cannot be opened".into(),
            };
            g.findings.push(Finding::Unexamined {
                path: self.path,
                why,
            });
            return;
        }
        for pid in pids {
            let process = pid.and_then(|p| process::info(root, p));
            g.findings.push(Finding::Held(Holder {
                tool: self.tool,
                path: self.path.clone(),
                pid,
                process,
            }));
        }
        g.examined.push(self.path);
    }
}

pub fn pid_file(
    root: &Root,
    tool: &'static str,
    path: &str,
    real: &std::path::Path,
    g: &mut Gathered,
) {
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
pub fn query_fcntl_holder(path: &std::path::Path) -> std::io::Result<Option<Option<u32>>> {
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
