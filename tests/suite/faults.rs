//! The service and the commands under faults, each with a bound the test
//! asserts: a state directory that cannot be written (a full tmpfs, a
//! read-only one), a status socket out of file descriptors, a second
//! daemon, an SSM endpoint that accepts and never answers or drips a byte a
//! second, and a mount whose statfs never returns. The tests that mount
//! need root and are `#[ignore]`d for plain `cargo test`; `scripts/test`
//! runs them as root.

use crate::common;

use common::fake_ssm;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// A daemon started as systemd would, with its own directories, its
/// NOTIFY_SOCKET and its log in a file.
struct Service {
    child: Child,
    notify: UnixDatagram,
    dirs: tempfile::TempDir,
    root: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
}

struct Start<'a> {
    fixture: &'a str,
    config: &'a str,
    state: Option<&'a Path>,
    env: &'a [(&'a str, String)],
    nofile: Option<u64>,
}

impl Default for Start<'_> {
    fn default() -> Self {
        Start {
            fixture: "debian12-clean",
            config: "",
            state: None,
            env: &[],
            nofile: None,
        }
    }
}

impl Service {
    fn start(how: Start) -> Service {
        let dirs = tempfile::tempdir().unwrap();
        let run = dirs.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let state = match how.state {
            Some(s) => s.to_path_buf(),
            None => {
                let s = dirs.path().join("state");
                std::fs::create_dir(&s).unwrap();
                s
            }
        };
        let notify_path = dirs.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let root = common::fixture_root(how.fixture);
        let config = dirs.path().join("config.toml");
        std::fs::write(&config, how.config).unwrap();
        let log = std::fs::File::create(dirs.path().join("daemon.log")).unwrap();
        let env: Vec<(String, String)> = how
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain([
                ("STATE_DIRECTORY".into(), state.display().to_string()),
                ("RUNTIME_DIRECTORY".into(), run.display().to_string()),
            ])
            .collect();
        let mut cmd = common::command(root.path(), &config, &["daemon"]);
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(limit) = how.nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().unwrap();
        Service {
            child,
            notify,
            dirs,
            root,
            config,
            env,
        }
    }

    /// Reads notify messages until one contains `want`; returns all read.
    fn wait_for(&self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no `{want}` in {seen:?}: {e}\nlog:\n{}", self.log()));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.contains(want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }

    /// Every notify message that arrived and was not read yet.
    fn drain(&self) -> Vec<String> {
        self.notify.set_nonblocking(true).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.notify.set_nonblocking(false).unwrap();
        seen
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        common::command(self.root.path(), &self.config, args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dirs.path().join("daemon.log")).unwrap_or_default()
    }

    /// User plus system CPU time the daemon has used.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    fn terminate_within(&mut self, bound: Duration) {
        let asked = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let code = self
            .child
            .wait_timeout(bound)
            .unwrap()
            .unwrap_or_else(|| panic!("still running {bound:?} after SIGTERM\n{}", self.log()));
        assert_eq!(code.code(), Some(0), "{}", self.log());
        assert!(asked.elapsed() < bound);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hybrid node's environment against the fake SSM at `addr`.
fn hybrid_env(addr: std::net::SocketAddr) -> [(&'static str, String); 1] {
    [("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))]
}

/// A hybrid node reporting at once; the checks that would resolve real AWS
/// names are off (nothing leaves loopback).
const HYBRID: &str = "mode = \"hybrid\"\n[checks]\ndisable = [\"network\", \"clock.sync\"]\n[patch_group]\nvalue = \"production-linux\"\n[report]\njitter = \"0s\"\n";

fn puts(ssm: &fake_ssm::Shared) -> usize {
    ssm.lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.contains("PutComplianceItems"))
        .count()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "preflight-test"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed");
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Runs the daemon for 20 s with a state directory it cannot write and
/// checks every bound; `why` is what the OS says.
async fn unwritable_state(state: &Path, why: &str) {
    let (ssm, addr) = fake_ssm::start().await;
    let env = hybrid_env(addr);
    let svc = Service::start(Start {
        fixture: "hybrid-node",
        config: HYBRID,
        state: Some(state),
        env: &env,
        ..Default::default()
    });
    svc.wait_for("READY=1");
    let cpu_before = svc.cpu();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let cpu = svc.cpu().saturating_sub(cpu_before);
    let log = svc.log();
    assert!(puts(&ssm) >= 1, "the report still reaches SSM\n{log}");
    assert!(
        puts(&ssm) <= 3,
        "{} PutComplianceItems in 20 s\n{log}",
        puts(&ssm)
    );
    assert!(cpu <= Duration::from_millis(500), "{cpu:?} of CPU in 20 s");
    assert_eq!(
        log.matches("the state is not recorded").count(),
        1,
        "logged once per distinct error:\n{log}"
    );
    let status = tokio::task::block_in_place(|| svc.status());
    let error = status["daemon"]["state_error"].as_str().unwrap_or_default();
    assert!(error.contains(why), "status: {status:#}");
    assert!(
        status["state"]["last_run"]["verdict"].is_string(),
        "status shows the run the file could not take: {status:#}"
    );
    let readable = String::from_utf8_lossy(&svc.cli(&["status"]).stdout).into_owned();
    assert!(
        readable.contains("State: the state file cannot be written"),
        "{readable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a tmpfs"]
async fn a_full_state_directory_neither_loops_nor_floods() {
    assert!(is_root(), "run as root (scripts/test does)");
    let fs = Tmpfs::mount("size=256k");
    let state = fs.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // Fill it: the state directory and its lock file exist, nothing more fits.
    let mut filler = std::fs::File::create(fs.path().join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    unwritable_state(&state, "No space left on device").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a tmpfs"]
async fn a_read_only_state_directory_neither_loops_nor_floods() {
    assert!(is_root(), "run as root (scripts/test does)");
    let fs = Tmpfs::mount("size=1m");
    let state = fs.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "remount ro failed");
    unwritable_state(&state, "Read-only file system").await;
}

#[test]
fn out_of_descriptors_the_socket_survives_and_no_unplanned_run_starts() {
    let svc = Service::start(Start {
        config: "mode = \"local\"\n",
        nofile: Some(48),
        ..Default::default()
    });
    svc.wait_for("STATUS=last run");
    let socket = svc.dirs.path().join("run/status.sock");
    // More connections than the daemon has descriptors; none sends a request.
    let held: Vec<_> = (0..80)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok())
        .collect();
    assert!(held.len() > 48, "only {} connections made", held.len());
    std::thread::sleep(Duration::from_secs(4));
    drop(held);
    // Once the connections are gone, status answers again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let out = svc.cli(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["daemon_running"] == true {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "status never answered again\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["state"]["history"].as_array().unwrap().len(), 1);
    let later = svc.drain();
    assert!(
        !later.iter().any(|m| m.contains("running the checks")),
        "a run started that the plan did not ask for: {later:?}"
    );
    assert!(
        svc.log()
            .contains("the status socket cannot accept a connection"),
        "{}",
        svc.log()
    );
    assert!(svc.cpu() < Duration::from_secs(2), "{:?}", svc.cpu());
}

#[test]
fn a_second_daemon_refuses_and_names_the_first() {
    let svc = Service::start(Start {
        config: "mode = \"local\"\n",
        ..Default::default()
    });
    svc.wait_for("READY=1");
    let mut second = common::command(svc.root.path(), &svc.config, &["daemon"]);
    second.envs(svc.env.iter().map(|(k, v)| (k, v)));
    let mut child = second.stderr(Stdio::piped()).spawn().unwrap();
    let code = child
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("the second daemon exits at once");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "another ssm-preflight daemon (pid {})",
            svc.child.id()
        )),
        "{err}"
    );
    assert_eq!(
        svc.status()["daemon_running"],
        true,
        "the first keeps its socket"
    );
}

/// An endpoint that answers one byte a second, forever.
async fn drip() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                    .iter()
                    .cycle()
                {
                    if tcp.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    });
    addr
}

const BOUNDED: &str = "mode = \"hybrid\"\n[checks]\ndisable = [\"network\", \"clock.sync\"]\n[patch_group]\nvalue = \"production-linux\"\n[report]\njitter = \"0s\"\n[aws]\nattempt_timeout = \"1s\"\noperation_timeout = \"3s\"\n";

async fn a_silent_ssm_is_bounded(addr: std::net::SocketAddr) {
    // `check --report` ends within the operation timeout and keeps the report.
    let root = common::fixture_root("hybrid-node");
    let state = tempfile::tempdir().unwrap();
    let config = root.path().join("bounded.toml");
    std::fs::write(&config, BOUNDED).unwrap();
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| {
        common::command(root.path(), &config, &["check", "--report"])
            .env("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))
            .env("STATE_DIRECTORY", state.path())
            .output()
            .unwrap()
    });
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < Duration::from_secs(10),
        "check --report took {took:?}"
    );
    assert!(err.contains("Report: not sent yet"), "{err}");
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(kept["delivery"]["state"], "pending", "{kept:#}");

    // The daemon runs its checks, answers status, and stops on SIGTERM.
    let env = [("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))];
    let mut svc = Service::start(Start {
        fixture: "hybrid-node",
        config: BOUNDED,
        env: &env,
        ..Default::default()
    });
    svc.wait_for("READY=1");
    tokio::task::block_in_place(|| svc.wait_for("STATUS=last run"));
    // The report is now being sent into the silence.
    let status = tokio::task::block_in_place(|| svc.status());
    assert_eq!(status["daemon_running"], true);
    assert!(
        status["state"]["last_run"]["verdict"].is_string(),
        "{status:#}"
    );
    tokio::task::block_in_place(|| svc.terminate_within(Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssm_that_never_answers_ends_within_the_call_timeout() {
    a_silent_ssm_is_bounded(common::black_hole().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssm_that_drips_a_byte_a_second_ends_within_the_call_timeout() {
    a_silent_ssm_is_bounded(drip().await).await;
}

/// A FUSE file system whose server never answers, not even INIT: every
/// lookup and statfs on it blocks until the server goes away.
struct HungMount {
    server: Child,
    at: PathBuf,
}

impl HungMount {
    fn at(dir: &Path) -> HungMount {
        assert!(
            Path::new("/dev/fuse").exists(),
            "this test needs /dev/fuse (the fuse kernel module)"
        );
        let script = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/dev/fuse", os.O_RDWR)
opts = "fd=%d,rootmode=40000,user_id=0,group_id=0" % fd
if libc.mount(b"hung", sys.argv[1].encode(), b"fuse", 0, opts.encode()) != 0:
    print("mount failed:", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
print("mounted", flush=True)
sys.stdin.read()
"#;
        let mut server = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "mounted");
        HungMount {
            server,
            at: dir.to_path_buf(),
        }
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        // Closing the server's /dev/fuse aborts the connection: blocked
        // callers get an error and the mount can go.
        drop(self.server.stdin.take());
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}

#[test]
#[ignore = "needs root: mounts a FUSE file system"]
fn a_mount_whose_statfs_never_returns_is_an_error_naming_it() {
    assert!(is_root(), "run as root (scripts/test does)");
    let root = common::fixture_root("debian12-clean");
    std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
    std::fs::write(
        root.path().join("proc/self/mountinfo"),
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
         40 22 0:50 / /var rw,nosuid,nodev,relatime shared:20 - fuse hung rw,user_id=0,group_id=0\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("var")).unwrap();
    let _hung = HungMount::at(&root.path().join("var"));
    let config = root.path().join("timeout.toml");
    std::fs::write(&config, "[checks]\ntimeout = \"2s\"\n").unwrap();
    let bound = Duration::from_secs(3); // checks.timeout + 1 s

    let started = Instant::now();
    let out = common::run_with_config(
        root.path(),
        &config,
        &["check", "--json", "--mode", "local"],
    );
    let took = started.elapsed();
    assert!(took < bound, "check took {took:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let checks = report["checks"].as_array().unwrap();
    let var = checks
        .iter()
        .find(|c| c["id"] == "disk.var")
        .expect("a disk.var result");
    assert_eq!(var["status"], "error", "{var:#}");
    assert!(
        var["summary"]
            .as_str()
            .unwrap()
            .contains("mounted at /var (fuse) is hung"),
        "{var:#}"
    );
    let root_fs = checks
        .iter()
        .find(|c| c["id"] == "disk.root")
        .expect("disk.root still judged");
    assert_ne!(root_fs["status"], "error", "{root_fs:#}");

    let started = Instant::now();
    let out = common::run_with_config(root.path(), &config, &["gate", "--mode", "local"]);
    let took = started.elapsed();
    assert!(took < bound, "gate took {took:?}");
    assert!(out.status.code().is_some(), "gate exits with a code");
}

/// The binary as the `nobody` user, outside the ssm-preflight group.
fn as_nobody(mut cmd: std::process::Command) -> std::process::Output {
    // SAFETY: setgroups/setgid/setuid are async-signal-safe; nothing else runs before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
#[ignore = "needs root: runs the status command as another user"]
fn a_user_outside_the_group_is_told_who_may_look_and_how() {
    assert!(is_root(), "run as root (scripts/test does)");
    let svc = Service::start(Start {
        config: "mode = \"local\"\n",
        ..Default::default()
    });
    svc.wait_for("STATUS=last run");
    // The service's directories as systemd makes them: not for everyone.
    use std::os::unix::fs::PermissionsExt;
    for d in ["state", "run"] {
        std::fs::set_permissions(
            svc.dirs.path().join(d),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
    }
    std::fs::set_permissions(svc.dirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(svc.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&svc.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = common::command(svc.root.path(), &svc.config, args);
        cmd.envs(svc.env.iter().map(|(k, v)| (k, v)));
        as_nobody(cmd)
    };
    let out = cli(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("are for root and the ssm-preflight group: run `sudo ssm-preflight status`, or join the group with `sudo usermod -aG ssm-preflight $USER`"),
        "{err}"
    );
    assert!(!err.contains("Permission denied"), "{err}");
    let out = cli(&["status", "--refresh"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("only root may ask the daemon for a run"),
        "{err}"
    );
    assert!(!err.contains("not running"), "{err}");
}

/// Issue #17 item 1: a yum directory the user may not list is not "no
/// interrupted run". Run as `nobody` against a root whose /var/lib/yum is 0700.
#[test]
#[ignore = "needs root: reads the package database as another user"]
fn an_unreadable_yum_directory_is_not_a_clean_database() {
    assert!(is_root(), "run as root (scripts/test does)");
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let yum = root.path().join("var/lib/yum");
    std::fs::create_dir_all(&yum).unwrap();
    std::fs::write(yum.join("transaction-all.2026-11-30.02:00.01"), "").unwrap();
    for dir in [
        root.path(),
        &root.path().join("var"),
        &root.path().join("var/lib"),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&yum, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::set_permissions(config.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_file = config.path().join("config.toml");
    std::fs::write(&config_file, "mode = \"local\"\n").unwrap();
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cmd = common::command(
        root.path(),
        &config_file,
        &["check", "--only", "pkg.state", "--json"],
    );
    let out = as_nobody(cmd);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let check = &report["checks"][0];
    assert_eq!(check["status"], "warn", "{check:#}");
    let summary = check["summary"].as_str().unwrap();
    assert!(
        summary.contains("could not read /var/lib/yum (Permission denied"),
        "{summary}"
    );
    // As root the same tree is read, and the unfinished transaction found.
    let out = common::run_with_config(
        root.path(),
        &config_file,
        &["check", "--only", "pkg.state", "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["checks"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("unfinished transaction"),
        "{report:#}"
    );
}
