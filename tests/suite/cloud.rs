//! The cloud-side checks (`ssm.ping`, `patchgroup.baseline`,
//! `window.targeted`, `patch.last_run`, `credentials.valid`) through the
//! built binary on a hybrid node, against the fake SSM (SigV4 checked, AWS's
//! shapes and errors) and the fake STS, on loopback.

use crate::common;

use common::fake_aws::{self, StsAnswer};
use common::fake_ssm::{self, Cloud};
use serde_json::{json, Value};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

const NODE: &str = "mi-0123456789abcdef0";
const WINDOW: &str = "mw-0123456789abcdef0";
const GROUP: &str = "production-linux";

/// The window's next start: in ten days, within window.targeted's 35.
fn next_start() -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(240);
    t.strftime("%Y-%m-%dT02:00:00Z").to_string()
}

fn days_ago(days: f64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    now - days * 86_400.0
}

/// A node SSM sees as wanted: Online, its group registered for Debian, a
/// window with the gated patch task, a clean install three days ago.
fn healthy() -> Cloud {
    Cloud {
        instances: vec![json!({
            "InstanceId": NODE, "PingStatus": "Online", "LastPingDateTime": days_ago(0.001),
            "AgentVersion": "3.3.40.0", "IsLatestVersion": true, "PlatformType": "Linux",
            "PlatformName": "Debian GNU/Linux", "PlatformVersion": "12", "ResourceType": "ManagedInstance"
        })],
        patch_groups: vec![json!({
            "PatchGroup": GROUP,
            "BaselineIdentity": {"BaselineId": "pb-0debian000000001", "BaselineName": "prod-debian", "OperatingSystem": "DEBIAN", "DefaultBaseline": false}
        })],
        default_baselines: vec![(
            "DEBIAN".into(),
            "arn:aws:ssm:eu-west-1:aws:patchbaseline/pb-0c10e65780EXAMPLE".into(),
        )],
        baselines: vec![
            (
                "pb-0debian000000001".into(),
                json!({
                    "BaselineId": "pb-0debian000000001", "Name": "prod-debian", "OperatingSystem": "DEBIAN",
                    "ApprovalRules": {"PatchRules": [{"PatchFilterGroup": {"PatchFilters": []}, "ApproveAfterDays": 7}]},
                    "ApprovedPatches": ["openssl"], "RejectedPatches": []
                }),
            ),
            (
                "arn:aws:ssm:eu-west-1:aws:patchbaseline/pb-0c10e65780EXAMPLE".into(),
                json!({
                    "BaselineId": "arn:aws:ssm:eu-west-1:aws:patchbaseline/pb-0c10e65780EXAMPLE", "Name": "AWS-DebianDefaultPatchBaseline", "OperatingSystem": "DEBIAN",
                    "ApprovalRules": {"PatchRules": [{"PatchFilterGroup": {"PatchFilters": []}, "ApproveAfterDays": 7}]},
                    "ApprovedPatches": [], "RejectedPatches": []
                }),
            ),
        ],
        patch_states: vec![patch_state(0)],
        instance_patches: vec![],
        windows: vec![(
            WINDOW.into(),
            json!({
                "WindowId": WINDOW, "Name": "production-linux", "Duration": 4, "Cutoff": 1, "Schedule": "cron(0 2 ? * SUN#3 *)", "Enabled": true
            }),
        )],
        window_tasks: vec![(
            WINDOW.into(),
            vec![json!({
                "WindowId": WINDOW, "WindowTaskId": "task-1", "TaskArn": "AWS-RunPatchBaselineWithHooks", "Type": "RUN_COMMAND",
                "MaxConcurrency": "25%", "MaxErrors": "10%", "Priority": 1
            })],
        )],
        task_details: vec![(
            (WINDOW.into(), "task-1".into()),
            gated_task(Some("SSMPreflight-Gate")),
        )],
    }
}

fn patch_state(failed: i64) -> Value {
    json!({
        "InstanceId": NODE, "PatchGroup": GROUP, "BaselineId": "pb-0debian000000001",
        "OperationStartTime": days_ago(3.01), "OperationEndTime": days_ago(3.0), "Operation": "Install",
        "InstalledCount": 40, "InstalledOtherCount": 0, "MissingCount": 0, "FailedCount": failed,
        "NotApplicableCount": 100, "InstalledPendingRebootCount": 0, "CriticalNonCompliantCount": 0
    })
}

fn gated_task(hook: Option<&str>) -> Value {
    let mut parameters = json!({"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]});
    if let Some(h) = hook {
        parameters["PreInstallHookDocName"] = json!([h]);
    }
    json!({
        "WindowId": WINDOW, "WindowTaskId": "task-1", "TaskArn": "AWS-RunPatchBaselineWithHooks", "TaskType": "RUN_COMMAND",
        "TaskInvocationParameters": {"RunCommand": {"Parameters": parameters}}, "Priority": 1
    })
}

/// Runs the cloud checks and credentials.valid on the hybrid node fixture.
async fn run(ssm: fake_ssm::Shared, addr: std::net::SocketAddr, sts: StsAnswer) -> Value {
    ssm.lock().unwrap().schedules.push((
        "tag:Patch Group".into(),
        GROUP.into(),
        json!({"WindowId": WINDOW, "Name": "production-linux", "ExecutionTime": next_start()}),
    ));
    let (l, sts_addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_sts(l, sts, Arc::new(AtomicUsize::new(0))));
    let root = common::fixture_root("hybrid-node");
    let config = root.path().join("preflight.toml");
    std::fs::write(&config, format!("[patch_group]\nvalue = \"{GROUP}\"\n")).unwrap();
    let out = tokio::task::block_in_place(|| {
        common::command(
            root.path(),
            &config,
            &[
                "check",
                "--json",
                "--mode",
                "hybrid",
                "--only",
                "cloud,credentials.valid",
            ],
        )
        .env("AWS_ENDPOINT_URL_SSM", format!("http://{addr}"))
        .env("AWS_ENDPOINT_URL_STS", format!("http://{sts_addr}"))
        .output()
        .unwrap()
    });
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
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
    let (ssm, addr) = fake_ssm::start().await;
    ssm.lock().unwrap().cloud = healthy();
    let json = run(
        ssm.clone(),
        addr,
        StsAnswer::Accept(format!(
            "arn:aws:sts::123456789012:assumed-role/SSMServiceRole/{NODE}"
        )),
    )
    .await;
    for id in [
        "ssm.ping",
        "patchgroup.baseline",
        "window.targeted",
        "patch.last_run",
        "credentials.valid",
    ] {
        assert_eq!(check(&json, id)["status"], "pass", "{:#}", check(&json, id));
    }
    assert!(summary(&json, "ssm.ping").starts_with(&format!("SSM shows {NODE} Online")));
    assert_eq!(
        summary(&json, "patchgroup.baseline"),
        "the patch group production-linux is registered for DEBIAN to prod-debian (pb-0debian000000001; auto-approves after 7 days, 1 approved and 0 rejected patches listed)"
    );
    assert!(
        summary(&json, "window.targeted").starts_with(&format!(
            "patched by production-linux next at {} (4 h, cutoff 1 h): AWS-RunPatchBaselineWithHooks Install, RebootIfNeeded",
            next_start()
        )),
        "{}",
        summary(&json, "window.targeted")
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
    let (ssm, addr) = fake_ssm::start().await;
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
    let json = run(ssm, addr, StsAnswer::ClockAhead(360)).await;
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
    assert_eq!(check(&json, "window.targeted")["status"], "warn");
    assert!(
        summary(&json, "window.targeted").contains("without the gate"),
        "{}",
        summary(&json, "window.targeted")
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
    let (ssm, addr) = fake_ssm::start().await;
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
    let json = run(ssm, addr, StsAnswer::Expired).await;
    assert_eq!(check(&json, "ssm.ping")["status"], "fail");
    assert!(summary(&json, "ssm.ping").contains(&format!("SSM does not know {NODE}")));
    assert_eq!(check(&json, "window.targeted")["status"], "warn");
    assert!(
        summary(&json, "window.targeted").contains("runs no patch task"),
        "{}",
        summary(&json, "window.targeted")
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
        ("GetMaintenanceWindow", "window.targeted"),
        ("DescribeMaintenanceWindowTasks", "window.targeted"),
        ("GetMaintenanceWindowTask", "window.targeted"),
    ] {
        let (ssm, addr) = fake_ssm::start().await;
        ssm.lock().unwrap().cloud = healthy();
        ssm.lock().unwrap().deny_actions = vec![action.into()];
        let json = run(
            ssm,
            addr,
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
