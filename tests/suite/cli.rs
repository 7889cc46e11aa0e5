//! The built binary on fixture roots: exit codes, the JSON contract, the
//! table on a non-terminal, `--only`, config errors and `config show`.

use crate::common;

use common::{fixture_root, run, run_with_config};
use serde_json::Value;
use std::time::Duration;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn exit_codes_follow_the_worst_result() {
    let cases = [
        ("debian12-clean", 0),
        ("reboot-required", 1),
        ("dpkg-interrupted", 2),
        ("dpkg-stuck", 2),
    ];
    for (case, code) in cases {
        let dir = fixture_root(case);
        let out = run(dir.path(), &["check"]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{case}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn the_table_on_a_non_terminal_has_no_colour_and_gives_remedies() {
    let dir = fixture_root("reboot-required");
    let out = run(dir.path(), &["check"]);
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI codes when stdout is a pipe: {text:?}"
    );
    assert!(text.contains("STATUS  CHECK"), "{text}");
    let warn_line = text
        .lines()
        .position(|l| l.starts_with("warn    reboot.pending"))
        .expect(&text);
    let next = text.lines().nth(warn_line + 1).unwrap();
    assert!(
        next.trim_start()
            .starts_with("fix: Reboot before the window opens (`sudo systemctl reboot`)"),
        "{next}"
    );
    assert!(
        text.contains("Verdict: WARN — 0 failures, 1 warning"),
        "{text}"
    );
}

#[test]
fn json_follows_the_contract() {
    let dir = fixture_root("dpkg-interrupted");
    let out = run(dir.path(), &["check", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "checks",
            "duration_ms",
            "host",
            "next_window",
            "started_at",
            "verdict",
            "version"
        ]
    );
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["verdict"], "fail");
    assert!(json["next_window"].is_null());
    humantime::parse_rfc3339(json["started_at"].as_str().unwrap()).unwrap();
    let host = json["host"].as_object().unwrap();
    let host_keys: Vec<&str> = host.keys().map(String::as_str).collect();
    assert_eq!(
        host_keys,
        ["instance_id", "mode", "os", "patch_group", "region"]
    );
    assert_eq!(host["mode"], "local");
    assert_eq!(host["os"], "Debian GNU/Linux 12 (bookworm)");
    assert!(
        host["instance_id"].is_null() && host["region"].is_null() && host["patch_group"].is_null()
    );
    for check in json["checks"].as_array().unwrap() {
        let keys: Vec<&str> = check
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "details",
                "duration_ms",
                "group",
                "id",
                "remedy",
                "severity",
                "status",
                "summary",
                "title"
            ]
        );
        assert!(
            ["pass", "warn", "fail", "skip", "error"].contains(&check["status"].as_str().unwrap())
        );
        assert!(["critical", "high", "medium", "low", "informational"]
            .contains(&check["severity"].as_str().unwrap()));
    }
    let state = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "pkg.state")
        .unwrap();
    assert_eq!(state["status"], "fail");
    assert_eq!(state["group"], "host");
    assert!(state["remedy"]
        .as_str()
        .unwrap()
        .contains("dpkg --configure -a"));
}

#[test]
fn mode_and_identity_come_from_local_files() {
    // An explicit --mode auto detects from the tree under --root.
    let out = run(
        &common::fixtures().join("ec2-nitro"),
        &[
            "check",
            "--json",
            "--only",
            "os.supported",
            "--mode",
            "auto",
        ],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["host"]["mode"], "ec2");
    assert_eq!(json["host"]["instance_id"], "i-0123456789abcdef0");
    let out = run(
        &common::fixtures().join("hybrid"),
        &[
            "check",
            "--json",
            "--only",
            "os.supported",
            "--mode",
            "local",
        ],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["host"]["mode"], "local", "--mode overrides detection");
}

#[test]
fn only_selects_ids_families_and_groups() {
    let dir = fixture_root("debian12-clean");
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["check", "--json"];
        all.extend_from_slice(args);
        let out = run(dir.path(), &all);
        let json: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&["--only", "pkg.lock,os.supported"]),
        ["pkg.lock", "os.supported"]
    );
    assert_eq!(
        ids(&["--only", "pkg"]),
        ["pkg.lock", "pkg.state", "pkg.simulate", "pkg.exclude"]
    );
    assert_eq!(ids(&["--only", "disk"]), ["disk.root"]);
    assert_eq!(
        ids(&["--only", "host"]),
        [
            "disk.root",
            "pkg.lock",
            "pkg.state",
            "pkg.simulate",
            "pkg.exclude",
            "reboot.pending",
            "os.supported",
            "patch.prereqs",
            "patchgroup.tag"
        ]
    );
    assert_eq!(
        ids(&["--only", "agent"]),
        [
            "agent.service",
            "agent.version",
            "agent.log",
            "agent.proxy",
            "agent.identity"
        ]
    );
    assert_eq!(
        ids(&["--only", "endpoint"]),
        [
            "endpoint.ssm",
            "endpoint.ssmmessages",
            "endpoint.ec2messages",
            "endpoint.s3"
        ]
    );

    let out = run(dir.path(), &["check", "--only", "pkg.lok"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("--only names `pkg.lok`, which is no check; use check IDs, families or groups from: agent.service, agent.version"), "{}", stderr(&out));
    let out = run(dir.path(), &["check", "--only", "disk.boot"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("the checks here are: agent.service, agent.version")
            && stderr(&out).contains(" disk.root, pkg.lock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn disabled_checks_do_not_run() {
    let dir = fixture_root("reboot-required");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[checks]\ndisable = [\"reboot.pending\"]\n").unwrap();
    let out = run_with_config(dir.path(), config.path(), &["check", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("reboot.pending"));
}

#[test]
fn a_bad_config_exits_3_and_names_file_line_and_key() {
    let dir = fixture_root("debian12-clean");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[checks]\ntimeout = \"soon\"\n").unwrap();
    let out = run_with_config(dir.path(), config.path(), &["check"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:2:11: `checks.timeout`: `soon` is not a duration",
            config.path().display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let missing = run_with_config(
        dir.path(),
        std::path::Path::new("/nonexistent/config.toml"),
        &["check"],
    );
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        stderr(&missing).contains("cannot read config file /nonexistent/config.toml"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn config_show_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    std::fs::write(&main, "mode = \"local\"\n").unwrap();
    std::fs::create_dir(dir.path().join("config.d")).unwrap();
    std::fs::write(
        dir.path().join("config.d/50-disk.toml"),
        "[disk]\n\nwarn_below = \"3GiB\"\n",
    )
    .unwrap();
    let out = run_with_config(dir.path(), &main, &["config", "show"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("mode = \"local\"  # {}:1", main.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "disk.warn_below = \"3.0 GiB\"  # {}/config.d/50-disk.toml:3",
            dir.path().display()
        )),
        "{text}"
    );
    assert!(
        text.contains("pkg_lock.stuck_after = \"30m\"  # built-in default"),
        "{text}"
    );

    let out = run_with_config(dir.path(), &main, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(dir.path().join("config.d/README"), "notes").unwrap();
    let out = run_with_config(dir.path(), &main, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("config.d/README: only regular *.toml files are read"),
        "{}",
        stderr(&out)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[disk]\nwarn_below = \"1GiB\"\nfail_below = \"2GiB\"\n",
    )
    .unwrap();
    let out = run_with_config(
        dir.path(),
        &main,
        &["config", "validate", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(&format!(
            "{}:3:1: in [disk], fail_below is above warn_below",
            bad.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_hung_check_times_out_and_the_run_still_returns() {
    use wait_timeout::ChildExt;
    let dir = fixture_root("yum-live");
    // Opening a FIFO with no writer blocks forever: a stand-in for a hung read.
    let uptime = dir.path().join("proc/uptime");
    std::fs::remove_file(&uptime).unwrap();
    nix::unistd::mkfifo(&uptime, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    // patch.prereqs is off: this yum tree has no Python, a failure that
    // would hide the exit code this test is about.
    std::fs::write(
        config.path(),
        "[checks]\ntimeout = \"1s\"\ndisable = [\"patch.prereqs\"]\n",
    )
    .unwrap();
    // The common command: no bus, no IMDS, private state (issue #17 item 15).
    let mut child = common::command(dir.path(), config.path(), &["check", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
    if status.is_none() {
        let _ = child.kill();
        panic!("check did not return although every check has a 1s timeout");
    }
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let lock = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "pkg.lock")
        .unwrap();
    assert_eq!(lock["status"], "error");
    assert_eq!(
        lock["summary"],
        "the check did not finish within its 1s timeout"
    );
    let os = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "os.supported")
        .unwrap();
    assert_eq!(os["status"], "pass", "the other checks still ran");
    assert_eq!(
        status.unwrap().code(),
        Some(1),
        "an error counts as a warning"
    );
}

#[test]
fn one_member_of_a_family_can_be_selected_disabled_and_gated() {
    let dir = fixture_root("debian12-clean");
    let ids = |config: &str, args: &[&str]| -> Vec<String> {
        let file = dir.path().join("members.toml");
        std::fs::write(&file, config).unwrap();
        let mut all = vec!["check", "--json"];
        all.extend_from_slice(args);
        let out = run_with_config(dir.path(), &file, &all);
        let json: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .filter(|id| id.starts_with("endpoint."))
            .collect()
    };
    assert_eq!(ids("", &["--only", "endpoint.ssm"]), ["endpoint.ssm"]);
    assert_eq!(
        ids("[checks]\ndisable = [\"endpoint.s3\"]\n", &[]),
        [
            "endpoint.ssm",
            "endpoint.ssmmessages",
            "endpoint.ec2messages"
        ]
    );

    let gate = dir.path().join("gate.toml");
    std::fs::write(&gate, "[gate]\nchecks = [\"endpoint.ssm\"]\n").unwrap();
    let out = run_with_config(dir.path(), &gate, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run_with_config(dir.path(), &gate, &["gate", "--mode", "local"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("nothing blocks patching"),
        "{}",
        stdout(&out)
    );

    // A name that is no check at all is refused where it is written.
    std::fs::write(&gate, "\n[gate]\nchecks = [\"agent.nonsense\"]\n").unwrap();
    let out = run_with_config(dir.path(), &gate, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(&format!(
            "{}:3:1: `gate.checks` names `agent.nonsense`, which is no check",
            gate.display()
        )),
        "{}",
        stderr(&out)
    );
}

/// `packaging/config.toml` with every commented-out setting written in.
fn packaged_config_uncommented() -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.toml"),
    )
    .unwrap();
    text.lines()
        .map(|line| {
            let setting = line.strip_prefix('#').filter(|rest| {
                rest.starts_with('[')
                    || rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            });
            setting.unwrap_or(line).to_string() + "\n"
        })
        .collect()
}

#[test]
fn config_show_lists_every_key_of_the_packaged_config() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    let text = packaged_config_uncommented();
    std::fs::write(&main, &text).unwrap();
    let out = run_with_config(dir.path(), &main, &["config", "show"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&out);

    // Walk the file's keys as TOML reads them.
    let mut keys = Vec::new();
    let mut table = String::new();
    let mut windows = 0;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            windows += 1;
            table = format!("{name}[{windows}]");
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_string();
        } else if let Some((key, _)) = line.split_once(" = ").filter(|_| !line.starts_with('#')) {
            keys.push(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    assert!(keys.len() > 30, "read only {} keys: {keys:?}", keys.len());
    for key in &keys {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("{key} = "))
                    && l.contains(&main.display().to_string())),
            "`config show` does not list {key} as set in {}:\n{shown}",
            main.display()
        );
    }
}

#[test]
fn a_tree_under_root_does_not_send_checks_online() {
    // A hybrid registration under --root: auto (from the config's default)
    // stays local, so no endpoint check resolves a real AWS name.
    let dir = fixture_root("hybrid-node");
    let out = run(dir.path(), &["check", "--json"]);
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert_eq!(json["host"]["mode"], "local");
    let ssm = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "endpoint.ssm")
        .unwrap();
    assert_eq!(ssm["status"], "skip", "{ssm:#}");
    let out = run(dir.path(), &["check", "-v", "--only", "os.supported"]);
    assert!(
        stderr(&out).contains("is not /, so auto means local"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn report_with_only_is_refused_because_it_would_replace_the_whole_compliance() {
    let dir = fixture_root("hybrid-node");
    let out = run(
        dir.path(),
        &["check", "--report", "--mode", "hybrid", "--only", "host"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("--report sends the node's whole compliance to SSM"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_argument_exits_3_not_2() {
    let dir = fixture_root("debian12-clean");
    let out = run(dir.path(), &["check", "--no-such-option"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run(dir.path(), &["windows", "--count", "4294967295"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ask for 1 to 1000 start times"),
        "{}",
        stderr(&out)
    );
    let out = run(dir.path(), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
}

/// Runs the binary, failing the test if it does not end within `bound`.
fn run_within(
    bound: Duration,
    root: &std::path::Path,
    config: &std::path::Path,
    args: &[&str],
    state_dir: Option<&std::path::Path>,
) -> std::process::Output {
    use wait_timeout::ChildExt;
    let mut cmd = common::command(root, config, args);
    if let Some(dir) = state_dir {
        cmd.env("STATE_DIRECTORY", dir);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if child.wait_timeout(bound).unwrap().is_none() {
        let _ = child.kill();
        panic!("`{}` did not end within {bound:?}", args.join(" "));
    }
    child.wait_with_output().unwrap()
}

fn fifo(path: &std::path::Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn a_fifo_where_a_file_is_expected_is_an_error_naming_it() {
    let bound = Duration::from_secs(8);
    let empty = tempfile::tempdir().unwrap();
    let config = empty.path().join("config.toml");
    std::fs::write(&config, "").unwrap();

    // --config
    let piped = empty.path().join("piped.toml");
    fifo(&piped);
    let out = run_within(bound, empty.path(), &piped, &["check"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("piped.toml: this is a FIFO (named pipe), not a config file"),
        "{}",
        stderr(&out)
    );

    // A drop-in.
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    std::fs::write(&main, "").unwrap();
    fifo(&dir.path().join("config.d/10-pipe.toml"));
    let out = run_within(bound, empty.path(), &main, &["config", "validate"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("10-pipe.toml: this is a FIFO (named pipe), not a drop-in"),
        "{}",
        stderr(&out)
    );

    // os-release and mountinfo under --root.
    let root = fixture_root("debian12-clean");
    std::fs::remove_file(root.path().join("etc/os-release")).unwrap();
    fifo(&root.path().join("etc/os-release"));
    fifo(&root.path().join("proc/self/mountinfo"));
    let out = run_within(
        bound,
        root.path(),
        &config,
        &["check", "--json", "--mode", "local"],
        None,
    );
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let os = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "os.supported")
        .unwrap();
    assert_eq!(os["status"], "error", "{os:#}");
    assert!(
        os["summary"]
            .as_str()
            .unwrap()
            .contains("a FIFO (named pipe), not a regular file"),
        "{os:#}"
    );

    // The registration file (hybrid) and a DMI file (auto).
    let root = fixture_root("hybrid-node");
    let reg = root.path().join("var/lib/amazon/ssm/registration");
    let _ = std::fs::remove_file(&reg);
    fifo(&reg);
    fifo(&root.path().join("sys/class/dmi/id/sys_vendor"));
    let out = run_within(
        bound,
        root.path(),
        &config,
        &[
            "check",
            "--json",
            "--mode",
            "hybrid",
            "--only",
            "agent.identity",
        ],
        None,
    );
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let id = &json["checks"][0];
    assert_eq!(id["status"], "fail", "{id:#}");
    assert!(
        id["summary"]
            .as_str()
            .unwrap()
            .contains("a FIFO (named pipe), not a regular file"),
        "{id:#}"
    );
    let out = run_within(
        bound,
        root.path(),
        &config,
        &[
            "check",
            "--json",
            "--mode",
            "auto",
            "--only",
            "os.supported",
        ],
        None,
    );
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "{}",
        stderr(&out)
    );

    // The state file, for status and the gate.
    let state = tempfile::tempdir().unwrap();
    fifo(&state.path().join("state.json"));
    let out = run_within(
        bound,
        empty.path(),
        &config,
        &["status"],
        Some(state.path()),
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("state.json: it is a FIFO (named pipe), not the state file"),
        "{}",
        stderr(&out)
    );
    let out = run_within(
        bound,
        empty.path(),
        &config,
        &["gate", "--mode", "local"],
        Some(state.path()),
    );
    assert!(out.status.code().is_some(), "{}", stderr(&out));
}

#[test]
fn drop_ins_that_are_no_files_are_told_what_they_are_and_hidden_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    std::fs::write(&main, "").unwrap();
    let dropins = dir.path().join("config.d");
    std::fs::create_dir_all(&dropins).unwrap();
    // An editor's leftover is passed over.
    std::fs::write(dropins.join(".10-disk.toml.swp"), "garbage").unwrap();
    let out = run_with_config(dir.path(), &main, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    std::fs::create_dir(dropins.join("10.toml")).unwrap();
    let out = run_with_config(dir.path(), &main, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("10.toml: this is a directory, not a drop-in"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("rename it"), "{}", stderr(&out));
    std::fs::remove_dir(dropins.join("10.toml")).unwrap();

    std::os::unix::fs::symlink("20-loop.toml", dropins.join("20-loop.toml")).unwrap();
    let out = run_with_config(dir.path(), &main, &["config", "validate"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("20-loop.toml: this drop-in cannot be opened"),
        "{}",
        stderr(&out)
    );
}
