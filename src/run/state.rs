//! The state file: the last run, a short history of verdicts, and whether
//! the last report reached SSM. It is also the spool: a report that could
//! not be sent stays here as the last run, and only the newest is kept.
//!
//! Writes are atomic — a temporary file, fsync, rename over the old file,
//! fsync of the directory — so a crash at any instant leaves either the old
//! or the new file, both whole. Writers take an flock on `state.lock` (our
//! own file, never a package manager's).

use super::report::{Report, Verdict};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the state could not be read or written; `status` shows it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a state file this version can read ({source}); move it away and run `ssm-preflight check` again", path.display())]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl StateError {
    /// The underlying OS error, for telling one failure from another.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StateError::CreateDir { source, .. }
            | StateError::Lock { source, .. }
            | StateError::Write { source, .. }
            | StateError::Read { source, .. } => Some(source.kind()),
            StateError::Damaged { .. } => None,
        }
    }
}

pub const FILE: &str = "state.json";
const LOCK: &str = "state.lock";
const HISTORY: usize = 20;

/// `$STATE_DIRECTORY` (systemd sets it; the first of several), else /var/lib/ssm-preflight.
pub fn default_dir() -> PathBuf {
    std::env::var("STATE_DIRECTORY")
        .ok()
        .and_then(|v| v.split(':').next().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/var/lib/ssm-preflight"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// SSM has it.
    Delivered,
    /// Kept for a retry: SSM was unreachable, throttling or failing.
    Pending,
    /// SSM refused it for a reason retrying cannot fix (AccessDenied, validation).
    Rejected,
    /// Not asked to report (`check` without `--report`, or local mode).
    NotSent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub run_id: String,
    /// The run this delivery is about (its `started_at`).
    pub run_started_at: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_attempt: Option<String>,
    pub next_attempt: Option<String>,
    pub delivered_at: Option<String>,
    pub error: Option<String>,
    pub remedy: Option<String>,
}

impl Delivery {
    /// A run's delivery before any attempt.
    pub fn not_sent(run_id: &str, run_started_at: &str) -> Delivery {
        Delivery {
            run_id: run_id.to_string(),
            run_started_at: run_started_at.to_string(),
            state: DeliveryState::NotSent,
            attempts: 0,
            last_attempt: None,
            next_attempt: None,
            delivered_at: None,
            error: None,
            remedy: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub started_at: String,
    /// The run's ID (its compliance ExecutionId): two runs may start in
    /// the same second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub verdict: Verdict,
    /// IDs of the checks that failed.
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    pub last_run: Option<Report>,
    pub history: Vec<HistoryEntry>,
    pub delivery: Option<Delivery>,
    /// When the last report SSM accepted was made (its run's `started_at`):
    /// nothing older is ever sent after it.
    pub last_delivered_run: Option<String>,
    /// The hold of the host's updaters (`remediate.hold_updaters`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub hold: crate::daemon::hold::HoldState,
    /// The last clean of the package cache (`remediate.clean_package_cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned: Option<Cleaned>,
}

fn is_default(h: &crate::daemon::hold::HoldState) -> bool {
    *h == crate::daemon::hold::HoldState::default()
}

impl State {
    /// What the last recorded run found, as the next run's head start.
    pub fn remembered(&self) -> crate::facts::Remembered {
        self.last_run
            .as_ref()
            .map(Report::remembered)
            .unwrap_or_default()
    }

    /// Records a run as the newest; the history keeps the last `HISTORY`.
    pub fn record(&mut self, report: &Report, run_id: &str) {
        // Runs can end out of order (a slow one beside a fast one): the
        // history stays in start order and the newest start stays last_run.
        let at = self
            .history
            .partition_point(|h| h.started_at.as_str() <= report.started_at.as_str());
        self.history.insert(
            at,
            HistoryEntry {
                started_at: report.started_at.clone(),
                run_id: Some(run_id.to_string()),
                verdict: report.verdict,
                failed: report
                    .checks
                    .iter()
                    .filter(|c| c.status == crate::checks::Status::Fail)
                    .map(|c| c.id.clone())
                    .collect(),
            },
        );
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
        if self
            .last_run
            .as_ref()
            .is_some_and(|newer| newer.started_at > report.started_at)
        {
            return;
        }
        self.last_run = Some(report.clone());
        self.delivery = Some(Delivery::not_sent(run_id, &report.started_at));
    }
}

/// The steps of an atomic write, for tests that stop a writer at each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    TempCreated,
    TempWritten,
    TempSynced,
    Renamed,
    DirSynced,
}

pub const WRITE_STEPS: [WriteStep; 5] = [
    WriteStep::TempCreated,
    WriteStep::TempWritten,
    WriteStep::TempSynced,
    WriteStep::Renamed,
    WriteStep::DirSynced,
];

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_observed(path, bytes, &mut |_| {})
}

/// `write_atomic`, telling `after` each step as it completes.
pub fn write_atomic_observed(
    path: &Path,
    bytes: &[u8],
    after: &mut dyn FnMut(WriteStep),
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A fresh name, created exclusively and never through a link: a
    // symlink planted at a predictable name cannot redirect the write.
    let (tmp, mut file) = {
        let mut tries = 0;
        loop {
            let tmp = dir.join(format!(
                ".{name}.{}.{:016x}.tmp",
                std::process::id(),
                fastrand::u64(..)
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .mode(0o640)
                .open(&tmp)
            {
                Ok(file) => break (tmp, file),
                // A name left by a writer that died: draw another.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    };
    // Whatever fails from here leaves no temporary file behind.
    let result = (|| {
        after(WriteStep::TempCreated);
        file.write_all(bytes)?;
        after(WriteStep::TempWritten);
        file.sync_all()?;
        after(WriteStep::TempSynced);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    after(WriteStep::Renamed);
    std::fs::File::open(dir)?.sync_all()?;
    after(WriteStep::DirSynced);
    Ok(())
}

/// The state directory, with the lock held while this lives.
pub struct StateDir {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl StateDir {
    /// Opens (creating it if needed) and locks the state directory.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|source| StateError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        let lock_path = dir.join(LOCK);
        let lock_error = |source| StateError::Lock {
            path: lock_path.clone(),
            source,
        };
        // O_NONBLOCK: a FIFO planted at the lock's name fails at once
        // (ENXIO) instead of blocking the open; a link is not followed.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(lock_error)?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| lock_error(e.into()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn load(&self) -> Result<State, StateError> {
        read(&self.dir)
    }

    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(state).expect("the state serializes");
        write_atomic(&self.path(), &bytes).map_err(|source| StateError::Write {
            path: self.path(),
            source,
        })
    }
}

/// Reads the state without locking (readers see whole files only).
/// A missing file is an empty state; a damaged one is an error naming it.
pub fn read(dir: &Path) -> Result<State, StateError> {
    let path = dir.join(FILE);
    // Anything but a regular file is refused before it is opened: a FIFO
    // would hold `status` and the gate for as long as nobody writes to it.
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() {
            return Err(StateError::Read {
                source: std::io::Error::other(format!(
                    "it is {}, not the state file; move it away",
                    crate::host::kind_of(&meta)
                )),
                path,
            });
        }
    }
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| StateError::Damaged { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(StateError::Read { path, source }),
    }
}
/// The last clean, as the state file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaned {
    pub at: String,
    pub check: String,
    /// The command run, or why none was.
    pub command: Option<String>,
    /// Bytes freed on the cache's filesystem (its free space after less before).
    pub freed_bytes: Option<u64>,
    /// The disk check's status after the clean.
    pub status_after: Option<String>,
    /// Why it was refused or failed.
    pub error: Option<String>,
}

impl Cleaned {
    /// A clean refused (`command` None) or failed, now.
    pub fn not_done(check: String, command: Option<String>, error: String) -> Cleaned {
        Cleaned {
            at: jiff::Timestamp::now().to_string(),
            check,
            command,
            freed_bytes: None,
            status_after: None,
            error: Some(error),
        }
    }

    pub fn sentence(&self) -> String {
        match (&self.command, &self.error) {
            (Some(cmd), None) => format!(
                "cleaned with `{cmd}` at {}, freeing {} ({} is now {})",
                self.at,
                crate::config::units::format_bytes(self.freed_bytes.unwrap_or(0)),
                self.check,
                self.status_after.as_deref().unwrap_or("unknown")
            ),
            (Some(cmd), Some(e)) => format!("`{cmd}` failed at {}: {e}", self.at),
            (None, e) => format!(
                "not cleaned at {} although {} is short: {}",
                self.at,
                self.check,
                e.as_deref().unwrap_or("refused")
            ),
        }
    }
}
