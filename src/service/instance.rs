//! One daemon per runtime directory: an flock on `daemon.pid` there, held
//! for the daemon's life, with its PID written inside so that a second
//! daemon can say which one runs. The lock is taken before the socket is
//! bound, so a second daemon never touches the first one's socket.

use nix::fcntl::{Flock, FlockArg};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const PID_FILE: &str = "daemon.pid";

/// Held while the daemon runs; dropping it lets another start.
#[derive(Debug)]
pub struct Instance {
    _lock: Flock<std::fs::File>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("another ssm-preflight daemon (pid {pid}) already serves {}; stop it first (`sudo systemctl stop ssm-preflight`) or give this one another RUNTIME_DIRECTORY", dir.display())]
    Running { pid: String, dir: PathBuf },
    #[error("cannot use the runtime directory {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Claims `dir` for this daemon, or says which daemon has it.
pub fn claim(dir: &Path) -> Result<Instance, InstanceError> {
    let io = |source| InstanceError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(PID_FILE))
        .map_err(io)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(InstanceError::Running {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_string()
                },
                dir: dir.to_path_buf(),
            });
        }
        Err((_, e)) => return Err(io(e.into())),
    };
    lock.set_len(0).map_err(io)?;
    lock.rewind().map_err(io)?;
    writeln!(lock, "{}", std::process::id()).map_err(io)?;
    Ok(Instance { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path()).unwrap();
        let err = claim(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        drop(first);
        claim(dir.path()).expect("free again once the first is gone");
    }
}
