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

/// How long a client waits for the daemon, all told.
const ASK_WITHIN: Duration = Duration::from_secs(30);

/// The client side: asks and returns the answer, or why there is none,
/// within 30 s all told.
///
/// Blocking, on purpose: one request and one answer line need no async
/// runtime, and making one (its I/O, timer and signal drivers) was a tenth
/// of what a `status` cost. The wait is bounded at every step: connecting
/// (a daemon whose backlog is full keeps a blocking connect waiting, so
/// the socket's send timeout is set before it), writing, and each read,
/// with what is left of the 30 s.
pub fn ask(path: &Path, request: &str) -> Result<String, AskError> {
    ask_within(path, request, ASK_WITHIN)
}

fn ask_within(path: &Path, request: &str, within: Duration) -> Result<String, AskError> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + within;
    let failed = |source| AskError::Failed {
        path: path.to_path_buf(),
        source,
    };
    let left = || {
        deadline
            .checked_duration_since(std::time::Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                failed(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", within.as_secs_f32()),
                ))
            })
    };
    let mut stream = connect(path, within).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => AskError::Denied(path.to_path_buf()),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            AskError::NotRunning(path.to_path_buf())
        }
        _ => failed(e),
    })?;
    stream.set_write_timeout(Some(left()?)).map_err(failed)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(failed)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // One line is the answer: up to its newline, or what came before EOF.
    loop {
        stream.set_read_timeout(Some(left()?)).map_err(failed)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => match memchr::memchr(b'\n', &chunk[..n]) {
                Some(end) => {
                    answer.extend_from_slice(&chunk[..=end]);
                    break;
                }
                None => answer.extend_from_slice(&chunk[..n]),
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                left()?;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    String::from_utf8(answer)
        .map_err(|e| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// A blocking connection to `path` whose connect gives up after `within`.
fn connect(path: &Path, within: Duration) -> std::io::Result<std::os::unix::net::UnixStream> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // A blocking connect to a listener whose backlog is full waits for as
    // long as the send timeout allows; without one, for ever.
    let timeout = nix::sys::time::TimeVal::new(within.as_secs() as _, within.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
    let addr = UnixAddr::new(path)?;
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => Ok(std::os::unix::net::UnixStream::from(fd)),
        // The send timeout ran out while the backlog stayed full.
        Err(nix::errno::Errno::EAGAIN) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the daemon accepted no connection within {} s",
                within.as_secs()
            ),
        )),
        Err(e) => Err(e.into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    const SOON: Duration = Duration::from_millis(300);

    #[test]
    fn an_answer_line_is_returned_and_no_socket_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET);
        assert!(matches!(
            ask_within(&path, "status", SOON),
            Err(AskError::NotRunning(_))
        ));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let daemon = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 7];
            conn.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"status\n");
            // In pieces, as a large state may come.
            conn.write_all(b"{\"daemon\":").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            // Whatever follows the line is not the answer.
            conn.write_all(b"{}}\nmore").unwrap();
        });
        assert_eq!(
            ask_within(&path, "status", SOON).unwrap(),
            "{\"daemon\":{}}\n"
        );
        daemon.join().unwrap();
    }

    #[test]
    fn a_daemon_that_accepts_and_says_nothing_or_drips_is_given_up_on_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (_silent, _) = listener.accept().unwrap();
            let (mut dripping, _) = listener.accept().unwrap();
            for _ in 0..50 {
                if dripping.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        for _ in 0..2 {
            let started = Instant::now();
            let e = ask_within(&path, "status", SOON).unwrap_err();
            assert!(matches!(e, AskError::Failed { .. }), "{e}");
            assert!(e.to_string().contains("no answer within 0.3 s"), "{e}");
            assert!(started.elapsed() < SOON + Duration::from_secs(2));
        }
    }

    #[test]
    fn a_daemon_whose_backlog_is_full_is_given_up_on_in_time() {
        use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET);
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&listener),
            &UnixAddr::new(&path).unwrap(),
        )
        .unwrap();
        // A backlog of none: one connection waits in it, and it is never accepted.
        socket::listen(&listener, Backlog::new(0).unwrap()).unwrap();
        let _waiting = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let started = Instant::now();
        let e = ask_within(&path, "status", SOON).unwrap_err();
        assert!(e.to_string().contains("accepted no connection"), "{e}");
        assert!(started.elapsed() < SOON + Duration::from_secs(2));
    }
}
