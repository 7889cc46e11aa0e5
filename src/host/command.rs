//! Running a host command with a bound: the agent's `--version`, the
//! payload's interpreter, the package manager's clean. A command that does
//! not finish within its budget is killed, never waited on.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt;

/// What a finished command wrote (at most the first 64 KiB of stdout and
/// 2,000 bytes of stderr) and how it exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Why a command gave no answer to use.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}", humantime::format_duration(*.budget))]
    TimedOut { command: String, budget: Duration },
    #[error("`{command}` exited {status}: {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("waiting for `{command}` failed: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
}

/// Runs `program` with `args`, no input, within `budget`; any exit status
/// is an answer (see `Finished::success`).
pub fn run(program: &Path, args: &[&str], budget: Duration) -> Result<Finished, CommandError> {
    run_with_env(program, args, &[], budget)
}

/// `run` with `env` added to the command's environment.
pub fn run_with_env(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    budget: Duration,
) -> Result<Finished, CommandError> {
    let command = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CommandError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    // Read while it runs: a command that writes more than a pipe holds
    // would otherwise wait on us while we wait on it. Past the limit the
    // rest is read and dropped.
    fn drain(
        pipe: Option<impl Read + Send + 'static>,
        limit: u64,
    ) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = (&mut pipe).take(limit).read_to_end(&mut text);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    }
    let stdout = drain(child.stdout.take(), 64 * 1024);
    let stderr = drain(child.stderr.take(), 2000);
    let status = match child.wait_timeout(budget) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CommandError::TimedOut { command, budget });
        }
        Err(source) => return Err(CommandError::Wait { command, source }),
    };
    Ok(Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

impl Finished {
    /// The output of a command that succeeded; its exit and stderr otherwise.
    pub fn success(self, command: &str) -> Result<String, CommandError> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            Err(CommandError::Failed {
                command: command.to_string(),
                status: self.status,
                stderr: self.stderr.trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_exit_and_timeout_are_told_apart() {
        let sh = Path::new("/bin/sh");
        let out = run(
            sh,
            &["-c", "echo hello; echo oops >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout, "hello\n");
        let failed = out.success("sh -c …").unwrap_err().to_string();
        assert!(
            failed.starts_with("`sh -c …` exited exit status: 3: oops"),
            "{failed}"
        );
        let slow = run(sh, &["-c", "sleep 5"], Duration::from_millis(100)).unwrap_err();
        assert_eq!(
            slow.to_string(),
            "`/bin/sh -c sleep 5` did not finish within 100ms"
        );
        // More than a pipe holds, while it runs: read as it comes.
        let big = run(
            sh,
            &["-c", "head -c 300000 /dev/zero | tr '\\0' x"],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(big.stdout.len(), 64 * 1024);
        let missing = run(Path::new("/nonexistent/tool"), &[], Duration::from_secs(1)).unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("cannot run /nonexistent/tool: "));
    }
}
