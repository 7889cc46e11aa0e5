//! Shared by the integration tests: fixture trees copied to a temporary
//! directory, with `proc/locks.in` rendered against the copied files'
//! device and inode numbers (those differ on every checkout).
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub mod fake_aws;
pub mod fake_bus;
pub mod fake_fleet;
pub mod fake_ssm;
pub mod signed_repo;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A private copy of `tests/fixtures/<case>`, ready to use as `--root`.
pub fn fixture_root(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join(case), dir.path());
    render_proc_locks(dir.path());
    dir
}

/// Replaces `{{lock:/host/path}}` in `proc/locks.in` with the copied file's
/// `major:minor:inode`, as the kernel writes them (hex device, decimal inode).
pub fn render_proc_locks(root: &Path) {
    let template = root.join("proc/locks.in");
    let Ok(text) = std::fs::read_to_string(&template) else {
        return;
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{{lock:") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").unwrap() + start;
        let host_path = &rest[start + 7..end];
        let meta = std::fs::metadata(root.join(host_path.trim_start_matches('/'))).unwrap();
        let dev = meta.dev();
        out.push_str(&format!(
            "{:02x}:{:02x}:{}",
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev),
            meta.ino()
        ));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    std::fs::write(root.join("proc/locks"), out).unwrap();
}

/// Puts the agent-host fixture's stand-in `amazon-ssm-agent` (it prints a
/// version) into `root`: a managed node without the agent fails `agent.service`.
pub fn install_agent_binary(root: &Path) {
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(
        fixtures().join("agent-host/usr/bin/amazon-ssm-agent"),
        bin.join("amazon-ssm-agent"),
    )
    .unwrap();
}

/// An endpoint that accepts connections and never answers.
pub async fn black_hole() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// A root with a given os-release and nothing else.
pub fn os_release_root(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::copy(
        fixtures().join("os-release").join(name),
        dir.path().join("etc/os-release"),
    )
    .unwrap();
    dir
}

/// Runs the built binary with an empty config (never the host's /etc).
pub fn run(root: &Path, args: &[&str]) -> std::process::Output {
    let config = tempfile::tempdir().unwrap();
    let config_file = config.path().join("config.toml");
    std::fs::write(&config_file, "").unwrap();
    run_with_config(root, &config_file, args)
}

/// A system-bus address where nothing listens: the host's own systemd stays out of tests.
pub const NO_BUS: &str = "unix:path=/nonexistent/system_bus_socket";

pub fn run_with_config(root: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    run_on_bus(root, config, NO_BUS, args)
}

pub fn run_on_bus(root: &Path, config: &Path, bus: &str, args: &[&str]) -> std::process::Output {
    command(root, config, args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .output()
        .unwrap()
}

/// A new directory for one command, left for the OS to clean.
pub fn private_dir(what: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("ssm-preflight-test-{what}-"))
        .tempdir()
        .unwrap()
        .keep()
}

/// Writes a state file under `state` whose last run is `report` (a
/// `check --json` answer), as the daemon or `check --report` leaves it.
pub fn record_run(state: &Path, report: &serde_json::Value) {
    let file = serde_json::json!({ "last_run": report, "history": [] });
    std::fs::write(state.join("state.json"), file.to_string()).unwrap();
}

/// The binary under test: cargo's build, or `SSM_PREFLIGHT_TEST_BIN` run
/// under `SSM_PREFLIGHT_TEST_RUNNER` (scripts/test-aarch64 runs the packaged
/// aarch64 binary so, under `qemu-aarch64 -L /usr/aarch64-linux-gnu`).
pub fn binary() -> std::process::Command {
    let bin = std::env::var("SSM_PREFLIGHT_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ssm-preflight").to_string());
    let runner = std::env::var("SSM_PREFLIGHT_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(words).arg(bin);
            cmd
        }
        None => std::process::Command::new(bin),
    }
}

/// The binary with `--root` and `--config`, no bus, IMDS off and no
/// inherited AWS settings; callers add what their test needs.
pub fn command(root: &Path, config: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = binary();
    cmd.args(args)
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(config)
        .env("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
        // Never the host's own state or daemon, nor another test's: each
        // command gets fresh directories; tests that share them set their own.
        .env("STATE_DIRECTORY", private_dir("state"))
        .env("RUNTIME_DIRECTORY", private_dir("run"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM");
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_ENDPOINT_URL")
            || key == "AWS_ACCESS_KEY_ID"
            || key == "AWS_EC2_METADATA_SERVICE_ENDPOINT"
        {
            cmd.env_remove(key);
        }
    }
    // A safety net for the network rule: any AWS service a test does not
    // point at a fake goes to a loopback port where nothing listens, never
    // to its real regional name.
    cmd.env("AWS_ENDPOINT_URL", NOWHERE);
    cmd
}

/// A loopback address where nothing listens (the discard port, refused).
pub const NOWHERE: &str = "http://127.0.0.1:9";
