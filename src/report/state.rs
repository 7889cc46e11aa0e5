//! The state file: the last run, a short history of verdicts, and whether
//! the last report reached SSM. It is also the spool: a report that could
//! not be sent stays here as the last run, and only the newest is kept.
//!
//! Writes are atomic — a temporary file, fsync, rename over the old file,
//! fsync of the directory — so a crash at any instant leaves either the old
//! or the new file, both whole. Writers take an flock on `state.lock` (our
//! own file, never a package manager's).

use super::{Report, Verdict};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

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
}

impl State {
    /// Records a run as the newest; the history keeps the last `HISTORY`.
    pub fn record(&mut self, report: &Report, run_id: &str) {
        self.history.push(HistoryEntry {
            started_at: report.started_at.clone(),
            verdict: report.verdict,
            failed: report
                .checks
                .iter()
                .filter(|c| c.status == crate::checks::Status::Fail)
                .map(|c| c.id.clone())
                .collect(),
        });
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
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
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    after(WriteStep::TempCreated);
    file.write_all(bytes)?;
    after(WriteStep::TempWritten);
    file.sync_all()?;
    after(WriteStep::TempSynced);
    drop(file);
    std::fs::rename(&tmp, path)?;
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
    pub fn open(dir: &Path) -> Result<StateDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let lock_path = dir.join(LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("cannot lock {}: {e}", lock_path.display()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn load(&self) -> Result<State, String> {
        read(&self.dir)
    }

    pub fn save(&self, state: &State) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        write_atomic(&self.path(), &bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path().display()))
    }
}

/// Reads the state without locking (readers see whole files only).
/// A missing file is an empty state; a damaged one is an error naming it.
pub fn read(dir: &Path) -> Result<State, String> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!("{} is not a state file this version can read ({e}); move it away and run `ssm-preflight check` again", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}
