//! `ssm-preflight fleet` through the built binary against the fake fleet:
//! SigV4 checked on every call, AWS's page limits, latency and throttling;
//! the counts, the predictions at, under and over a threshold, the JSON
//! contract, the calls made, and every kind of bad input.

use crate::common;
use common::fake_fleet::{
    self, Fleet, BATCH, DEV, PRODUCTION, STAGING, WINDOW_NONPROD, WINDOW_PROD,
};
use common::fake_ssm;
use serde_json::Value;
use std::time::Duration;

/// The command with the operator's credentials in the environment, every
/// AWS file and profile of the machine left out, SSM at the fake.
fn fleet_command(addr: std::net::SocketAddr, args: &[&str]) -> std::process::Command {
    let root = tempfile::tempdir().unwrap().keep();
    let config = root.join("config.toml");
    std::fs::write(&config, "").unwrap();
    let mut full = vec!["fleet"];
    full.extend_from_slice(args);
    let mut cmd = common::command(&root, &config, &full);
    for key in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        cmd.env_remove(key);
    }
    cmd.env("AWS_ACCESS_KEY_ID", fake_ssm::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", fake_ssm::SECRET_KEY)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", root.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            root.join("no-aws-credentials"),
        )
        .env("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))
        // The fake fleet serves Resource Groups' ListGroupResources too.
        .env("AWS_ENDPOINT_URL_RESOURCE_GROUPS", format!("http://{addr}"));
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: std::process::Command) -> Run {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr))
}

fn group<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["patch_group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {report}"))
}

fn counts(g: &Value) -> [usize; 5] {
    let c = &g["counts"];
    ["ready", "blocked", "stale", "silent", "offline"].map(|k| c[k].as_u64().unwrap() as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_nodes_in_four_groups_with_latency_and_throttling() {
    let per_group = 2500;
    let mut fleet = Fleet::synthetic(per_group, 0);
    fleet.latency = Duration::from_millis(3);
    // SSM's throttling is by rate: here 400 calls a second with a burst of
    // 50, which the 16 calls at a time go over at the start and whenever the
    // failing checks are read; each throttled call is retried after a backoff.
    fleet.rate_limit = Some(fake_fleet::RateLimit::new(400.0, 50.0));
    // And every 97th call whatever the rate, so a slow machine throttles too.
    fleet.throttle_every = 97;
    let (state, addr) = fake_fleet::start(fleet).await;
    let out = run(fleet_command(
        addr,
        &[
            "--patch-group",
            PRODUCTION,
            "--patch-group",
            STAGING,
            "--patch-group",
            DEV,
            "--patch-group",
            BATCH,
            "--json",
        ],
    ))
    .await;
    assert_eq!(
        out.code, 2,
        "dev-linux crosses its threshold: {}",
        out.stderr
    );
    let report = json(&out);

    // The contract's shape.
    assert!(report["generated_at"].as_str().unwrap().ends_with('Z'));
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    for g in groups {
        for key in ["patch_group", "window", "counts", "threshold", "nodes"] {
            assert!(g.get(key).is_some(), "{key} in {g}");
        }
        for key in ["limit", "share", "verdict"] {
            assert!(g["threshold"].get(key).is_some(), "threshold.{key}");
        }
        let node = &g["nodes"][0];
        for key in ["instance_id", "state", "report_age_s", "failing", "ping"] {
            assert!(node.get(key).is_some(), "nodes[].{key} in {node}");
        }
        assert_eq!(g["nodes"].as_array().unwrap().len(), per_group);
    }

    // Every count, per group.
    for (name, want) in fake_fleet::expected(per_group) {
        assert_eq!(counts(group(&report, name)), want, "{name}");
    }
    // The predictions: production under, staging at, dev over, batch under
    // the --max-blocked default for a group no window covers.
    let verdict = |name: &str| {
        group(&report, name)["threshold"]["verdict"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(verdict(PRODUCTION), "ok");
    assert_eq!(verdict(STAGING), "close");
    assert_eq!(verdict(DEV), "crosses");
    assert_eq!(verdict(BATCH), "ok");
    let dev = group(&report, DEV);
    assert_eq!(dev["threshold"]["share"], 20.0);
    // 500 of 2500 fail; 10% allows 250; the 251st error at about
    // 251·2501/501 ≈ 1253 nodes, in batches of 10% (250): 1500.
    assert_eq!(dev["threshold"]["stops_after"], 1500);
    assert_eq!(group(&report, STAGING)["threshold"]["share"], 10.0);
    let prod_window = &group(&report, PRODUCTION)["window"];
    assert_eq!(prod_window["id"], WINDOW_PROD);
    assert_eq!(prod_window["max_errors"], "10%");
    assert_eq!(prod_window["max_concurrency"], "25%");
    assert_eq!(prod_window["next_start"], "2026-12-20T02:00Z");
    assert_eq!(group(&report, DEV)["window"]["id"], WINDOW_NONPROD);
    assert!(group(&report, BATCH)["window"].is_null());
    assert_eq!(group(&report, BATCH)["threshold"]["limit"], "10%");
    assert_eq!(
        group(&report, BATCH)["threshold"]["source"],
        "--max-blocked"
    );

    // A blocked node names its failing checks; a failure its gate ignores
    // leaves a node ready.
    let blocked = dev["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["state"] == "blocked")
        .unwrap();
    assert!(blocked["failing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "disk.var"));
    let ignored = group(&report, PRODUCTION)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "ready" && n["failing"].as_array().is_some_and(|f| !f.is_empty()))
        .count();
    assert_eq!(ignored, per_group * 10 / 1000);

    // The calls: every list at its largest page, and exactly one call
    // per page of 50 (each group's nodes under each tag key, the reporting
    // nodes' summaries), one per non-compliant node, one listing of the
    // region's windows and the four calls that read each (once however
    // many groups it patches), and per group the listings that ask
    // whether a node listed under one key also carries the other key with
    // a value one of the windows' targets names (one page each: none
    // does): four per group, three for production, where two of the
    // questions are the same; one ListAssociations per patch document
    // (three, none found) — within the formula 2·(nodes/50) +
    // non-compliant.
    let s = state.lock().unwrap();
    assert_eq!(s.bad_signatures, 0);
    assert!(
        s.throttled > 0,
        "the fake throttled and the run survived it"
    );
    for action in [
        "DescribeInstanceInformation",
        "ListResourceComplianceSummaries",
        "ListComplianceItems",
    ] {
        assert_eq!(s.max_results.get(action), Some(&50), "{action} pages of 50");
    }
    let non_compliant = s.fresh_non_compliant();
    assert!(non_compliant <= 1000, "within the default --max-detail");
    let answered = s.total_calls() - s.throttled;
    let pages = |n: usize| n.div_ceil(50);
    let reported = s.nodes.iter().filter(|n| n.report.is_some()).count();
    let by_key = |key: &str| {
        s.nodes
            .iter()
            .filter(|n| n.group.as_ref().is_some_and(|(_, k)| *k == key))
            .count()
            / 4
    };
    let listings = 4 * (pages(by_key("Patch Group")) + pages(by_key("PatchGroup")));
    let exact = listings + (3 + 4 * 3) + pages(reported) + non_compliant + 1 + 4 * 2 + 3;
    assert_eq!(
        answered, exact,
        "calls by action: {:?}, throttled: {:?}, non-compliant {non_compliant}, reported {reported}, listings {listings}",
        s.calls, s.throttled_by_action
    );
    assert!(
        answered <= 2 * pages(s.nodes.len()) + non_compliant + 7 * 4,
        "within the formula"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_its_targets_and_where_the_rollout_stops() {
    let (state, addr) = fake_fleet::start(Fleet::synthetic(250, 0)).await;
    let out = run(fleet_command(addr, &["--window", WINDOW_NONPROD, "--json"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report = json(&out);
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "one view for the window's targets");
    let g = &groups[0];
    assert_eq!(g["patch_group"], "dev-linux, staging-linux");
    assert_eq!(g["window"]["name"], "non-production");
    // staging 25 + dev 50 of 500 fail: 15 % against 10 % (50 errors).
    assert_eq!(counts(g).iter().sum::<usize>(), 500);
    assert_eq!(g["threshold"]["share"], 15.0);
    // The 51st error at about 51·501/76 ≈ 337 nodes, batches of 50: 350.
    assert_eq!(g["threshold"]["stops_after"], 350);

    let table = run(fleet_command(addr, &["--window", WINDOW_NONPROD])).await;
    assert_eq!(table.code, 2);
    assert!(
        table
            .stdout
            .contains("The rollout would stop after roughly 350 of 500 nodes (MaxConcurrency 10%)"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("blocked  i-"), "{}", table.stdout);
    // 45 blocked: 20 listed and the rest counted.
    assert!(
        table.stdout.contains("… and 25 more blocked node(s)"),
        "{}",
        table.stdout
    );
    assert!(
        !table.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let csv = run(fleet_command(addr, &["--window", WINDOW_NONPROD, "--csv"])).await;
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "patch_group,window_id,instance_id,state,report_age_s,ping,failing"
    );
    assert_eq!(lines.len(), 501);
    assert!(
        lines[1].starts_with("\"dev-linux, staging-linux\",mw-0b000000000000002,i-"),
        "{}",
        lines[1]
    );
    assert_eq!(state.lock().unwrap().bad_signatures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_and_at_the_threshold_exit_0_and_1() {
    let (_state, addr) = fake_fleet::start(Fleet::synthetic(250, 0)).await;
    let prod = run(fleet_command(addr, &["--patch-group", PRODUCTION])).await;
    assert_eq!(prod.code, 0, "{}{}", prod.stdout, prod.stderr);
    assert!(
        prod.stdout
            .contains("Ready: 10 of 250 nodes (4.0%) would fail or miss the patch run"),
        "{}",
        prod.stdout
    );
    let staging = run(fleet_command(addr, &["--patch-group", STAGING])).await;
    assert_eq!(
        staging.code, 1,
        "at 10 % of 10 %: close, {}",
        staging.stdout
    );
    assert!(
        staging.stdout.contains("Close: 25 of 250 nodes (10.0%)"),
        "{}",
        staging.stdout
    );
    // A stricter --max-blocked does not apply where a window task sets the threshold…
    let strict = run(fleet_command(
        addr,
        &["--patch-group", PRODUCTION, "--max-blocked", "1%"],
    ))
    .await;
    assert_eq!(strict.code, 0);
    // …and decides where none does: batch has 4 % blocked.
    let batch = run(fleet_command(
        addr,
        &["--patch-group", BATCH, "--max-blocked", "3%"],
    ))
    .await;
    assert_eq!(batch.code, 2, "{}", batch.stdout);
    assert!(
        batch
            .stdout
            .contains("No maintenance window's patch task reaches the nodes tagged Patch Group (or PatchGroup) = batch-linux"),
        "{}",
        batch.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_filter_every_node_by_patch_group() {
    let (_state, addr) = fake_fleet::start(Fleet::synthetic(250, 7)).await;
    let out = run(fleet_command(addr, &["--json"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report = json(&out);
    let names: Vec<&str> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["patch_group"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            PRODUCTION,
            STAGING,
            DEV,
            BATCH,
            "(no registered patch group)"
        ]
    );
    for (name, want) in fake_fleet::expected(250) {
        assert_eq!(counts(group(&report, name)), want, "{name}");
    }
    let rest = group(&report, "(no registered patch group)");
    assert_eq!(counts(rest), [0, 0, 0, 7, 0]);
    assert!(rest["window"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_detail_caps_the_per_node_calls() {
    let (state, addr) = fake_fleet::start(Fleet::synthetic(250, 0)).await;
    let out = run(fleet_command(
        addr,
        &["--patch-group", DEV, "--max-detail", "5", "--json"],
    ))
    .await;
    assert_eq!(out.code, 2);
    let report = json(&out);
    // The uncapped nodes still count as blocked, and the note says why.
    assert_eq!(counts(group(&report, DEV))[1], 30);
    assert!(
        report["groups"][0]["notes"]
            .to_string()
            .contains("--max-detail 5"),
        "{report}"
    );
    assert_eq!(state.lock().unwrap().calls["ListComplianceItems"], 5);
}

/// Each bad input: exit 3, nothing on stdout, and a sentence that says what to do.
async fn refused(fleet: Fleet, args: &[&str], wants: &[&str]) {
    let (_state, addr) = fake_fleet::start(fleet).await;
    let out = run(fleet_command(addr, args)).await;
    assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for want in wants {
        assert!(
            out.stderr.contains(want),
            "{args:?}: {want:?} not in {}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_message_and_exit_3() {
    let small = || Fleet::synthetic(250, 0);
    refused(
        small(),
        &["--window", "mw-0c00000000000000f"],
        &[
            "there is no maintenance window mw-0c00000000000000f in eu-west-1",
            "describe-maintenance-windows",
        ],
    )
    .await;
    refused(
        small(),
        &["--window", "mw-1"],
        &["is not a maintenance window ID"],
    )
    .await;
    refused(small(), &["--patch-group", "no-such-group"], &["no managed node in eu-west-1 carries the tag Patch Group (or PatchGroup) = \"no-such-group\""]).await;
    refused(
        small(),
        &["--max-blocked", "150%"],
        &["not a share between 0% and 100%"],
    )
    .await;
    refused(
        small(),
        &["--profile", "nope"],
        &[
            "there is no profile \"nope\" in your AWS config",
            "aws configure --profile nope",
        ],
    )
    .await;
    let mut expired = small();
    expired.expired = true;
    refused(
        expired,
        &["--patch-group", PRODUCTION],
        &["ExpiredTokenException", "aws sso login"],
    )
    .await;
    for action in [
        "DescribeInstanceInformation",
        "ListResourceComplianceSummaries",
        "ListComplianceItems",
        "DescribePatchGroups",
        "DescribeMaintenanceWindows",
        "GetMaintenanceWindow",
        "DescribeMaintenanceWindowTargets",
        "DescribeMaintenanceWindowTasks",
        "GetMaintenanceWindowTask",
    ] {
        let mut denied = small();
        denied.deny = vec![action.to_string()];
        refused(
            denied,
            &[],
            &[
                &format!("Add ssm:{action} to your IAM policy"),
                "fleet-operator-policy.json",
            ],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_region_or_no_ssm_there_is_exit_3() {
    let (_state, addr) = fake_fleet::start(Fleet::synthetic(250, 0)).await;
    let mut none = fleet_command(addr, &[]);
    none.env_remove("AWS_REGION");
    let out = run(none).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("no AWS region: pass --region"),
        "{}",
        out.stderr
    );
    // A region whose SSM does not answer (here: a loopback port where
    // nothing listens).
    let mut nowhere = fleet_command(addr, &["--region", "eu-south-3"]);
    nowhere.env("AWS_ENDPOINT_URL_SSM", common::NOWHERE);
    let started = std::time::Instant::now();
    let out = run(nowhere).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("got no answer from SSM in eu-south-3"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let mut no_credentials = fleet_command(addr, &[]);
    no_credentials
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run(no_credentials).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("no usable AWS credentials"),
        "{}",
        out.stderr
    );
}

/// Writes `fleet` as a Resource Data Sync lays it out in S3: per node, its
/// AWS:InstanceInformation object, its AWS:Tag lines and (when it reported)
/// its AWS:ComplianceItem lines, as newline-delimited JSON.
fn write_sync(fleet: &Fleet, dir: &std::path::Path) {
    let part = |kind: &str| {
        let d = dir
            .join(kind)
            .join("accountid=123456789012/region=eu-west-1/resourcetype=ManagedInstanceInventory");
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (info, tags, items) = (
        part("AWS:InstanceInformation"),
        part("AWS:Tag"),
        part("AWS:ComplianceItem"),
    );
    let iso = |age: f64| {
        let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs_f64(age);
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    for n in &fleet.nodes {
        let status = if n.ping == "Online" { "Active" } else { n.ping };
        let line = serde_json::json!({"resourceId": n.id, "InstanceId": n.id, "InstanceStatus": status, "PlatformType": "Linux",
                                      "captureTime": iso(0.0), "schemaVersion": "1.0"});
        std::fs::write(info.join(format!("{}.json", n.id)), format!("{line}\n")).unwrap();
        if let Some((group, key)) = &n.group {
            let line = serde_json::json!({"resourceId": n.id, "Key": key, "Value": group, "captureTime": iso(0.0), "schemaVersion": "1.0"});
            std::fs::write(tags.join(format!("{}.json", n.id)), format!("{line}\n")).unwrap();
        }
        if let Some(r) = &n.report {
            // Twenty checks, the failing ones NON_COMPLIANT.
            let mut text = String::new();
            for i in 0..20 {
                let (id, status) = match r.failing.get(i) {
                    Some((check, _)) if *check != "LEGACY" => (check.to_string(), "NON_COMPLIANT"),
                    _ => (format!("check.{i}"), "COMPLIANT"),
                };
                let line = serde_json::json!({"resourceId": n.id, "ComplianceType": "Custom:PatchPreflight", "Id": id, "Title": id,
                                              "Status": status, "Severity": "CRITICAL", "ExecutionId": "run-1", "ExecutionType": "ssm-preflight",
                                              "ExecutionTime": iso(r.age_s), "captureTime": iso(0.0), "schemaVersion": "1.0"});
                text.push_str(&format!("{line}\n"));
            }
            std::fs::write(items.join(format!("{}.json", n.id)), text).unwrap();
        }
    }
}

#[test]
fn the_athena_query_sorts_a_data_sync_as_the_fleet_view_does() {
    let fleet = Fleet::synthetic(250, 3);
    let sync = tempfile::tempdir().unwrap();
    write_sync(&fleet, sync.path());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(manifest.join("tests/athena/run_query.py"))
        .arg(sync.path())
        .arg(manifest.join("packaging/athena/fleet-preflight.sql"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the query did not run (DuckDB is installed by scripts/test: python3 -m pip install duckdb): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["patch_group"] == name)
            .unwrap_or_else(|| panic!("{name} in {rows:?}"))
    };
    let counts = |r: &Value| {
        ["ready", "blocked", "stale", "silent", "offline"].map(|k| r[k].as_u64().unwrap() as usize)
    };
    // The sync carries no item details: a failure the node's gate ignores
    // counts as blocked there (production's 2 such nodes); every other
    // count is the command's.
    for (name, mut want) in fake_fleet::expected(250) {
        if name == PRODUCTION {
            let ignored = 250 * 10 / 1000;
            want[0] -= ignored;
            want[1] += ignored;
        }
        assert_eq!(counts(row(name)), want, "{name}");
    }
    assert_eq!(counts(row("(no patch group)")), [0, 0, 0, 3, 0]);
    assert_eq!(row(PRODUCTION)["verdict"], "ok");
    assert_eq!(row(STAGING)["verdict"], "close");
    assert_eq!(row(DEV)["verdict"], "crosses");
    assert_eq!(row(DEV)["share"], 20.0);
    assert_eq!(rows.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_on_a_terminal_only() {
    let mut fleet = Fleet::synthetic(2500, 0);
    // 197 pages of summaries at 10 ms: the run takes over a second.
    fleet.latency = Duration::from_millis(10);
    let (_state, addr) = fake_fleet::start(fleet).await;
    let plain = run(fleet_command(addr, &["--patch-group", DEV, "--json"])).await;
    assert_eq!(plain.code, 2);
    assert!(
        !plain.stderr.contains("reading the fleet"),
        "progress on a pipe: {}",
        plain.stderr
    );
    // script(1) gives the command a terminal: a progress line, cleared at the end.
    let cmd = fleet_command(addr, &["--patch-group", DEV]);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect();
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = run(script).await;
    assert!(
        out.stdout.contains("reading the fleet from SSM: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\r\x1b[K"),
        "the progress line is cleared"
    );
    assert!(out.stdout.contains("Over: "), "{}", out.stdout);
}

const WEB: &str = "web-linux";
const W_SCAN: &str = "mw-0c0000000000000a4";
const W_AND: &str = "mw-0c0000000000000a2";
const W_KEY: &str = "mw-0c0000000000000a1";
const W_IDS: &str = "mw-0c0000000000000a3";
const W_OFF: &str = "mw-0c0000000000000a5";
/// A check ID written to reach the operator's terminal: colour, a bidi
/// override and a forged second line.
const FORGED: &str = "\u{1b}[31mdisk.var\u{202e}\nblocked  i-forged";

fn web(n: usize) -> String {
    format!("i-0000000000000a{n:03}")
}

/// A patch group mid-migration, as issue #26 found fleets: nodes under
/// both tag keys, some also tagged Role = web, and five windows registered
/// the ways the console allows — one tag key only, two keys in one target,
/// instance IDs beside a resource group (node 1, a managed node outside
/// the group and a bucket) with a Scan task listed before the Install task
/// (every list paged by one), a scan-only window, and a disabled one. Reports: one 2 minutes and one 3 days in the future, one
/// node gone since the listing (InvalidResourceId), one whose check ID
/// carries escapes.
fn migrating() -> Fleet {
    use fake_fleet::{FleetNode, FleetTarget, FleetTask, FleetWindow, NodeReport};
    let report =
        |age_s: f64, failing: Vec<(&'static str, bool)>| Some(NodeReport { age_s, failing });
    let node = |n: usize, key: &'static str, role: bool, report: Option<NodeReport>| FleetNode {
        id: web(n),
        group: Some((WEB.to_string(), key)),
        tags: if role {
            vec![("Role".into(), "web".into())]
        } else {
            vec![]
        },
        ping: "Online",
        report,
    };
    let (pg, pg2) = ("Patch Group", "PatchGroup");
    let nodes = vec![
        node(1, pg, true, report(3600.0, vec![])),
        node(2, pg, true, report(3600.0, vec![(FORGED, true)])),
        node(3, pg, true, report(-120.0, vec![])),
        node(4, pg, false, report(-3.0 * 86_400.0, vec![])),
        node(5, pg, false, report(3600.0, vec![("disk.var", true)])),
        node(6, pg, false, report(3600.0, vec![])),
        node(7, pg2, true, report(3600.0, vec![])),
        node(8, pg2, false, report(3600.0, vec![])),
        node(9, pg2, false, report(3600.0, vec![])),
        node(10, pg2, false, report(3600.0, vec![])),
        node(11, pg, false, report(3600.0, vec![])),
    ];
    let task =
        |id: &str, operation: &'static str, targets: Vec<&str>, max_errors: &str| FleetTask {
            id: id.into(),
            document: "AWS-RunPatchBaselineWithHooks".into(),
            operation,
            targets: (
                "WindowTargetIds",
                targets.iter().map(|t| t.to_string()).collect(),
            ),
            max_errors: max_errors.into(),
            max_concurrency: "1".into(),
            hook: Some("SSMPreflight-Gate".into()),
        };
    let mut by_key = FleetWindow::install(
        W_KEY,
        "one-key",
        vec![FleetTarget::new("wt-key", &[("tag:PatchGroup", &[WEB])])],
        "0",
        "1",
        "2026-12-12T02:00Z",
    );
    by_key.tasks[0].id = "task-key".into();
    let mut both_keys = FleetWindow::install(
        W_AND,
        "two-keys",
        vec![FleetTarget::new(
            "wt-and",
            &[("tag:Patch Group", &[WEB]), ("tag:Role", &["web"])],
        )],
        "1",
        "1",
        "2026-12-10T02:00Z",
    );
    both_keys.tasks[0].id = "task-and".into();
    let ids = FleetWindow {
        id: W_IDS.into(),
        name: "by-id".into(),
        targets: vec![
            FleetTarget::new("wt-ids", &[("InstanceIds", &[&web(4), &web(5)])]),
            FleetTarget::new("wt-rg", &[("resource-groups:Name", &["web-servers"])]),
        ],
        tasks: vec![
            task("task-ids-scan", "Scan", vec!["wt-ids"], "100%"),
            task("task-ids-install", "Install", vec!["wt-ids", "wt-rg"], "10"),
        ],
        next_start: "2026-12-14T02:00Z".into(),
        enabled: true,
    };
    let scan = FleetWindow {
        id: W_SCAN.into(),
        name: "scan-only".into(),
        targets: vec![FleetTarget::new("wt-scan", &[("InstanceIds", &[&web(6)])])],
        tasks: vec![task("task-scan", "Scan", vec!["wt-scan"], "5%")],
        next_start: "2026-12-08T02:00Z".into(),
        enabled: true,
    };
    let mut off = FleetWindow::install(
        W_OFF,
        "disabled",
        vec![FleetTarget::new("wt-off", &[("tag:Patch Group", &[WEB])])],
        "10%",
        "10%",
        "2026-12-06T02:00Z",
    );
    off.enabled = false;
    Fleet {
        nodes,
        windows: vec![by_key, both_keys, ids, scan, off],
        registered: vec![WEB.into()],
        page_by_one: true,
        invalid: vec![web(5)],
        resource_groups: [(
            "web-servers".to_string(),
            vec![
                (
                    "AWS::EC2::Instance".to_string(),
                    format!("arn:aws:ec2:eu-west-1:123456789012:instance/{}", web(1)),
                ),
                (
                    "AWS::SSM::ManagedInstance".to_string(),
                    "arn:aws:ssm:eu-west-1:123456789012:managed-instance/mi-0000000000000a999"
                        .to_string(),
                ),
                (
                    "AWS::S3::Bucket".to_string(),
                    "arn:aws:s3:::web-assets".to_string(),
                ),
            ],
        )]
        .into(),
        ..Fleet::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_reach_exactly_the_nodes_their_targets_name() {
    let (state, addr) = fake_fleet::start(migrating()).await;
    let out = run(fleet_command(addr, &["--patch-group", WEB, "--json"])).await;
    // The two-key window allows one error and has one failing node: close.
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report = json(&out);
    let g = group(&report, WEB);
    assert_eq!(counts(g).iter().sum::<usize>(), 11);
    let window_of = |n: usize| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["instance_id"] == web(n))
            .unwrap_or_else(|| panic!("{} in {g}", web(n)))["window"]
            .clone()
    };
    // Item 1: the window on `PatchGroup` reaches only the nodes tagged
    // PatchGroup; item 2: the two-key target only the `Patch Group` nodes
    // that are also Role = web (not node 7, Role = web under PatchGroup).
    for n in 1..=3 {
        assert_eq!(window_of(n), W_AND, "node {n}");
    }
    for n in 7..=10 {
        assert_eq!(window_of(n), W_KEY, "node {n}");
    }
    // Instance IDs; the scan-only window for the node only it reaches; the
    // disabled window for nobody; node 11 in no window at all.
    assert_eq!(window_of(4), W_IDS);
    assert_eq!(window_of(5), W_IDS);
    assert_eq!(window_of(6), W_SCAN);
    assert!(window_of(11).is_null());
    assert_eq!(g["untargeted"], 1);

    // Each window task judged over the nodes it reaches, soonest first.
    let windows: Vec<(String, String, u64, String)> = g["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["window"]["id"].as_str().unwrap().to_string(),
                w["operation"].as_str().unwrap().to_string(),
                w["counts"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|c| c.as_u64().unwrap())
                    .sum(),
                w["threshold"]["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let w =
        |id: &str, op: &str, n: u64, v: &str| (id.to_string(), op.to_string(), n, v.to_string());
    assert_eq!(
        windows,
        [
            w(W_SCAN, "scan", 1, "scan"),
            w(W_AND, "install", 3, "close"),
            // Item 3: MaxErrors 0 with nothing failing is not close.
            w(W_KEY, "install", 4, "ok"),
            // Item 5: the Install task (MaxErrors 10) decides, though a
            // Scan task is listed first and every page holds one task.
            // (Its Scan task beside it predicts nothing: not listed.) It
            // reaches nodes 4 and 5 by ID and node 1 through the resource
            // group (the soonest window stays node 1's own).
            w(W_IDS, "install", 3, "ok"),
        ]
    );
    // The headline is the soonest rollout, not the scan before it.
    assert_eq!(g["window"]["id"], W_AND);
    assert_eq!(g["threshold"]["verdict"], "close");
    assert_eq!(g["threshold"]["limit"], "1");

    let notes = g["notes"].to_string();
    // Item 4: a report 2 minutes ahead is judged; 3 days ahead is stale.
    assert!(notes.contains(&format!("{} by 2m", web(3))), "{notes}");
    assert_eq!(counts(g)[2], 1, "the report 3 days ahead is stale");
    // Item 7: the node gone since the listing is counted, and named.
    assert!(
        notes.contains(&format!(
            "The failing checks of {} could not be read",
            web(5)
        )) && notes.contains("InvalidResourceId"),
        "{notes}"
    );
    // The resource group was read: nothing about it is unresolved.
    assert!(
        !notes.contains("resource-groups:Name = web-servers"),
        "{notes}"
    );
    assert!(
        notes.contains("1 node(s) of this group are in no window"),
        "{notes}"
    );
    // Only this tool's items: the node's Patch item is not a failing check.
    assert!(!report.to_string().contains("CVE-2026-0001"), "{report}");
    // JSON carries the ID as it is (escaped by JSON, not altered).
    assert!(
        report
            .to_string()
            .contains("\\u001b[31mdisk.var\u{202e}\\nblocked"),
        "{report}"
    );
    assert_eq!(state.lock().unwrap().bad_signatures, 0);

    // Item 8: on a terminal or a pipe the table shows the ID escaped.
    let table = run(fleet_command(addr, &["--patch-group", WEB])).await;
    assert_eq!(table.code, 1);
    assert!(!table.stdout.contains('\u{1b}') && !table.stdout.contains('\u{202e}'));
    assert!(
        table
            .stdout
            .contains("\\e[31mdisk.var\\u{202e}\\nblocked  i-forged"),
        "{}",
        table.stdout
    );
    assert!(
        !table
            .stdout
            .lines()
            .any(|l| l.starts_with("blocked  i-forged")),
        "no forged line"
    );
    assert!(table
        .stdout
        .contains("1 node(s) of this group are in no window"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_counts_the_nodes_its_install_task_reaches() {
    let (_state, addr) = fake_fleet::start(migrating()).await;
    let total = |report: &Value| counts(&report["groups"][0]).iter().sum::<usize>();
    // Item 1 from the window's side: 4 nodes, as the group view says.
    let one_key = run(fleet_command(addr, &["--window", W_KEY, "--json"])).await;
    assert_eq!(one_key.code, 0, "{}", one_key.stderr);
    assert_eq!(total(&json(&one_key)), 4);
    let two_keys = run(fleet_command(addr, &["--window", W_AND, "--json"])).await;
    assert_eq!(two_keys.code, 1);
    assert_eq!(total(&json(&two_keys)), 3);
    let by_id = run(fleet_command(addr, &["--window", W_IDS, "--json"])).await;
    assert_eq!(by_id.code, 0, "{}", by_id.stderr);
    let r = json(&by_id);
    // Nodes 4 and 5 by ID, node 1 as the resource group's one node of the
    // group (its other managed node is in no patch group, the bucket no node).
    assert_eq!(total(&r), 3);
    assert_eq!(r["groups"][0]["threshold"]["limit"], "10");
    assert!(!r["groups"][0]["notes"]
        .to_string()
        .contains("resource-groups:Name"));
    // Without resource-groups:ListGroupResources the group's nodes are not
    // counted, and a note says which group and which action.
    let mut denied = migrating();
    denied.deny = vec!["ListGroupResources".into()];
    let (_state, denied_at) = fake_fleet::start(denied).await;
    let by_id = run(fleet_command(denied_at, &["--window", W_IDS, "--json"])).await;
    assert_eq!(by_id.code, 0, "{}", by_id.stderr);
    let r = json(&by_id);
    assert_eq!(total(&r), 2);
    let notes = r["groups"][0]["notes"].to_string();
    assert!(
        notes.contains("Resource group web-servers could not be read")
            && notes.contains("Add resource-groups:ListGroupResources")
            && notes.contains("resource-groups:Name = web-servers"),
        "{notes}"
    );
    // Item 5: a scan-only window predicts no rollout and exits 0.
    let scan = run(fleet_command(addr, &["--window", W_SCAN])).await;
    assert_eq!(scan.code, 0, "{}{}", scan.stdout, scan.stderr);
    assert!(scan.stdout.contains("Scan only:"), "{}", scan.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_counted_is_exit_3_not_clear() {
    // Item 9: an empty region, and a window whose only target is a
    // resource group.
    refused(
        Fleet::default(),
        &[],
        &["nothing was counted", "no managed node in eu-west-1"],
    )
    .await;
    let mut rg_only = migrating();
    rg_only.windows[2].tasks[1].targets.1 = vec!["wt-rg".into()];
    rg_only.deny = vec!["ListGroupResources".into()];
    refused(
        rg_only,
        &["--window", W_IDS],
        &["nothing was counted", "resource-groups:Name = web-servers"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_fleet_answers_a_wrong_request_differently() {
    use aws_sdk_ssm::error::ProvideErrorMetadata;
    use aws_sdk_ssm::types::{
        ComplianceQueryOperatorType, ComplianceStringFilter, InstanceInformationStringFilter,
    };
    let (_state, addr) = fake_fleet::start(migrating()).await;
    let ssm = fake_ssm::sdk_client(addr);
    let filter = |k: &str, v: &[&str]| {
        InstanceInformationStringFilter::builder()
            .key(k)
            .set_values(Some(v.iter().map(|s| s.to_string()).collect()))
            .build()
            .unwrap()
    };
    let listed = |filters: Vec<InstanceInformationStringFilter>| {
        let ssm = ssm.clone();
        async move {
            let mut ids = Vec::new();
            let mut pages = ssm
                .describe_instance_information()
                .set_filters(Some(filters))
                .into_paginator()
                .send();
            while let Some(p) = pages.next().await {
                let p = p.map_err(|e| {
                    e.into_service_error()
                        .code()
                        .unwrap_or_default()
                        .to_string()
                })?;
                ids.extend(
                    p.instance_information_list()
                        .iter()
                        .filter_map(|i| i.instance_id().map(str::to_string)),
                );
            }
            Ok::<_, String>(ids)
        }
    };
    // Tag filters are ANDed; one key alone answers more.
    let pg = listed(vec![filter("tag:Patch Group", &[WEB])])
        .await
        .unwrap();
    let and = listed(vec![
        filter("tag:Patch Group", &[WEB]),
        filter("tag:Role", &["web"]),
    ])
    .await
    .unwrap();
    assert_eq!(pg.len(), 7);
    assert_eq!(and, [web(1), web(2), web(3)]);
    // A tag filter beside another kind is refused, as the API reference says.
    let mixed = listed(vec![
        filter("tag:Patch Group", &[WEB]),
        filter("InstanceIds", &[&web(1)]),
    ])
    .await;
    assert_eq!(mixed.unwrap_err(), "InvalidFilter");

    // Without the type filter, a node's Patch items come too.
    let items = |typed: bool, id: String| {
        let ssm = ssm.clone();
        async move {
            let mut call = ssm
                .list_compliance_items()
                .resource_ids(id)
                .resource_types("ManagedInstance");
            if typed {
                call = call.filters(
                    ComplianceStringFilter::builder()
                        .key("ComplianceType")
                        .values("Custom:PatchPreflight")
                        .r#type(ComplianceQueryOperatorType::Equal)
                        .build(),
                );
            }
            call.send().await.map(|a| {
                a.compliance_items()
                    .iter()
                    .filter_map(|i| i.id().map(str::to_string))
                    .collect::<Vec<_>>()
            })
        }
    };
    assert!(items(false, web(2))
        .await
        .unwrap()
        .contains(&"CVE-2026-0001".to_string()));
    assert_eq!(items(true, web(2)).await.unwrap(), [FORGED]);
    let gone = items(true, web(5)).await.unwrap_err();
    assert_eq!(gone.into_service_error().code(), Some("InvalidResourceId"));

    // Every list pages by one: the second task is on the second page.
    let first = ssm
        .describe_maintenance_window_tasks()
        .window_id(W_IDS)
        .send()
        .await
        .unwrap();
    assert_eq!(first.tasks().len(), 1);
    assert!(first.next_token().is_some());
    // A disabled window has no next execution.
    let mut next = Vec::new();
    let mut pages = ssm.describe_maintenance_windows().into_paginator().send();
    while let Some(p) = pages.next().await {
        for w in p.unwrap().window_identities() {
            next.push((
                w.window_id().unwrap().to_string(),
                w.next_execution_time().is_some(),
            ));
        }
    }
    assert_eq!(next.len(), 5);
    assert!(next.contains(&(W_OFF.to_string(), false)));
    assert!(next.contains(&(W_KEY.to_string(), true)));
    // A task that does not exist, asked by ID.
    let missing = ssm
        .get_maintenance_window_task()
        .window_id(W_IDS)
        .window_task_id("task-nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        missing.into_service_error().code(),
        Some("DoesNotExistException")
    );
    // Resource Groups: every member, a page of one at a time; a group that
    // does not exist is NotFoundException.
    let groups = aws_sdk_resourcegroups::Client::from_conf(
        aws_sdk_resourcegroups::Config::builder()
            .behavior_version(aws_sdk_resourcegroups::config::BehaviorVersion::latest())
            .region(aws_sdk_resourcegroups::config::Region::new("eu-west-1"))
            .endpoint_url(format!("http://{addr}"))
            .http_client(ssm_preflight::aws::sdk_http_client())
            .credentials_provider(aws_credential_types::Credentials::new(
                fake_ssm::ACCESS_KEY,
                fake_ssm::SECRET_KEY,
                None,
                None,
                "test",
            ))
            .build(),
    );
    let mut arns = Vec::new();
    let mut pages = groups
        .list_group_resources()
        .group("web-servers")
        .into_paginator()
        .send();
    while let Some(p) = pages.next().await {
        let p = p.unwrap();
        assert_eq!(p.resources().len(), 1);
        arns.extend(
            p.resources()
                .iter()
                .filter_map(|r| r.identifier()?.resource_arn().map(str::to_string)),
        );
    }
    assert_eq!(arns.len(), 3);
    assert!(arns[0].ends_with(&web(1)));
    let nope = groups
        .list_group_resources()
        .group("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(nope.into_service_error().code(), Some("NotFoundException"));
}

/// Issue #28: nodes patched by a Quick Setup patch policy (no window) are
/// grouped with it, its MaxErrors is the threshold, and the JSON names the
/// source; a scan association on every node (`InstanceIds = *`) predicts
/// no rollout; without ssm:ListAssociations a note says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_patched_by_a_patch_policy_are_predicted_with_it() {
    use fake_fleet::{FleetNode, NodeReport};
    let node = |n: usize, failing: Vec<(&'static str, bool)>| FleetNode {
        id: format!("i-0a{n:015x}"),
        group: Some(("payments".to_string(), "Patch Group")),
        ping: "Online",
        report: Some(NodeReport {
            age_s: 600.0,
            failing,
        }),
        ..Default::default()
    };
    let mut policy = fake_ssm::association(
        "8c1f0000-0000-4000-8000-000000000001",
        "AWS-QuickSetup-PatchPolicy-InstallPatches-qs1ab",
        "AWS-RunPatchBaseline",
        "cron(0 3 ? * SAT *)",
        "Install",
    );
    policy["Targets"] = serde_json::json!([{"Key": "tag:Patch Group", "Values": ["payments"]}]);
    policy["MaxErrors"] = serde_json::json!("1");
    let mut scan = fake_ssm::association(
        "7c1f0000-0000-4000-8000-000000000002",
        "daily-scan",
        "AWS-RunPatchBaselineAssociation",
        "rate(1 day)",
        "Scan",
    );
    scan["Targets"] = serde_json::json!([{"Key": "InstanceIds", "Values": ["*"]}]);
    // An association of another document is not a patch source.
    let mut inventory = scan.clone();
    inventory["AssociationId"] = serde_json::json!("6c1f0000-0000-4000-8000-000000000003");
    inventory["Name"] = serde_json::json!("AWS-GatherSoftwareInventory");
    let fleet = || Fleet {
        nodes: vec![
            node(1, vec![]),
            node(2, vec![("disk.var", true)]),
            node(3, vec![("pkg.lock", true)]),
            node(4, vec![]),
        ],
        registered: vec!["payments".into()],
        associations: vec![policy.clone(), scan.clone(), inventory.clone()],
        ..Default::default()
    };
    let (state, addr) = fake_fleet::start(fleet()).await;
    let out = run(fleet_command(addr, &["--json"])).await;
    let r = json(&out);
    let g = group(&r, "payments");
    assert_eq!(out.code, 2, "two blocked nodes cross MaxErrors 1: {g:#}");
    assert_eq!(g["window"]["source"], "patch-policy", "{g:#}");
    assert_eq!(g["window"]["id"], "8c1f0000-0000-4000-8000-000000000001");
    assert_eq!(g["threshold"]["limit"], "1", "{g:#}");
    assert_eq!(g["threshold"]["verdict"], "crosses", "{g:#}");
    assert_eq!(g["untargeted"], 0, "{g:#}");
    let sources: Vec<(&str, &str)> = g["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["window"]["source"].as_str().unwrap(),
                w["operation"].as_str().unwrap(),
            )
        })
        .collect();
    // The daily scan comes first (its next run is sooner), predicting nothing.
    assert_eq!(
        sources,
        [("association", "scan"), ("patch-policy", "install")],
        "{g:#}"
    );
    assert!(g["notes"].to_string().contains("Patch policy association 8c1f0000-0000-4000-8000-000000000001's patch task does not run the ssm-preflight gate"), "{g:#}");
    let calls = state.lock().unwrap().calls.clone();
    // Listed by patch document (three), described only those two.
    assert_eq!(
        (calls["ListAssociations"], calls["DescribeAssociation"]),
        (3, 2),
        "{calls:?}"
    );
    // Without ssm:ListAssociations: no prediction, and a note naming it.
    let mut denied = fleet();
    denied.deny = vec!["ListAssociations".into()];
    let (_state, addr) = fake_fleet::start(denied).await;
    let out = run(fleet_command(addr, &["--json"])).await;
    let r = json(&out);
    let notes = group(&r, "payments")["notes"].to_string();
    assert!(
        notes.contains("State Manager associations and Quick Setup patch policies were not read")
            && notes.contains("ssm:ListAssociations"),
        "{notes}"
    );
}
