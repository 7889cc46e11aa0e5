//! The filesystems a patch run writes to: which mount each path is on
//! (mountinfo, else the device number) and what statvfs says of it. Both
//! can block on a hung mount, so both are bounded.

use super::{mounts, Root};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The paths a patch run writes to; those that exist are checked.
pub const DEFAULT_PATHS: &[&str] = &[
    "/",
    "/var",
    "/var/cache/apt",
    "/var/cache/dnf",
    "/var/cache/yum",
    "/var/lib/amazon",
    "/var/lib/amazon/ssm",
    "/var/log/amazon/ssm",
    "/boot",
    "/tmp",
];

/// What statvfs says about a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub bytes_total: u64,
    pub bytes_free: u64,
    /// 0 where the filesystem has no fixed inode table (btrfs, some tmpfs).
    pub inodes_total: u64,
    pub inodes_free: u64,
}

/// One filesystem to check and the host paths on it.
#[derive(Debug, Clone)]
pub struct Filesystem {
    pub name: String,
    pub mount_point: String,
    pub fs_type: Option<String>,
    pub paths: Vec<String>,
    /// Whether it is mounted `noexec`; `None` when the mount options could
    /// not be read (no mountinfo), which is not "exec" (issue #17).
    pub noexec: Option<bool>,
}

/// `disk.root` for `/`, `disk.var-log` for `/var/log`.
pub fn name_for(mount_point: &str) -> String {
    let trimmed = mount_point.trim_matches('/');
    if trimmed.is_empty() {
        return "root".into();
    }
    trimmed
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Groups paths by the mount they are on (mountinfo), or by device number
/// where there is no mountinfo to read.
pub fn group_by_filesystem(
    root: &Root,
    mounts: &[mounts::Mount],
    paths: &[String],
) -> Vec<Filesystem> {
    let mut groups: BTreeMap<String, Filesystem> = BTreeMap::new();
    let mut order = Vec::new();
    for path in paths {
        let (key, mount_point, fs_type, noexec) = match mounts::mount_for(mounts, path) {
            Some(m) => (
                format!("mount:{}", m.id),
                m.mount_point.clone(),
                Some(m.fs_type.clone()),
                Some(m.has_option("noexec")),
            ),
            None => match std::fs::metadata(root.path(path)) {
                Ok(meta) => (format!("dev:{}", meta.dev()), path.clone(), None, None),
                Err(_) => continue,
            },
        };
        let fs = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Filesystem {
                name: name_for(&mount_point),
                mount_point,
                fs_type,
                paths: Vec::new(),
                noexec,
            }
        });
        fs.paths.push(path.clone());
    }
    order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect()
}

pub fn statvfs(path: &Path) -> nix::Result<Figures> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let unit = s.fragment_size() as u64;
    Ok(Figures {
        bytes_total: s.blocks() as u64 * unit,
        // What an unprivileged writer may use: rpm and dnf check against this.
        bytes_free: s.blocks_available() as u64 * unit,
        inodes_total: s.files() as u64,
        inodes_free: s.files_available() as u64,
    })
}

/// The filesystems to check, the configured paths that do not exist, and
/// the mounts that did not answer.
#[derive(Debug, Clone)]
pub struct Layout {
    pub filesystems: Vec<Filesystem>,
    pub missing: Vec<String>,
    pub hung: Vec<Blocked>,
}

/// A path whose lookup did not answer within the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("looking up {path} did not answer within {}: the filesystem mounted at {mount_point}{} is hung", humantime::format_duration(*budget), fs_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
pub struct Blocked {
    pub path: String,
    pub mount_point: String,
    pub fs_type: Option<String>,
    pub budget: Duration,
}

/// Which candidate paths exist and which filesystem each is on. Each
/// lookup is bounded by `budget`: one worker looks the paths up in turn;
/// when one does not answer in time, its mount is reported as hung (the
/// worker stays stuck in the kernel), and a fresh worker goes on with the
/// paths that are not on that mount.
pub fn layout(
    root: &Root,
    candidates: &[String],
    configured: &[String],
    budget: Duration,
) -> Layout {
    // procfs answers at once; in a tree under --root, a FIFO is refused at once.
    let (mounts, _) = super::read_optional(&root.path("/proc/self/mountinfo"))
        .ok()
        .flatten()
        .map(|t| mounts::parse(&t))
        .unwrap_or_default();
    let mut pending: Vec<String> = Vec::new();
    for path in candidates {
        if !pending.contains(path) {
            pending.push(path.clone());
        }
    }
    let mut missing = Vec::new();
    let mut present: Vec<String> = Vec::new();
    let mut hung: Vec<Blocked> = Vec::new();
    while !pending.is_empty() {
        let batch = std::mem::take(&mut pending);
        // The worker notes each answer where the caller can read it after
        // a timeout, and wakes the caller once, at the end: no hand-off per
        // path on the common, healthy path.
        let answers = Arc::new(Mutex::new(Vec::with_capacity(batch.len())));
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (worker_root, worker_batch, worker_answers) =
            (root.clone(), batch.clone(), answers.clone());
        super::spawn_worker(move || {
            for path in worker_batch {
                let exists = worker_root.path(&path).exists();
                worker_answers.lock().unwrap().push(exists);
            }
            let _ = done_tx.send(());
        });
        // Each path gets the budget: a lookup that has not moved on for
        // that long is the stuck one.
        let (mut seen, mut since) = (0, std::time::Instant::now());
        let stuck = loop {
            match done_rx.recv_timeout(budget / 4) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let now = answers.lock().unwrap().len();
                    if now != seen {
                        (seen, since) = (now, std::time::Instant::now());
                    } else if since.elapsed() >= budget {
                        break Some(now);
                    }
                }
            }
        };
        let answers = answers.lock().unwrap().clone();
        for (path, exists) in batch.iter().zip(&answers) {
            if *exists {
                present.push(path.clone());
            } else if configured.contains(path) {
                missing.push(path.clone());
            }
        }
        if let Some(i) = stuck {
            let path = &batch[i];
            let mount = mounts::mount_for(&mounts, path);
            let mount_point = mount.map_or_else(|| path.clone(), |m| m.mount_point.clone());
            pending = batch[i + 1..]
                .iter()
                .filter(|p| {
                    mounts::mount_for(&mounts, p).is_none_or(|m| m.mount_point != mount_point)
                })
                .cloned()
                .collect();
            hung.push(Blocked {
                path: path.clone(),
                mount_point,
                fs_type: mount.map(|m| m.fs_type.clone()),
                budget,
            });
        }
    }
    Layout {
        filesystems: group_by_filesystem(root, &mounts, &present),
        missing,
        hung,
    }
}
