//! The state file survives a crash at any step of a write: a writer
//! process is killed (it `_exit`s on the spot) after each step in turn, and
//! the file left behind always parses, as the old state or the new one.

use ssm_preflight::run::state::{self, State, WriteStep, WRITE_STEPS};
use std::path::Path;

fn state_with(n: usize) -> State {
    State {
        last_delivered_run: Some(format!("run {n}")),
        ..Default::default()
    }
}

fn write(path: &Path, s: &State) {
    state::write_atomic(path, &serde_json::to_vec_pretty(s).unwrap()).unwrap();
}

/// Forks a writer of `new` that dies right after `step`.
fn die_after(path: &Path, new: &State, step: WriteStep) {
    let bytes = serde_json::to_vec_pretty(new).unwrap();
    // SAFETY: the child only writes a file and exits; it touches no lock
    // another thread could hold across the fork except malloc's, which
    // glibc makes fork-safe.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let _ = state::write_atomic_observed(path, &bytes, &mut |s| {
                if s == step {
                    unsafe { libc::_exit(0) };
                }
            });
            unsafe { libc::_exit(1) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(
                status,
                nix::sys::wait::WaitStatus::Exited(child, 0),
                "the writer died at {step:?}"
            );
        }
    }
}

#[test]
fn a_writer_killed_after_any_step_leaves_a_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(state::FILE);
    let old = state_with(1);
    let new = state_with(2);
    for step in WRITE_STEPS {
        write(&path, &old);
        die_after(&path, &new, step);
        let found = state::read(dir.path()).unwrap_or_else(|e| panic!("after {step:?}: {e}"));
        let renamed = matches!(step, WriteStep::Renamed | WriteStep::DirSynced);
        assert_eq!(
            found,
            if renamed { new.clone() } else { old.clone() },
            "after {step:?}"
        );
    }
    // A temporary file left by a crash does not get in the way of the next write.
    write(&path, &state_with(3));
    assert_eq!(state::read(dir.path()).unwrap(), state_with(3));
}

#[test]
fn a_damaged_state_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(state::FILE), "{ half a file").unwrap();
    let err = state::read(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("state.json is not a state file this version can read"),
        "{err}"
    );
    assert!(err.contains("move it away"), "{err}");
    assert_eq!(
        state::read(tempfile::tempdir().unwrap().path()).unwrap(),
        State::default()
    );
}

#[test]
fn a_planted_link_at_the_temporary_name_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    // The name the temporary file used to have, and one a guess might try.
    for name in [".state.json.tmp", ".state.json.0.0000000000000000.tmp"] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
    }
    let path = dir.path().join(state::FILE);
    write(&path, &state_with(1));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(state::read(dir.path()).unwrap(), state_with(1));
    // What the write made of its own is gone: only the planted links stay.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".state.json.0.0000000000000000.tmp",
            ".state.json.tmp",
            "state.json",
            "victim"
        ]
    );
}
