//! The status socket: `$RUNTIME_DIRECTORY/status.sock` (else
//! /run/ssm-preflight), mode 0660, group `ssm-preflight` when that group
//! exists. One request line, one JSON answer line. `status` is for anyone
//! who may open the socket; `refresh` (run the checks now) for root only,
//! told by the peer's credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub const SOCKET: &str = "status.sock";
pub const GROUP: &str = "ssm-preflight";

pub fn runtime_dir() -> PathBuf {
    std::env::var("RUNTIME_DIRECTORY")
        .ok()
        .and_then(|v| v.split(':').next().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/run/ssm-preflight"))
}

pub fn socket_path() -> PathBuf {
    runtime_dir().join(SOCKET)
}

/// Binds the socket, replacing a stale one, readable by root and the group.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name(GROUP) {
        let _ = nix::unistd::chown(path, None, Some(group.gid));
    }
    Ok(listener)
}

/// A request as the daemon sees it, with whether the asker is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub line: String,
    pub root: bool,
}

/// Reads one request line (bounded) and the peer's uid.
pub async fn read_request(stream: &mut UnixStream) -> std::io::Result<Request> {
    let root = stream.peer_cred().map(|c| c.uid() == 0).unwrap_or(false);
    let mut line = String::new();
    let mut reader = BufReader::new(AsyncReadExt::take(stream, 256));
    tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    Ok(Request {
        line: line.trim().to_string(),
        root,
    })
}

/// Why the daemon gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Nothing listens: no socket, or a stale one.
    #[error("no daemon answers on {}", .0.display())]
    NotRunning(PathBuf),
    /// The socket is there but this user may not open it (root and the group only).
    #[error("{} is for root and the {GROUP} group", .0.display())]
    Denied(PathBuf),
    #[error("the daemon on {} did not answer: {source}", path.display())]
    Failed {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The client side: asks and returns the answer, or why there is none.
pub async fn ask(path: &Path, request: &str) -> Result<String, AskError> {
    let failed = |source| AskError::Failed {
        path: path.to_path_buf(),
        source,
    };
    let work = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => AskError::Denied(path.to_path_buf()),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    AskError::NotRunning(path.to_path_buf())
                }
                _ => failed(e),
            })?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(failed)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(failed)?;
        Ok(answer)
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .unwrap_or_else(|_| {
            Err(failed(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within 30 s",
            )))
        })
}

/// Answers the socket for as long as the daemon runs: each connection gets
/// `answer(request)` as one line. An accept error never ends the loop: it
/// is logged once per kind, and when the process is out of descriptors
/// (EMFILE, ENFILE) the loop pauses instead of spinning on it.
pub async fn serve<F>(listener: UnixListener, answer: F)
where
    F: Fn(Request) -> String + Send + Sync + 'static,
{
    let answer = std::sync::Arc::new(answer);
    let mut last_error: Option<std::io::ErrorKind> = None;
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) => {
                last_error = None;
                let answer = answer.clone();
                tokio::spawn(async move {
                    let Ok(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let line = answer(request);
                    let _ = stream.write_all(format!("{line}\n").as_bytes()).await;
                });
            }
            Err(e) => {
                if last_error != Some(e.kind()) {
                    tracing::warn!(
                        "the status socket cannot accept a connection: {e}; it keeps listening"
                    );
                    last_error = Some(e.kind());
                }
                let out_of_descriptors = matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EMFILE) | Some(nix::libc::ENFILE)
                );
                let pause = if out_of_descriptors { 200 } else { 20 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}
