//! The cloud-side checks (`ssm.ping`, `patchgroup.baseline`,
//! `patch.sources`, `patch.last_run`, `credentials.valid`) through the
//! built binary on a hybrid node, against the fake SSM (SigV4 checked, AWS's
//! shapes and errors) and the fake STS, on loopback.

use crate::common;

use common::fake_aws::{self, StsAnswer, TestCa};
use common::fake_ssm::{self, Cloud};
use serde_json::{json, Value};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

const NODE: &str = "mi-0123456789abcdef0";
const WINDOW: &str = "mw-0123456789abcdef0";
const GROUP: &str = "production-linux";

fn healthy() -> Cloud {
    Cloud::healthy(NODE, GROUP, WINDOW)
}

fn patch_state(failed: i64) -> Value {
    fake_ssm::patch_state(NODE, GROUP, failed)
}

fn gated_task(hook: Option<&str>) -> Value {
    fake_ssm::gated_task(WINDOW, hook)
}

fn next_start() -> String {
    fake_ssm::next_start()
}

fn days_ago(days: f64) -> f64 {
    fake_ssm::days_ago(days)
}

/// Runs the cloud checks, credentials.valid and agent.version on the hybrid
/// node fixture (with the stand-in agent, 3.3.40.0); the fake S3 publishes
/// `latest` as the region's newest agent.
async fn run(
    ssm: fake_ssm::Shared,
    addr: std::net::SocketAddr,
    ca: &TestCa,
    sts: StsAnswer,
) -> Value {
    run_with_latest(ssm, addr, ca, sts, Site::default()).await
}

/// Runs the checks against `cloud`, the node's role refused `deny`.
async fn run_on(cloud: Cloud, deny: &[&str]) -> Value {
    let (ssm, addr, ca) = ssm_site().await;
    ssm.lock().unwrap().cloud = cloud;
    ssm.lock().unwrap().deny_actions = deny.iter().map(|d| d.to_string()).collect();
    run(
        ssm,
        addr,
        &ca,
        StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
    )
    .await
}

/// What the site around the fake SSM is: the region's newest agent, how
/// the payload's S3 answers, and the node's os-release (a file of
/// tests/fixtures/os-release; the hybrid node fixture's Debian 12 if none).
struct Site {
    latest: &'static str,
    payload: Payload,
    os_release: Option<&'static str>,
    /// The state directory, when the run is to find an earlier one's.
    state: Option<std::path::PathBuf>,
}

impl Default for Site {
    fn default() -> Site {
        Site {
            latest: "3.3.1142.0",
            payload: Payload::Answers(200),
            os_release: None,
            state: None,
        }
    }
}

/// How the payload's S3 answers.
#[derive(Clone, Copy)]
enum Payload {
    Answers(u16),
    /// Accepts the connection and never answers.
    Silent,
}

/// The fake SSM over TLS with a test CA, as `endpoints.urls.ssm` reaches it.
async fn ssm_site() -> (fake_ssm::Shared, std::net::SocketAddr, TestCa) {
    let ca = TestCa::new("cloud test CA");
    let (ssm, addr) = fake_ssm::start_tls(ca.server_config(&["localhost"])).await;
    (ssm, addr, ca)
}

async fn run_with_latest(
    ssm: fake_ssm::Shared,
    addr: std::net::SocketAddr,
    ca: &TestCa,
    sts: StsAnswer,
    site: Site,
) -> Value {
    let Site {
        latest,
        payload,
        os_release,
        state,
    } = site;
    let (l, s3_addr) = fake_aws::listener().await;
    // An anonymous HEAD of a bucket S3 does not list for everyone: 403.
    let mut objects = vec![
        fake_aws::S3Object {
            path: "/amazon-ssm-eu-west-1/latest/VERSION".into(),
            status: 200,
            body: format!("{latest}\n"),
        },
        fake_aws::S3Object {
            path: "/aws-ssm-eu-west-1/".into(),
            status: 403,
            body: String::new(),
        },
        fake_aws::S3Object {
            path: "/aws-patch-manager-eu-west-1/".into(),
            status: 403,
            body: String::new(),
        },
    ];
    // eu-west-1 keeps the old bucket: path-style on s3.dualstack.
    if let Payload::Answers(status) = payload {
        objects.push(fake_aws::S3Object {
            path: format!("/aws-ssm-eu-west-1/{}", fake_ssm::PAYLOAD_KEY),
            status,
            body: String::new(),
        });
    }
    tokio::spawn(fake_aws::serve_s3(
        l,
        Some(ca.server_config(&["localhost"])),
        objects,
        Default::default(),
    ));
    let payload_at = match payload {
        Payload::Answers(_) => s3_addr,
        Payload::Silent => {
            let (l, silent) = fake_aws::listener().await;
            tokio::spawn(fake_aws::serve_silence(l));
            silent
        }
    };
    // SSM's schedule names the window for the node's group when the
    // scenario has one.
    let has_window = !ssm.lock().unwrap().cloud.windows.is_empty();
    if has_window {
        ssm.lock().unwrap().schedules.push((
            "tag:Patch Group".into(),
            GROUP.into(),
            json!({"WindowId": WINDOW, "Name": "production-linux", "ExecutionTime": next_start()}),
        ));
    }
    let (l, sts_addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_sts(l, sts, Arc::new(AtomicUsize::new(0))));
    let root = common::fixture_root("hybrid-node");
    common::install_agent_binary(root.path());
    if let Some(name) = os_release {
        std::fs::copy(
            common::fixtures().join("os-release").join(name),
            root.path().join("etc/os-release"),
        )
        .unwrap();
    }
    let config = root.path().join("preflight.toml");
    std::fs::write(
        &config,
        format!(
            "[patch_group]\nvalue = \"{GROUP}\"\n[endpoints]\ntimeout = \"1s\"\n[endpoints.urls]\nssm = \"https://localhost:{}\"\ns3 = \"https://localhost:{}\"\npayload = \"https://localhost:{}\"\n",
            addr.port(),
            s3_addr.port(),
            payload_at.port()
        ),
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        let mut cmd = common::command(
            root.path(),
            &config,
            &[
                "check",
                "--json",
                "-v",
                "--mode",
                "hybrid",
                "--only",
                "cloud,credentials.valid,agent.version,payload.reachable",
            ],
        );
        if let Some(state) = &state {
            cmd.env("STATE_DIRECTORY", state);
        }
        cmd.env("SSL_CERT_FILE", &ca.pem_path)
            .env_remove("SSL_CERT_DIR")
            .env("AWS_ENDPOINT_URL_STS", format!("http://{sts_addr}"))
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The snapshot's presigned URL is a credential: in no output.
    for (name, text) in [
        ("stdout", String::from_utf8_lossy(&out.stdout)),
        ("stderr", stderr.clone()),
    ] {
        assert!(
            !text.contains(fake_ssm::PRESIGNED_SIGNATURE) && !text.contains("X-Amz-Algorithm"),
            "the presigned URL reached {name}: {text}"
        );
    }
    // -v says what the run did, not which credentials it loaded.
    assert!(
        !stderr.contains("AKIDTESTFAKESSM"),
        "the credentials' key ID reached the log: {stderr}"
    );
    // -v names the AWS side's critical path: the slowest check off the host.
    assert!(
        stderr.contains("the AWS side's critical path is "),
        "{stderr}"
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn check<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {json:#}"))
}

fn summary(json: &Value, id: &str) -> String {
    check(json, id)["summary"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_patch_manager_sees_as_intended() {
    let (ssm, addr, ca) = ssm_site().await;
    ssm.lock().unwrap().cloud = healthy();
    let json = run(
        ssm.clone(),
        addr,
        &ca,
        StsAnswer::Accept(format!(
            "arn:aws:sts::123456789012:assumed-role/SSMServiceRole/{NODE}"
        )),
    )
    .await;
    for id in [
        "ssm.ping",
        "patchgroup.baseline",
        "patch.sources",
        "patch.last_run",
        "patch.snapshot",
        "credentials.valid",
    ] {
        assert_eq!(check(&json, id)["status"], "pass", "{:#}", check(&json, id));
    }
    assert_eq!(
        summary(&json, "patch.snapshot"),
        "SSM hands this node its patch snapshot for Debian12, and the snapshot downloads: 186 B of baseline prod-debian"
    );
    assert_eq!(
        check(&json, "patch.snapshot")["details"]["approved_patches"],
        "1"
    );
    assert!(summary(&json, "ssm.ping").starts_with(&format!("SSM shows {NODE} Online")));
    assert!(
        summary(&json, "agent.version").ends_with("the newest in this region is 3.3.1142.0"),
        "{}",
        summary(&json, "agent.version")
    );
    assert_eq!(
        summary(&json, "patchgroup.baseline"),
        "the patch group production-linux is registered for DEBIAN to prod-debian (pb-0debian000000001; auto-approves after 7 days, 1 approved and 0 rejected patches listed)"
    );
    assert!(
        summary(&json, "patch.sources").starts_with(&format!(
            "patched by production-linux next at {} (4 h, cutoff 1 h): AWS-RunPatchBaselineWithHooks Install, RebootIfNeeded",
            next_start()
        )),
        "{}",
        summary(&json, "patch.sources")
    );
    let calls = ssm.lock().unwrap().calls.clone();
    assert_eq!(ssm.lock().unwrap().bad_signatures, 0, "every call signed");
    for op in [
        "DescribeInstanceInformation",
        "DescribePatchGroups",
        "GetPatchBaseline",
        "DescribeInstancePatchStates",
        "GetMaintenanceWindow",
        "DescribeMaintenanceWindowTasks",
        "GetMaintenanceWindowTask",
    ] {
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.as_str() == format!("AmazonSSM.{op}"))
                .count(),
            1,
            "{op} once: {calls:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_patch_manager_would_get_wrong() {
    let (ssm, addr, ca) = ssm_site().await;
    let mut cloud = healthy();
    cloud.instances[0]["PingStatus"] = json!("ConnectionLost");
    // The group is registered for Amazon Linux 2023 only; this is Debian.
    cloud.patch_groups[0]["BaselineIdentity"]["OperatingSystem"] = json!("AMAZON_LINUX_2023");
    cloud.patch_states = vec![patch_state(3)];
    cloud.instance_patches = vec![(
        NODE.into(),
        ["openssl", "libc6", "curl"]
            .iter()
            .map(|t| json!({"Title": t, "KBId": t, "Classification": "security", "Severity": "important", "State": "FAILED", "InstalledTime": days_ago(3.0)}))
            .chain(std::iter::once(json!({"Title": "bash", "KBId": "bash", "Classification": "", "Severity": "", "State": "INSTALLED", "InstalledTime": days_ago(3.0)})))
            .collect(),
    )];
    cloud.task_details = vec![((WINDOW.into(), "task-1".into()), gated_task(None))];
    ssm.lock().unwrap().cloud = cloud;
    let json = run(ssm, addr, &ca, StsAnswer::ClockAhead(360)).await;
    assert_eq!(check(&json, "ssm.ping")["status"], "fail");
    assert!(
        summary(&json, "ssm.ping").contains("as ConnectionLost"),
        "{}",
        summary(&json, "ssm.ping")
    );
    assert_eq!(check(&json, "patchgroup.baseline")["status"], "warn");
    assert!(summary(&json, "patchgroup.baseline").contains("registered only for AMAZON_LINUX_2023, not for DEBIAN: this node gets the default baseline AWS-DebianDefaultPatchBaseline"), "{}", summary(&json, "patchgroup.baseline"));
    assert_eq!(check(&json, "patch.last_run")["status"], "warn");
    assert!(
        summary(&json, "patch.last_run").starts_with("3 patch(es) failed: openssl, libc6, curl ("),
        "{}",
        summary(&json, "patch.last_run")
    );
    assert_eq!(check(&json, "patch.sources")["status"], "warn");
    assert!(
        summary(&json, "patch.sources").contains("without the gate"),
        "{}",
        summary(&json, "patch.sources")
    );
    // A 6-minute skew: STS refuses the signature and says why.
    assert_eq!(check(&json, "credentials.valid")["status"], "fail");
    assert!(
        summary(&json, "credentials.valid").contains("its clock is off"),
        "{}",
        summary(&json, "credentials.valid")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_node_and_a_window_without_a_patch_task() {
    let (ssm, addr, ca) = ssm_site().await;
    let mut cloud = healthy();
    cloud.instances.clear();
    cloud.window_tasks = vec![(
        WINDOW.into(),
        vec![json!({
            "WindowId": WINDOW, "WindowTaskId": "task-2", "TaskArn": "AWS-RunShellScript", "Type": "RUN_COMMAND", "Priority": 1
        })],
    )];
    cloud.patch_states.clear();
    ssm.lock().unwrap().cloud = cloud;
    let json = run(ssm, addr, &ca, StsAnswer::Expired).await;
    assert_eq!(check(&json, "ssm.ping")["status"], "fail");
    assert!(summary(&json, "ssm.ping").contains(&format!("SSM does not know {NODE}")));
    assert_eq!(check(&json, "patch.sources")["status"], "warn");
    assert!(
        summary(&json, "patch.sources").contains("runs no patch task"),
        "{}",
        summary(&json, "patch.sources")
    );
    assert_eq!(check(&json, "patch.last_run")["status"], "warn");
    assert_eq!(check(&json, "credentials.valid")["status"], "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_each_action_is_a_skip_naming_it() {
    for (action, check_id) in [
        ("DescribeInstanceInformation", "ssm.ping"),
        ("DescribePatchGroups", "patchgroup.baseline"),
        ("GetPatchBaseline", "patchgroup.baseline"),
        ("DescribeInstancePatchStates", "patch.last_run"),
        ("GetMaintenanceWindow", "patch.sources"),
        ("DescribeMaintenanceWindowTasks", "patch.sources"),
        ("GetMaintenanceWindowTask", "patch.sources"),
    ] {
        let (ssm, addr, ca) = ssm_site().await;
        ssm.lock().unwrap().cloud = healthy();
        ssm.lock().unwrap().deny_actions = vec![action.into()];
        let json = run(
            ssm,
            addr,
            &ca,
            StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
        )
        .await;
        let c = check(&json, check_id);
        assert_eq!(c["status"], "skip", "{action}: {c:#}");
        assert!(
            summary(&json, check_id).contains(&format!("add ssm:{action} to the node's role")),
            "{action}: {c:#}"
        );
    }
}

/// The calls made only in some cases: GetDefaultPatchBaseline when the
/// group has no baseline for this OS (denied: skip naming it), and
/// DescribeInstancePatches when the last install failed patches (denied:
/// the failures are counted, and the names' absence says which action).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_the_calls_made_only_when_needed() {
    let (ssm, addr, ca) = ssm_site().await;
    let mut cloud = healthy();
    cloud.patch_groups[0]["BaselineIdentity"]["OperatingSystem"] = json!("AMAZON_LINUX_2023");
    cloud.patch_states = vec![patch_state(3)];
    ssm.lock().unwrap().cloud = cloud;
    ssm.lock().unwrap().deny_actions = vec![
        "GetDefaultPatchBaseline".into(),
        "DescribeInstancePatches".into(),
    ];
    let json = run(
        ssm.clone(),
        addr,
        &ca,
        StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
    )
    .await;
    let calls = ssm.lock().unwrap().calls.clone();
    for action in ["GetDefaultPatchBaseline", "DescribeInstancePatches"] {
        assert!(
            calls.iter().any(|c| c.ends_with(action)),
            "{action} was asked: {calls:?}"
        );
    }
    let baseline = check(&json, "patchgroup.baseline");
    assert_eq!(baseline["status"], "skip", "{baseline:#}");
    assert!(
        summary(&json, "patchgroup.baseline")
            .contains("add ssm:GetDefaultPatchBaseline to the node's role"),
        "{baseline:#}"
    );
    let last = check(&json, "patch.last_run");
    assert_eq!(last["status"], "warn", "{last:#}");
    let text = summary(&json, "patch.last_run");
    assert!(text.starts_with("3 patch(es) failed"), "{text}");
    assert!(text.contains("ssm:DescribeInstancePatches"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_a_minor_version_behind_the_regions_newest_warns() {
    let (ssm, addr, ca) = ssm_site().await;
    ssm.lock().unwrap().cloud = healthy();
    let json = run_with_latest(
        ssm,
        addr,
        &ca,
        StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
        Site {
            latest: "3.4.12.0",
            ..Site::default()
        },
    )
    .await;
    let c = check(&json, "agent.version");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        summary(&json, "agent.version")
            .contains("3.3.40.0 is a minor version or more behind 3.4.12.0"),
        "{c:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_denied_or_unreachable_fails_with_exit_156_named() {
    // With the document: the payload denied or silent fails, naming exit 156.
    // Without ssm:GetDocument the object cannot be named: the hosts the
    // document's rules choose from answering is a skip naming the action;
    // none answering fails as the patch run would.
    for (document, payload, status, want) in [
        (true, Payload::Answers(403), "fail", "the patch payload is denied (HTTP 403): https://s3.dualstack.eu-west-1.amazonaws.com/aws-ssm-eu-west-1/"),
        (true, Payload::Silent, "fail", "the patch payload cannot be reached: "),
        (
            false,
            Payload::Answers(200),
            "skip",
            "s3.dualstack.eu-west-1.amazonaws.com answers HTTP 403; aws-patch-manager-eu-west-1.s3-accelerate.dualstack.amazonaws.com answers HTTP 403",
        ),
        (
            false,
            Payload::Silent,
            "fail",
            // The client's connect bound and the check's own are both endpoints.timeout:
            // either may speak first, and both say there was no answer.
            "no host the patch payload is downloaded from can be reached (s3.dualstack.eu-west-1.amazonaws.com cannot be reached: no answer",
        ),
    ] {
        let (ssm, addr, ca) = ssm_site().await;
        ssm.lock().unwrap().cloud = healthy();
        if !document {
            ssm.lock().unwrap().deny_actions = vec!["GetDocument".into()];
        }
        let json = run_with_latest(
            ssm,
            addr,
            &ca,
            StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
            Site {
                payload,
                ..Site::default()
            },
        )
        .await;
        let c = check(&json, "payload.reachable");
        assert_eq!(c["status"], status, "{c:#}");
        let said = summary(&json, "payload.reachable");
        if document {
            assert!(said.starts_with(want), "{c:#}");
            assert!(said.contains("exit 156"), "{c:#}");
            continue;
        }
        assert!(said.contains(want), "{c:#}");
        let advice = if status == "skip" {
            said
        } else {
            c["remedy"].as_str().unwrap().to_string()
        };
        assert!(
            advice.contains("add ssm:GetDocument to the node's role")
                || advice.contains("Add ssm:GetDocument to the node's role"),
            "{c:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_window_targets_the_node() {
    let mut cloud = healthy();
    cloud.windows.clear();
    cloud.window_tasks.clear();
    let json = run_on(cloud, &[]).await;
    assert_eq!(check(&json, "patch.sources")["status"], "warn");
    assert!(
        summary(&json, "patch.sources").starts_with("nothing scans or installs patches on this node in the next 35 days: no maintenance window targets it"),
        "{}",
        summary(&json, "patch.sources")
    );
}

/// Associations that run the patch documents (issue #28): a Quick Setup
/// patch policy alone, beside a window that installs too, two scans with
/// different baselines, a rate schedule, and the listing refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_that_patches_the_node_is_judged() {
    use fake_ssm::association;
    let policy_id = "8c1f0000-0000-4000-8000-000000000001";
    let policy = association(
        policy_id,
        "AWS-QuickSetup-PatchPolicy-InstallPatches-qs1ab",
        "AWS-RunPatchBaseline",
        "cron(0 3 ? * SAT *)",
        "Install",
    );
    let no_window = || {
        let mut cloud = healthy();
        cloud.windows.clear();
        cloud.window_tasks.clear();
        cloud
    };
    let on_node = |a: &Value| (a.clone(), vec![NODE.to_string(), "mi-0ther".to_string()]);
    // A patch policy alone: the node is patched (window.targeted warned).
    let mut cloud = no_window();
    cloud.associations = vec![on_node(&policy)];
    // Another node's association is not this node's.
    let mut elsewhere = association(
        "9c1f0000-0000-4000-8000-000000000009",
        "other",
        "AWS-RunPatchBaseline",
        "cron(0 1 ? * * *)",
        "Install",
    );
    elsewhere["Parameters"]["BaselineOverride"] = json!(["s3://bucket/other.json"]);
    cloud
        .associations
        .push((elsewhere, vec!["mi-0ther".into()]));
    let json = run_on(cloud, &[]).await;
    let c = check(&json, "patch.sources");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert!(
        summary(&json, "patch.sources").starts_with(&format!("patched by Quick Setup patch policy AWS-QuickSetup-PatchPolicy-InstallPatches-qs1ab ({policy_id}) next at ")),
        "{c:#}"
    );
    assert!(
        summary(&json, "patch.sources")
            .ends_with("(cron(0 3 ? * SAT *)): AWS-RunPatchBaseline Install"),
        "{c:#}"
    );

    // The policy and the window both install.
    let mut cloud = healthy();
    cloud.associations = vec![on_node(&policy)];
    let json = run_on(cloud, &[]).await;
    let c = check(&json, "patch.sources");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(summary(&json, "patch.sources").starts_with(&format!("2 sources install patches on this node (the window production-linux ({WINDOW}), Quick Setup patch policy")), "{c:#}");

    // Two scans with different baselines, one on a rate schedule.
    let mut cloud = no_window();
    let mut daily = association(
        "7c1f0000-0000-4000-8000-000000000002",
        "daily-scan",
        "AWS-RunPatchBaselineAssociation",
        "rate(1 day)",
        "Scan",
    );
    // Taken once: the check reads it back, and the run may end a second later.
    let daily_last_ran = days_ago(0.5);
    daily["LastExecutionDate"] = json!(daily_last_ran);
    let mut weekly = association(
        "7c1f0000-0000-4000-8000-000000000003",
        "weekly-scan",
        "AWS-RunPatchBaseline",
        "cron(0 12 ? * MON *)",
        "Scan",
    );
    weekly["Parameters"]["BaselineOverride"] = json!(["s3://patch-overrides/strict.json"]);
    cloud.associations = vec![on_node(&daily), on_node(&weekly)];
    let json = run_on(cloud, &[]).await;
    let c = check(&json, "patch.sources");
    let said = summary(&json, "patch.sources");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        said.contains("nothing installs patches on this node"),
        "{c:#}"
    );
    assert!(said.contains("the sources patch with different baselines, so each scan overwrites the other's compliance: State Manager association daily-scan (7c1f0000-0000-4000-8000-000000000002) uses the patch group's baseline, State Manager association weekly-scan (7c1f0000-0000-4000-8000-000000000003) uses BaselineOverride s3://patch-overrides/strict.json"), "{c:#}");
    // The rate runs on from its last execution, 12 h ago: next in 12 h.
    let next = jiff::Timestamp::from_second(daily_last_ran as i64 + 86_400).unwrap();
    assert!(
        said.contains(&format!(
            "daily-scan (7c1f0000-0000-4000-8000-000000000002) next at {next} (rate(1 day))"
        )),
        "{c:#}"
    );

    // Refused: with a window it is named in the details; alone, skip naming it.
    let json = run_on(healthy(), &["DescribeEffectiveInstanceAssociations"]).await;
    let c = check(&json, "patch.sources");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert!(
        c["details"]["associations_not_read"]
            .as_str()
            .unwrap()
            .contains("add ssm:DescribeEffectiveInstanceAssociations to the node's role"),
        "{c:#}"
    );
    let json = run_on(no_window(), &["DescribeEffectiveInstanceAssociations"]).await;
    let c = check(&json, "patch.sources");
    assert_eq!(c["status"], "skip", "{c:#}");
    assert!(
        summary(&json, "patch.sources")
            .contains("add ssm:DescribeEffectiveInstanceAssociations to the node's role"),
        "{c:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssm_endpoint_that_never_answers_is_named_not_waited_on() {
    // SSM's address accepts connections and says nothing: the cloud checks
    // end when the endpoint's probe gives up, and say so.
    let (ssm, _addr, ca) = ssm_site().await;
    ssm.lock().unwrap().cloud = healthy();
    let (l, silent) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_silence(l));
    let json = run(
        ssm,
        silent,
        &ca,
        StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
    )
    .await;
    for id in [
        "ssm.ping",
        "patchgroup.baseline",
        "patch.sources",
        "patch.last_run",
        "payload.reachable",
    ] {
        let c = check(&json, id);
        assert_eq!(c["status"], "skip", "{id}: {c:#}");
        assert!(
            summary(&json, id)
                .starts_with("ssm's endpoint localhost does not answer (endpoint.ssm says why)"),
            "{id}: {c:#}"
        );
    }
}

/// The payload's own first call (issue #28): refused, an OS SSM does not
/// patch, the snapshot's download refused by a policy or unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patch_run_s_own_first_call_and_its_download() {
    use fake_ssm::Snapshot;
    let cases: Vec<(Option<&str>, Snapshot, &str)> = vec![
        (
            Some("GetDeployablePatchSnapshotForInstance"),
            Snapshot::default(),
            "ssm:GetDeployablePatchSnapshotForInstance was refused",
        ),
        (
            None,
            Snapshot::Unsupported,
            "SSM will not patch this node: UnsupportedOperatingSystem: The operating system Debian 13 is not supported for patching.",
        ),
        (
            None,
            Snapshot::Download { status: 403, body: String::new() },
            "answered 403: an S3 endpoint or bucket policy refuses the snapshot bucket patch-baseline-snapshot-eu-west-1",
        ),
        (
            None,
            Snapshot::Download { status: 0, body: String::new() },
            "got no answer: no answer within 1s",
        ),
    ];
    for (deny, snapshot, says) in cases {
        let mut cloud = healthy();
        cloud.snapshot = snapshot;
        let json = run_on(cloud, deny.as_slice()).await;
        let c = check(&json, "patch.snapshot");
        assert_eq!(c["status"], "fail", "{c:#}");
        assert!(summary(&json, "patch.snapshot").contains(says), "{c:#}");
    }
}

/// A last run that failed leaves the patch states of the run before it;
/// only Run Command's record shows it (issue #28).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_run_that_failed_before_it_completed() {
    use fake_ssm::Run;
    const SECRET: &str = "wJalrXUtnFEMI0K7MDENG0bPxRfiCYEXAMPLEKEY";
    let mut failed = Run::patch(NODE, "AWS-RunPatchBaselineWithHooks", 20.0, "Failed", 156);
    failed.stderr = format!(
        "Traceback (most recent call last):\n  File \"/var/log/amazon/ssm/patch-baseline-operations/x.py\"\nwith secret {SECRET}\nUnable to download payload: https://s3.dualstack.eu-west-1.amazonaws.com/aws-ssm-eu-west-1/x."
    );
    let timed_out = Run::patch(NODE, "AWS-RunPatchBaseline", 2.0, "TimedOut", -1);
    let older = Run::patch(NODE, "AWS-RunPatchBaseline", 24.0 * 30.0, "Success", 0);
    for (runs, deny, status, begins) in [
        (
            vec![older.clone(), failed.clone()],
            vec![],
            "warn",
            "the last patch run 20h 0m ago (AWS-RunPatchBaselineWithHooks, Operation=Install) failed with exit code 156: the payload could not be downloaded from S3",
        ),
        (
            vec![failed.clone(), timed_out],
            vec!["ListCommands", "GetCommandInvocation"],
            "warn",
            "the last patch run 2h 0m ago (AWS-RunPatchBaseline) timed out (ExecutionTimedOut) with exit code -1",
        ),
        (vec![], vec![], "pass", "last Install"),
        (vec![failed.clone()], vec!["ListCommandInvocations"], "pass", "last Install"),
    ] {
        let mut cloud = healthy();
        cloud.runs = runs;
        let json = run_on(cloud, &deny).await;
        let c = check(&json, "patch.last_run");
        assert_eq!(c["status"], status, "{c:#}");
        let said = summary(&json, "patch.last_run");
        assert!(said.starts_with(begins), "{said}");
        assert!(!json.to_string().contains(SECRET), "{c:#}");
        if deny.contains(&"ListCommandInvocations") {
            assert!(said.contains("add ssm:ListCommandInvocations to the node's role"), "{said}");
        } else if deny.contains(&"ListCommands") {
            assert!(c["details"]["last_run_not_read"].as_str().unwrap().contains("ssm:GetCommandInvocation"), "{c:#}");
        } else if status == "warn" {
            assert!(said.contains("it said \"Unable to download payload: https://s3.dualstack.eu-west-1.amazonaws.com/aws-ssm-eu-west-1/x.\""), "{said}");
            let output = c["details"]["last_run_error_output"].as_str().unwrap();
            assert!(output.starts_with("Traceback") && output.contains("with secret ***"), "{output}");
            assert!(c["remedy"].as_str().unwrap().contains("aws ssm get-command-invocation --command-id"), "{c:#}");
        } else {
            assert_eq!(c["details"]["recent_runs"], "none", "{c:#}");
        }
    }
}

/// On Amazon Linux a baseline's rules approve security updates only unless
/// one sets EnableNonSecurity (issue #28).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amazon_linux_baseline_that_takes_security_updates_only() {
    for (enable_non_security, status) in [(false, "warn"), (true, "pass")] {
        let (ssm, addr, ca) = ssm_site().await;
        let mut cloud = healthy();
        cloud.patch_groups = vec![json!({
            "PatchGroup": GROUP,
            "BaselineIdentity": {"BaselineId": "pb-0al2023000000001", "BaselineName": "prod-al2023", "OperatingSystem": "AMAZON_LINUX_2023", "DefaultBaseline": false}
        })];
        cloud.baselines = vec![(
            "pb-0al2023000000001".into(),
            json!({
                "BaselineId": "pb-0al2023000000001", "Name": "prod-al2023", "OperatingSystem": "AMAZON_LINUX_2023",
                "ApprovalRules": {"PatchRules": [{
                    "PatchFilterGroup": {"PatchFilters": [{"Key": "CLASSIFICATION", "Values": ["Security"]}]},
                    "ApproveAfterDays": 7, "EnableNonSecurity": enable_non_security
                }]},
                "ApprovedPatches": [], "RejectedPatches": [], "ApprovedPatchesEnableNonSecurity": false
            }),
        )];
        ssm.lock().unwrap().cloud = cloud;
        let json = run_with_latest(
            ssm,
            addr,
            &ca,
            StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into()),
            Site {
                os_release: Some("amzn-2023"),
                ..Site::default()
            },
        )
        .await;
        let c = check(&json, "patchgroup.baseline");
        assert_eq!(c["status"], status, "{c:#}");
        assert_eq!(
            c["details"]["non_security"],
            enable_non_security.to_string(),
            "{c:#}"
        );
        if status == "warn" {
            assert!(
                summary(&json, "patchgroup.baseline").starts_with("the baseline prod-al2023 (pb-0al2023000000001) approves security updates only on AMAZON_LINUX_2023"),
                "{c:#}"
            );
        }
    }
}

/// The windows a recorded run found are read at once, beside the
/// schedule's lookups: the fake holds the schedule's answer until a window
/// is asked for, which only a run that remembers one does at once. A
/// remembered window SSM no longer has is read for nothing, not judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_an_earlier_run_found_are_read_before_the_schedule_names_them() {
    let state = common::private_dir("state");
    let accept = || StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/r/x".into());
    let run_in_state = |ssm, addr, ca| {
        let site = Site {
            state: Some(state.clone()),
            ..Site::default()
        };
        async move {
            let ca: TestCa = ca;
            run_with_latest(ssm, addr, &ca, accept(), site).await
        }
    };
    let held_site = || async {
        let (ssm, addr, ca) = ssm_site().await;
        ssm.lock().unwrap().cloud = healthy();
        ssm.lock().unwrap().hold_schedule = Some(std::time::Duration::from_millis(500));
        (ssm, addr, ca)
    };
    let asked = |ssm: &fake_ssm::Shared, op: &str| {
        let s = ssm.lock().unwrap();
        s.calls.iter().filter(|c| c.ends_with(op)).count()
    };

    // Nothing recorded: the window is read once the schedule names it.
    let (ssm, addr, ca) = held_site().await;
    let first = run_in_state(ssm.clone(), addr, ca).await;
    assert_eq!(
        check(&first, "patch.sources")["status"],
        "pass",
        "{first:#}"
    );
    assert!(ssm.lock().unwrap().schedule_waited_out);
    assert_eq!(check(&first, "patch.sources")["details"]["windows"], WINDOW);

    // Recorded: the window is read at once, and once.
    common::record_run(&state, &first);
    let (ssm, addr, ca) = held_site().await;
    let json = run_in_state(ssm.clone(), addr, ca).await;
    assert!(
        !ssm.lock().unwrap().schedule_waited_out,
        "the remembered window was read only after the schedule named it: {:?}",
        ssm.lock().unwrap().calls
    );
    assert_eq!(asked(&ssm, ".GetMaintenanceWindow"), 1);
    assert_eq!(asked(&ssm, ".GetMaintenanceWindowTask"), 1);
    assert_eq!(
        summary(&json, "patch.sources"),
        summary(&first, "patch.sources")
    );

    // The recorded window is gone (and a malformed ID is never sent): the
    // window the schedule names is the one judged, as if nothing was recorded.
    let mut earlier = first.clone();
    for c in earlier["checks"].as_array_mut().unwrap() {
        if c["id"] == "patch.sources" {
            c["details"]["windows"] = "mw-00000000000000000 mw-x;DROP".into();
        }
    }
    common::record_run(&state, &earlier);
    let (ssm, addr, ca) = held_site().await;
    let json = run_in_state(ssm.clone(), addr, ca).await;
    assert_eq!(check(&json, "patch.sources")["status"], "pass", "{json:#}");
    assert_eq!(
        summary(&json, "patch.sources"),
        summary(&first, "patch.sources")
    );
    assert_eq!(
        asked(&ssm, ".GetMaintenanceWindow"),
        2,
        "the gone window and the named one"
    );
    assert_eq!(check(&json, "patch.sources")["details"]["windows"], WINDOW);
}
