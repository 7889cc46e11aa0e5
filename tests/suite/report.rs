//! Reporting to SSM through the built binary against the fake SSM: the
//! round trip, limits, throttling, an outage across runs, AccessDenied in
//! `status`, and the gate.

use crate::common;

use common::fake_ssm;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// A hybrid node (registration and agent credentials from the fixture)
/// whose SSM is the fake, with its own state directory.
struct Node {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    config: std::path::PathBuf,
    ssm: String,
}

impl Node {
    fn new(ssm: std::net::SocketAddr, config: &str) -> Node {
        let root = common::fixture_root("hybrid-node");
        let config_path = root.path().join("preflight.toml");
        std::fs::write(
            &config_path,
            format!("[checks]\ndisable = [\"agent\", \"access\", \"network\", \"cloud\"]\n[patch_group]\nvalue = \"production-linux\"\n{config}"),
        )
        .unwrap();
        Node {
            root,
            state: tempfile::tempdir().unwrap(),
            config: config_path,
            ssm: format!("http://{ssm}"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        common::command(self.root.path(), &self.config, args)
            .env("AWS_ENDPOINT_URL_SSM", &self.ssm)
            .env("STATE_DIRECTORY", self.state.path())
            .output()
            .unwrap()
    }

    fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state.path().join("state.json")).unwrap())
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A full run (`--report` takes no `--only`) of the host checks: the node's
/// config turns the rest off, so nothing leaves loopback.
const CHECK: &[&str] = &["check", "--report", "--mode", "hybrid"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_read_back_with_list_compliance_items() {
    let (ssm, addr) = fake_ssm::start().await;
    let node = Node::new(addr, "");
    let out = tokio::task::block_in_place(|| node.run(CHECK));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(
            "Report: sent to SSM as Custom:PatchPreflight compliance for mi-0123456789abcdef0."
        ),
        "{}",
        text(&out)
    );
    {
        let s = ssm.lock().unwrap();
        assert_eq!(s.bad_signatures, 0);
        assert_eq!(
            s.calls,
            ["AmazonSSM.PutComplianceItems"],
            "one report is one API call"
        );
        assert_eq!(s.puts.len(), 1);
    }
    let state = node.state();
    assert_eq!(state["delivery"]["state"], "delivered");

    // Read back with the SDK, as the Compliance console would.
    let sdk = fake_ssm::sdk_client(addr);
    let items = sdk
        .list_compliance_items()
        .resource_ids("mi-0123456789abcdef0")
        .resource_types("ManagedInstance")
        .send()
        .await
        .unwrap();
    let items = items.compliance_items();
    let ids: Vec<&str> = items.iter().filter_map(|i| i.id()).collect();
    assert_eq!(
        ids,
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
    let tag = items
        .iter()
        .find(|i| i.id() == Some("patchgroup.tag"))
        .unwrap();
    assert_eq!(tag.compliance_type(), Some("Custom:PatchPreflight"));
    assert_eq!(tag.status().map(|s| s.as_str()), Some("COMPLIANT"));
    let details = tag.details().unwrap();
    assert_eq!(details["PatchGroup"], "production-linux");
    assert_eq!(details["Status"], "pass");
    assert_eq!(
        tag.execution_summary().unwrap().execution_id(),
        state["delivery"]["run_id"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_are_cut_before_sending() {
    let (ssm, addr) = fake_ssm::start().await;
    let long = format!("/{}", "very-long-path-name/".repeat(300));
    let node = Node::new(addr, &format!("[disk.paths.\"{long}\"]\n"));
    let out = tokio::task::block_in_place(|| node.run(CHECK));
    assert!(text(&out).contains("Report: sent to SSM"), "{}", text(&out));
    let s = ssm.lock().unwrap();
    let item = s.puts[0]
        .items
        .iter()
        .find(|i| {
            i["Details"]["Summary"]
                .as_str()
                .unwrap()
                .contains("very-long-path-name")
        })
        .unwrap();
    assert_eq!(item["Id"].as_str().unwrap().chars().count(), 100);
    assert!(item["Details"]["Summary"]
        .as_str()
        .unwrap()
        .ends_with("…[truncated]"));
    assert_eq!(
        item["Details"]["Summary"].as_str().unwrap().chars().count(),
        4096
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_then_success() {
    let (ssm, addr) = fake_ssm::start().await;
    ssm.lock()
        .unwrap()
        .failures
        .push_back((400, "ThrottlingException"));
    let node = Node::new(addr, "");
    let out = tokio::task::block_in_place(|| node.run(CHECK));
    assert!(text(&out).contains("Report: sent to SSM"), "{}", text(&out));
    let s = ssm.lock().unwrap();
    let puts = s
        .calls
        .iter()
        .filter(|c| *c == "AmazonSSM.PutComplianceItems")
        .count();
    assert_eq!(
        (puts, s.puts.len()),
        (2, 1),
        "one throttled attempt, one accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_across_runs_then_only_the_newest_arrives() {
    let (ssm, addr) = fake_ssm::start().await;
    let node = Node::new(addr, "");
    // Enough 503s for three runs' attempts (the SDK tries three times).
    ssm.lock()
        .unwrap()
        .failures
        .extend(std::iter::repeat_n((503, "InternalServerError"), 9));
    let mut run_ids = Vec::new();
    for _ in 0..3 {
        let out = tokio::task::block_in_place(|| node.run(CHECK));
        assert_eq!(
            out.status.code(),
            Some(0),
            "the exit code is the checks' verdict: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("Report: not sent yet"),
            "{}",
            text(&out)
        );
        assert!(text(&out).contains("It is kept in"), "{}", text(&out));
        let state = node.state();
        assert_eq!(state["delivery"]["state"], "pending");
        run_ids.push(state["delivery"]["run_id"].as_str().unwrap().to_string());
    }
    assert!(ssm.lock().unwrap().puts.is_empty());
    let status = tokio::task::block_in_place(|| node.run(&["status"]));
    assert!(
        text(&status).contains("Report: kept for a retry after 1 attempt(s)"),
        "{}",
        text(&status)
    );

    // SSM is back.
    assert!(ssm.lock().unwrap().failures.is_empty());
    let out = tokio::task::block_in_place(|| node.run(&["report", "--mode", "hybrid"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = ssm.lock().unwrap();
    assert_eq!(s.puts.len(), 1, "exactly one report arrives");
    assert_eq!(s.puts[0].execution_id, run_ids[2], "and it is the newest");
    drop(s);
    let again = tokio::task::block_in_place(|| node.run(&["report", "--mode", "hybrid"]));
    assert!(
        text(&again).contains("Nothing to send: the report of the run at"),
        "{}",
        text(&again)
    );
    assert_eq!(ssm.lock().unwrap().puts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_shown_in_status_with_the_missing_action() {
    let (ssm, addr) = fake_ssm::start().await;
    ssm.lock().unwrap().deny = true;
    let node = Node::new(addr, "");
    let out = tokio::task::block_in_place(|| node.run(CHECK));
    assert!(
        text(&out).contains(
            "Report: SSM refused it — ssm:PutComplianceItems answered AccessDeniedException"
        ),
        "{}",
        text(&out)
    );
    let status = tokio::task::block_in_place(|| node.run(&["status"]));
    let shown = text(&status);
    assert!(
        shown.contains(
            "Report: refused by SSM: ssm:PutComplianceItems answered AccessDeniedException"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("fix: The node's role lacks ssm:PutComplianceItems"),
        "{shown}"
    );
    let json: Value = serde_json::from_slice(
        &tokio::task::block_in_place(|| node.run(&["status", "--json"])).stdout,
    )
    .unwrap();
    assert_eq!(json["state"]["delivery"]["state"], "rejected");
    assert_eq!(json["daemon_running"], false);
}

fn gate(root: &Path, state: &Path, args: &[&str]) -> Output {
    let config = tempfile::NamedTempFile::new().unwrap();
    let mut all = vec!["gate"];
    all.extend_from_slice(args);
    common::command(root, config.path(), &all)
        .env("STATE_DIRECTORY", state)
        .output()
        .unwrap()
}

#[test]
fn gate_fresh_pass_stale_rerun_and_a_blocking_failure() {
    let state = tempfile::tempdir().unwrap();
    let clean = common::fixture_root("debian12-clean");
    // No run recorded: the gate runs the checks now.
    let out = gate(clean.path(), state.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("nothing blocks patching (a run made now"),
        "{}",
        text(&out)
    );

    // A broken host, but a fresh recorded pass: the gate trusts the recent run.
    let broken = common::fixture_root("dpkg-interrupted");
    let out = gate(broken.path(), state.path(), &["--max-age", "30m"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("nothing blocks patching (the run of"),
        "{}",
        text(&out)
    );

    // Too old for --max-age 0s: it runs again, and now blocks with the fix.
    let out = gate(broken.path(), state.path(), &["--max-age", "0s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("this host must not be patched now: 1 blocking problem(s)"),
        "{shown}"
    );
    assert!(
        shown.contains("  FAIL pkg.state: dpkg was interrupted"),
        "{shown}"
    );
    assert!(
        shown.contains("    fix: Run `sudo dpkg --configure -a`"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_older_run_never_replaces_a_newer_one() {
    let (_ssm, addr) = fake_ssm::start().await;
    let hole = common::black_hole().await;
    let node = Node::new(addr, "");
    // The slow run: `gate` with every endpoint black-holed for 2 s, in its own config.
    let slow_config = node.root.path().join("slow.toml");
    let urls: String = ["ssm", "ssmmessages", "ec2messages", "s3"]
        .iter()
        .map(|s| format!("{s} = \"https://{hole}\"\n"))
        .collect();
    std::fs::write(
        &slow_config,
        format!("mode = \"hybrid\"\n[checks]\ndisable = [\"repo.reachable\"]\n[patch_group]\nvalue = \"production-linux\"\n[endpoints]\ntimeout = \"2s\"\n[endpoints.urls]\n{urls}"),
    )
    .unwrap();
    let slow = common::command(node.root.path(), &slow_config, &["gate", "--max-age", "0s"])
        .env("STATE_DIRECTORY", node.state.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The fast one starts a second later (started_at has whole seconds) and ends first.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let mut fast_args = CHECK.to_vec();
    fast_args.push("--json");
    let fast = tokio::task::block_in_place(|| node.run(&fast_args));
    let fast_report: Value =
        serde_json::from_slice(&fast.stdout).unwrap_or_else(|_| panic!("{}", text(&fast)));
    let slow = tokio::task::block_in_place(|| slow.wait_with_output().unwrap());
    assert!(slow.status.code().is_some());

    let state = node.state();
    assert_eq!(
        state["last_run"]["started_at"], fast_report["started_at"],
        "the newest run stays the last run: {state:#}"
    );
    let history: Vec<&str> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["started_at"].as_str().unwrap())
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0] < history[1],
        "history in start order: {history:?}"
    );
    assert_eq!(history[1], fast_report["started_at"].as_str().unwrap());
}
