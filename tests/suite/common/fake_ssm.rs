//! A loopback fake of the SSM JSON API (awsJson1_1, `X-Amz-Target`): it
//! checks each request's SigV4 signature against the test credentials,
//! enforces PutComplianceItems' documented constraints, answers with AWS's
//! error shapes, stores items and answers ListComplianceItems — and, for
//! the scheduler, DescribeMaintenanceWindowSchedule.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const ACCESS_KEY: &str = "AKIDTESTFAKESSM";
pub const SECRET_KEY: &str = "fake-ssm-secret";
/// The keys the fake accepts, with their secrets: the hybrid fixture's, and
/// the role credentials the fake IMDS hands out.
const KEYS: &[(&str, &str)] = &[(ACCESS_KEY, SECRET_KEY), ("ASIATESTKEY", "testsecret")];

/// One accepted PutComplianceItems call.
#[derive(Debug, Clone)]
pub struct Put {
    pub resource_id: String,
    pub execution_id: String,
    pub execution_time: f64,
    pub items: Vec<Value>,
}

#[derive(Default)]
pub struct FakeSsm {
    /// Answers to give before serving normally: (HTTP status, error type).
    pub failures: VecDeque<(u16, &'static str)>,
    /// Refuse every call with AccessDeniedException.
    pub deny: bool,
    pub puts: Vec<Put>,
    /// Every request's target, in order (including refused ones).
    pub calls: Vec<String>,
    /// Signatures that did not verify.
    pub bad_signatures: usize,
    /// DescribeMaintenanceWindowSchedule answers, by target: key
    /// ("InstanceIds" or "tag:…"), value, then the window execution.
    pub schedules: Vec<(String, String, Value)>,
    /// How SSM and Patch Manager see the nodes (the cloud checks).
    pub cloud: Cloud,
    /// Actions refused with AccessDeniedException ("DescribePatchGroups", …).
    pub deny_actions: Vec<String>,
    /// Served over TLS (the presigned URL's scheme).
    pub tls: bool,
    /// Holds each DescribeMaintenanceWindowSchedule answer until a window
    /// has been asked for (GetMaintenanceWindow) or this long has passed,
    /// which `schedule_waited_out` then says: only a caller that reads a
    /// window before the schedule names it is answered at once.
    pub hold_schedule: Option<std::time::Duration>,
    pub schedule_waited_out: bool,
}

/// The data the cloud checks' operations answer from, in AWS's shapes.
#[derive(Default)]
pub struct Cloud {
    /// InstanceInformation objects (DescribeInstanceInformation).
    pub instances: Vec<Value>,
    /// PatchGroupPatchBaselineMapping objects (DescribePatchGroups).
    pub patch_groups: Vec<Value>,
    /// Operating system → default baseline ID (GetDefaultPatchBaseline).
    pub default_baselines: Vec<(String, String)>,
    /// GetPatchBaseline answers, by baseline ID.
    pub baselines: Vec<(String, Value)>,
    /// InstancePatchState objects (DescribeInstancePatchStates).
    pub patch_states: Vec<Value>,
    /// Instance ID → PatchComplianceData objects (DescribeInstancePatches).
    pub instance_patches: Vec<(String, Vec<Value>)>,
    /// GetMaintenanceWindow answers, by window ID.
    pub windows: Vec<(String, Value)>,
    /// Window ID → MaintenanceWindowTask objects.
    pub window_tasks: Vec<(String, Vec<Value>)>,
    /// (window ID, task ID) → GetMaintenanceWindowTask answers.
    pub task_details: Vec<((String, String), Value)>,
    /// The content GetDocument answers for AWS-RunPatchBaseline.
    pub patch_document: Option<String>,
    /// How GetDeployablePatchSnapshotForInstance and the snapshot's
    /// presigned download answer.
    pub snapshot: Snapshot,
    /// Run Command's record of the node's runs: each a CommandInvocation
    /// (ListCommandInvocations, with CommandPlugins when Details is true),
    /// its Command's Parameters (ListCommands) and its standard error
    /// (GetCommandInvocation).
    pub runs: Vec<Run>,
    /// State Manager associations, each an AssociationDescription
    /// (DescribeAssociation), with the nodes it applies to
    /// (DescribeEffectiveInstanceAssociations resolves targets to these).
    pub associations: Vec<(Value, Vec<String>)>,
}

/// An association of `document` as DescribeAssociation describes it.
pub fn association(id: &str, name: &str, document: &str, schedule: &str, operation: &str) -> Value {
    json!({
        "AssociationId": id, "AssociationName": name, "Name": document, "AssociationVersion": "1",
        "DocumentVersion": "$DEFAULT", "ScheduleExpression": schedule,
        "Parameters": {"Operation": [operation], "RebootOption": ["RebootIfNeeded"]},
        "Targets": [{"Key": "tag:Patch Group", "Values": ["production-linux"]}],
        "Overview": {"Status": "Success", "DetailedStatus": "Success"},
        "MaxConcurrency": "10%", "MaxErrors": "5%", "ApplyOnlyAtCronInterval": false,
        "ComplianceSeverity": "UNSPECIFIED", "Date": days_ago(90.0)
    })
}

/// One command run on a node, as Run Command records it.
#[derive(Clone, Debug)]
pub struct Run {
    pub invocation: Value,
    pub parameters: Value,
    pub stderr: String,
}

impl Run {
    /// A patch run of `document` on `instance`, `hours_ago`, ending in
    /// `status` with the Linux step's `code`.
    pub fn patch(instance: &str, document: &str, hours_ago: f64, status: &str, code: i64) -> Run {
        let requested = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            - hours_ago * 3600.0;
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            requested as u64,
            code.unsigned_abs()
        );
        let details = if status == "TimedOut" {
            "ExecutionTimedOut"
        } else {
            status
        };
        Run {
            invocation: json!({
                "CommandId": id, "InstanceId": instance, "InstanceName": "",
                "DocumentName": document, "DocumentVersion": "$DEFAULT",
                "RequestedDateTime": requested, "Status": status, "StatusDetails": details,
                "TraceOutput": "", "StandardOutputUrl": "", "StandardErrorUrl": "",
                "ServiceRole": "", "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": false},
                "CommandPlugins": [
                    {"Name": "PatchWindows", "Status": "Success", "StatusDetails": "Success", "ResponseCode": 0, "Output": "Step execution skipped due to unsatisfied preconditions"},
                    {"Name": "PatchLinux", "Status": status, "StatusDetails": details, "ResponseCode": code, "Output": "", "ResponseStartDateTime": requested, "ResponseFinishDateTime": requested + 60.0}
                ]
            }),
            parameters: json!({"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"], "SnapshotId": [""]}),
            stderr: String::new(),
        }
    }

    pub fn command_id(&self) -> &str {
        self.invocation["CommandId"].as_str().unwrap()
    }
}

/// The patch snapshot, as SSM and S3 answer for it.
#[derive(Clone, Debug)]
pub enum Snapshot {
    /// SSM answers with a presigned URL on the fake itself; its download
    /// answers `status` with `body` (0: accepts and never answers).
    Download { status: u16, body: String },
    /// SSM: UnsupportedOperatingSystem.
    Unsupported,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot::Download {
            status: 200,
            body: SNAPSHOT_BODY.into(),
        }
    }
}

/// A snapshot as the fake serves it: the baseline in the shape the check
/// reads (AWS does not document the snapshot's format).
pub const SNAPSHOT_BODY: &str = r#"{"patchBaseline": {"name": "prod-debian", "operatingSystem": "DEBIAN", "approvalRules": {"patchRules": [{"approveAfterDays": 7}]}, "approvedPatches": ["openssl"], "rejectedPatches": []}}"#;

/// The presigned URL's signature: a secret no output may carry.
pub const PRESIGNED_SIGNATURE: &str =
    "0fake5ign4ture0f4presigned0url000000000000000000000000000000000";

/// The payload the fake's AWS-RunPatchBaseline names, and its key.
pub const PAYLOAD_KEY: &str =
    "patchbaselineoperations/linux/payloads/patch-baseline-operations-1.80.tar.gz";

/// A Command document whose Linux script names its payload as
/// AWS-RunPatchBaseline's does (written for the tests: the name, prefix,
/// the regions that keep the old bucket).
pub fn patch_document() -> String {
    patch_document_with_old_regions(&["us-east-1", "eu-west-1", "ap-south-1"])
}

/// The same document with another list of the regions that keep the old bucket.
pub fn patch_document_with_old_regions(old: &[&str]) -> String {
    let quoted: Vec<String> = old.iter().map(|r| format!("\"{r}\"")).collect();
    let (first, rest) = quoted.split_at(quoted.len().min(1));
    let lines = [
        "region = os.environ[\"AWS_SSM_REGION_NAME\"]".to_string(),
        // The list spans lines, as the real document's does.
        format!("OLD_BUCKET_REGIONS = [{},", first.join("")),
        format!("             {}]", rest.join(", ")),
        "s3_bucket = \"aws-ssm-%s\"%(region)".to_string(),
        "s3_prefix = \"patchbaselineoperations/linux/payloads\"".to_string(),
        "payload_name = \"patch-baseline-operations-1.80.tar.gz\"".to_string(),
    ];
    json!({
        "schemaVersion": "2.2",
        "description": "the fake's AWS-RunPatchBaseline",
        "mainSteps": [{"name": "PatchLinux", "action": "aws:runShellScript", "inputs": {"runCommand": lines}}]
    })
    .to_string()
}

/// `field` of `input` as a string, or AWS's validation error for a missing one.
// The error is the response itself, returned at once by the caller.
#[allow(clippy::result_large_err)]
fn required<'a>(input: &'a Value, field: &str) -> Result<&'a str, hyper::Response<Full<Bytes>>> {
    input[field].as_str().ok_or_else(|| {
        error(
            400,
            "ValidationException",
            &format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", field[..1].to_lowercase() + &field[1..]),
        )
    })
}

/// The values of the filter with `key` in a list of {Key, Values} filters.
pub fn filter_values(filters: &Value, key: &str) -> Option<Vec<String>> {
    filters
        .as_array()?
        .iter()
        .find(|f| f["Key"] == key)
        .map(|f| {
            f["Values"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        })
}

pub type Shared = Arc<Mutex<FakeSsm>>;

pub async fn start() -> (Shared, SocketAddr) {
    start_on(None).await
}

/// The fake over HTTPS with `tls`, as the node's `endpoints.urls.ssm`
/// (which must be https://) reaches it: the endpoint probe and the SDK
/// then share one address, as they do in production.
pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> (Shared, SocketAddr) {
    start_on(Some(tls)).await
}

async fn start_on(tls: Option<Arc<rustls::ServerConfig>>) -> (Shared, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (serve(listener, tls), addr)
}

/// The fake on a listener the caller bound (an address in a namespace).
pub fn serve(listener: tokio::net::TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Shared {
    let shared: Shared = Arc::new(Mutex::new(FakeSsm {
        tls: tls.is_some(),
        ..FakeSsm::default()
    }));
    let state = shared.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            // As AWS's endpoints do: no Nagle delay on the answer's second write
            // (a client's delayed ACK would add 40 ms to every call).
            let _ = tcp.set_nodelay(true);
            let (state, acceptor) = (state.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    },
                );
                super::fake_aws::serve_one(tcp, acceptor, service).await;
            });
        }
    });
    shared
}

pub fn error(status: u16, kind: &str, message: &str) -> hyper::Response<Full<Bytes>> {
    let body = json!({ "__type": kind, "message": message }).to_string();
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

pub fn ok(body: Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    state: &Shared,
) -> hyper::Response<Full<Bytes>> {
    super::fake_aws::answer_delay().await;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    state.lock().unwrap().calls.push(target.clone());
    let hold = state.lock().unwrap().hold_schedule;
    if let (Some(hold), "AmazonSSM.DescribeMaintenanceWindowSchedule") = (hold, target.as_str()) {
        let until = std::time::Instant::now() + hold;
        let window_asked = || {
            let s = state.lock().unwrap();
            s.calls
                .iter()
                .any(|c| c == "AmazonSSM.GetMaintenanceWindow")
        };
        while !window_asked() {
            if std::time::Instant::now() >= until {
                state.lock().unwrap().schedule_waited_out = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    // The snapshot's presigned download: S3's, served here.
    if parts.method == hyper::Method::GET
        && parts.uri.path().starts_with("/patch-baseline-snapshot-")
    {
        let signed = parts
            .uri
            .query()
            .is_some_and(|q| q.contains(&format!("X-Amz-Signature={PRESIGNED_SIGNATURE}")));
        let answer = state.lock().unwrap().cloud.snapshot.clone();
        return match (signed, answer) {
            (false, _) => error(
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature",
            ),
            (true, Snapshot::Download { status: 0, .. }) => {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                error(500, "InternalError", "too late")
            }
            (true, Snapshot::Download { status, body }) => hyper::Response::builder()
                .status(status)
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
            (true, Snapshot::Unsupported) => error(404, "NoSuchKey", "no snapshot"),
        };
    }
    // An unsigned request (the endpoint probe's HEAD) gets SSM's answer to
    // one; it is not a bad signature.
    if !parts.headers.contains_key("authorization") {
        return error(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    if let Err(why) = verify_sigv4(&parts, &body) {
        state.lock().unwrap().bad_signatures += 1;
        return error(400, "InvalidSignatureException", &why);
    }
    {
        let mut s = state.lock().unwrap();
        if s.deny {
            return error(400, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test is not authorized to perform: ssm:PutComplianceItems");
        }
        let action = target.trim_start_matches("AmazonSSM.");
        if s.deny_actions.iter().any(|a| a == action) {
            return error(400, "AccessDeniedException", &format!("User: arn:aws:sts::123456789012:assumed-role/SSMCore/mi-0123456789abcdef0 is not authorized to perform: ssm:{action} because no identity-based policy allows the ssm:{action} action"));
        }
        if let Some((status, kind)) = s.failures.pop_front() {
            return error(status, kind, "the fake was told to fail");
        }
    }
    let input: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(400, "SerializationException", "body is not JSON"),
    };
    match target.as_str() {
        "AmazonSSM.PutComplianceItems" => match validate_put(&input) {
            Ok(put) => {
                state.lock().unwrap().puts.push(put);
                ok(json!({}))
            }
            Err(why) => error(400, "ValidationException", &why),
        },
        "AmazonSSM.ListComplianceItems" => {
            let s = state.lock().unwrap();
            let wanted: Vec<String> = input["ResourceIds"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            // COMPLETE uploads replace: the latest put per resource is what is stored.
            let mut items = Vec::new();
            for put in s.puts.iter().rev() {
                if !wanted.is_empty() && !wanted.contains(&put.resource_id) {
                    continue;
                }
                if items
                    .iter()
                    .any(|i: &Value| i["ResourceId"] == put.resource_id.as_str())
                {
                    continue;
                }
                for item in &put.items {
                    items.push(json!({
                        "ComplianceType": "Custom:PatchPreflight",
                        "ResourceType": "ManagedInstance",
                        "ResourceId": put.resource_id,
                        "Id": item["Id"],
                        "Title": item["Title"],
                        "Status": item["Status"],
                        "Severity": item["Severity"],
                        "Details": item["Details"],
                        "ExecutionSummary": {"ExecutionTime": put.execution_time, "ExecutionId": put.execution_id, "ExecutionType": "ssm-preflight"},
                    }));
                }
            }
            ok(json!({ "ComplianceItems": items }))
        }
        "AmazonSSM.DescribeInstanceInformation" => {
            // As SSM: the node is named by an InstanceIds filter; the fake
            // answers only the nodes it names.
            let Some(ids) = filter_values(&input["Filters"], "InstanceIds")
                .or_else(|| filter_values(&input["InstanceInformationFilterList"], "InstanceIds"))
            else {
                return error(
                    400,
                    "InvalidFilterKey",
                    "the fake expects an InstanceIds filter",
                );
            };
            let s = state.lock().unwrap();
            let found: Vec<Value> = s
                .cloud
                .instances
                .iter()
                .filter(|i| ids.iter().any(|id| i["InstanceId"] == id.as_str()))
                .cloned()
                .collect();
            ok(json!({ "InstanceInformationList": found }))
        }
        "AmazonSSM.DescribePatchGroups" => {
            let prefix = filter_values(&input["Filters"], "NAME_PREFIX")
                .and_then(|v| v.first().cloned())
                .unwrap_or_default();
            let s = state.lock().unwrap();
            let found: Vec<Value> = s
                .cloud
                .patch_groups
                .iter()
                .filter(|m| {
                    m["PatchGroup"]
                        .as_str()
                        .is_some_and(|g| g.starts_with(&prefix))
                })
                .cloned()
                .collect();
            ok(json!({ "Mappings": found }))
        }
        "AmazonSSM.GetDefaultPatchBaseline" => {
            // Without OperatingSystem, SSM answers for Windows.
            let os = input["OperatingSystem"]
                .as_str()
                .unwrap_or("WINDOWS")
                .to_string();
            let s = state.lock().unwrap();
            match s.cloud.default_baselines.iter().find(|(o, _)| *o == os) {
                Some((_, id)) => ok(json!({ "BaselineId": id, "OperatingSystem": os })),
                None => error(
                    400,
                    "DoesNotExistException",
                    &format!("no default baseline for {os}"),
                ),
            }
        }
        "AmazonSSM.GetPatchBaseline" => {
            let id = match required(&input, "BaselineId") {
                Ok(id) => id.to_string(),
                Err(e) => return e,
            };
            let s = state.lock().unwrap();
            match s.cloud.baselines.iter().find(|(b, _)| *b == id) {
                Some((_, v)) => ok(v.clone()),
                None => error(
                    400,
                    "DoesNotExistException",
                    &format!("Patch baseline {id} does not exist."),
                ),
            }
        }
        "AmazonSSM.DescribeInstancePatchStates" => {
            let Some(ids) = input["InstanceIds"].as_array() else {
                return error(400, "ValidationException", "1 validation error detected: Value null at 'instanceIds' failed to satisfy constraint: Member must not be null");
            };
            let s = state.lock().unwrap();
            let found: Vec<Value> = s
                .cloud
                .patch_states
                .iter()
                .filter(|p| ids.iter().any(|id| p["InstanceId"] == *id))
                .cloned()
                .collect();
            ok(json!({ "InstancePatchStates": found }))
        }
        "AmazonSSM.DescribeInstancePatches" => {
            let id = match required(&input, "InstanceId") {
                Ok(id) => id.to_string(),
                Err(e) => return e,
            };
            let states = filter_values(&input["Filters"], "State");
            let s = state.lock().unwrap();
            let patches: Vec<Value> = s
                .cloud
                .instance_patches
                .iter()
                .filter(|(i, _)| *i == id)
                .flat_map(|(_, p)| p.iter().cloned())
                .filter(|p| {
                    states.as_ref().is_none_or(|st| {
                        st.iter().any(|x| {
                            x.eq_ignore_ascii_case(p["State"].as_str().unwrap_or_default())
                        })
                    })
                })
                .collect();
            ok(json!({ "Patches": patches }))
        }
        "AmazonSSM.GetMaintenanceWindow" => {
            let id = match required(&input, "WindowId") {
                Ok(id) => id.to_string(),
                Err(e) => return e,
            };
            let s = state.lock().unwrap();
            match s.cloud.windows.iter().find(|(w, _)| *w == id) {
                Some((_, v)) => ok(v.clone()),
                None => error(
                    400,
                    "DoesNotExistException",
                    &format!("Maintenance window {id} does not exist"),
                ),
            }
        }
        "AmazonSSM.DescribeMaintenanceWindowTasks" => {
            let id = match required(&input, "WindowId") {
                Ok(id) => id.to_string(),
                Err(e) => return e,
            };
            let s = state.lock().unwrap();
            match s.cloud.window_tasks.iter().find(|(w, _)| *w == id) {
                Some((_, tasks)) => ok(json!({ "Tasks": tasks })),
                None => error(
                    400,
                    "DoesNotExistException",
                    &format!("Maintenance window {id} does not exist"),
                ),
            }
        }
        "AmazonSSM.GetMaintenanceWindowTask" => {
            let (wid, tid) = match (
                required(&input, "WindowId"),
                required(&input, "WindowTaskId"),
            ) {
                (Ok(w), Ok(t)) => (w.to_string(), t.to_string()),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            let s = state.lock().unwrap();
            match s
                .cloud
                .task_details
                .iter()
                .find(|(k, _)| k.0 == wid && k.1 == tid)
            {
                Some((_, v)) => ok(v.clone()),
                None => error(
                    400,
                    "DoesNotExistException",
                    &format!("Maintenance window task {tid} does not exist"),
                ),
            }
        }
        "AmazonSSM.GetDeployablePatchSnapshotForInstance" => {
            let (Ok(instance), Ok(snapshot_id)) = (
                required(&input, "InstanceId"),
                required(&input, "SnapshotId"),
            ) else {
                return error(
                    400,
                    "ValidationException",
                    "InstanceId and SnapshotId are required",
                );
            };
            // As SSM: the snapshot ID is a UUID (36 characters).
            if snapshot_id.len() != 36 || snapshot_id.matches('-').count() != 4 {
                return error(400, "ValidationException", &format!("1 validation error detected: Value '{snapshot_id}' at 'snapshotId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$"));
            }
            let s = state.lock().unwrap();
            match s.cloud.snapshot {
                Snapshot::Unsupported => error(
                    400,
                    "UnsupportedOperatingSystem",
                    "The operating system Debian 13 is not supported for patching.",
                ),
                Snapshot::Download { .. } => {
                    let host = parts
                        .headers
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("localhost");
                    let scheme = if s.tls { "https" } else { "http" };
                    ok(json!({
                        "InstanceId": instance, "SnapshotId": snapshot_id, "Product": "Debian12",
                        "SnapshotDownloadUrl": format!("{scheme}://{host}/patch-baseline-snapshot-eu-west-1/{snapshot_id}.json?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={PRESIGNED_SIGNATURE}")
                    }))
                }
            }
        }
        "AmazonSSM.ListCommandInvocations" => {
            let s = state.lock().unwrap();
            // CommandFilter's members are lower-case in SSM's model.
            let document = input["Filters"].as_array().and_then(|f| {
                f.iter()
                    .find(|f| f["key"] == "DocumentName")
                    .and_then(|f| f["value"].as_str())
            });
            let max = input["MaxResults"].as_u64().unwrap_or(50) as usize;
            let found: Vec<Value> = s
                .cloud
                .runs
                .iter()
                .map(|r| r.invocation.clone())
                .filter(|i| input["InstanceId"].is_null() || i["InstanceId"] == input["InstanceId"])
                .filter(|i| document.is_none_or(|d| i["DocumentName"] == d))
                .map(|mut i| {
                    if input["Details"] != true {
                        i["CommandPlugins"] = json!([]);
                    }
                    i
                })
                .take(max)
                .collect();
            ok(json!({ "CommandInvocations": found }))
        }
        "AmazonSSM.ListCommands" => {
            let s = state.lock().unwrap();
            let found: Vec<Value> = s
                .cloud
                .runs
                .iter()
                .filter(|r| input["CommandId"].is_null() || r.invocation["CommandId"] == input["CommandId"])
                .map(|r| {
                    json!({
                        "CommandId": r.invocation["CommandId"], "DocumentName": r.invocation["DocumentName"],
                        "Parameters": r.parameters, "Status": r.invocation["Status"],
                        "RequestedDateTime": r.invocation["RequestedDateTime"], "TargetCount": 1
                    })
                })
                .collect();
            ok(json!({ "Commands": found }))
        }
        "AmazonSSM.GetCommandInvocation" => {
            let (Ok(command), Ok(instance)) = (
                required(&input, "CommandId"),
                required(&input, "InstanceId"),
            ) else {
                return error(
                    400,
                    "ValidationException",
                    "CommandId and InstanceId are required",
                );
            };
            let s = state.lock().unwrap();
            let Some(r) = s.cloud.runs.iter().find(|r| {
                r.invocation["CommandId"] == command && r.invocation["InstanceId"] == instance
            }) else {
                return error(400, "InvocationDoesNotExist", "");
            };
            let plugin = input["PluginName"].as_str().unwrap_or("PatchLinux");
            let step = r.invocation["CommandPlugins"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["Name"] == plugin))
                .cloned()
                .unwrap_or(json!({}));
            ok(json!({
                "CommandId": command, "InstanceId": instance, "DocumentName": r.invocation["DocumentName"],
                "PluginName": plugin, "ResponseCode": step["ResponseCode"], "Status": step["Status"],
                "StatusDetails": step["StatusDetails"], "StandardOutputContent": "",
                "StandardErrorContent": r.stderr
            }))
        }
        "AmazonSSM.GetDocument" => {
            let name = match required(&input, "Name") {
                Ok(n) => n.to_string(),
                Err(e) => return e,
            };
            let s = state.lock().unwrap();
            match (&s.cloud.patch_document, name.as_str()) {
                (Some(content), "AWS-RunPatchBaseline") => ok(json!({
                    "Name": name, "Content": content, "DocumentType": "Command",
                    "DocumentFormat": "JSON", "DocumentVersion": "1", "Status": "Active"
                })),
                _ => error(
                    400,
                    "InvalidDocument",
                    &format!("Document with name {name} does not exist."),
                ),
            }
        }
        "AmazonSSM.DescribeEffectiveInstanceAssociations" => {
            let s = state.lock().unwrap();
            let node = input["InstanceId"].as_str().unwrap_or_default();
            if node.is_empty() {
                return error(400, "ValidationException", "1 validation error detected: Value null at 'instanceId' failed to satisfy constraint: Member must not be null");
            }
            // MaxResults is 1 to 5: the client pages, as it must with SSM.
            let max = input["MaxResults"].as_u64().unwrap_or(5).clamp(1, 5) as usize;
            let from: usize = input["NextToken"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let all: Vec<Value> = s
                .cloud
                .associations
                .iter()
                .filter(|(_, nodes)| nodes.iter().any(|n| n == node))
                .map(|(a, _)| json!({"AssociationId": a["AssociationId"], "InstanceId": node, "Content": "{}", "AssociationVersion": "1"}))
                .collect();
            let page: Vec<Value> = all.iter().skip(from).take(max).cloned().collect();
            let mut out = json!({ "Associations": page });
            if from + max < all.len() {
                out["NextToken"] = json!((from + max).to_string());
            }
            ok(out)
        }
        "AmazonSSM.DescribeAssociation" => {
            let s = state.lock().unwrap();
            let id = input["AssociationId"].as_str().unwrap_or_default();
            match s
                .cloud
                .associations
                .iter()
                .find(|(a, _)| a["AssociationId"] == id)
            {
                Some((a, _)) => ok(json!({ "AssociationDescription": a })),
                None => error(
                    400,
                    "AssociationDoesNotExist",
                    &format!("Association {id} does not exist."),
                ),
            }
        }
        "AmazonSSM.DescribeMaintenanceWindowSchedule" => {
            let s = state.lock().unwrap();
            // As SSM: every target's key and values must match, and a
            // resource type other than INSTANCE finds no instance's window
            // (issue #17 item 9).
            let targets = input["Targets"].as_array().cloned().unwrap_or_default();
            if targets.len() != 1 || input["ResourceType"] != "INSTANCE" {
                return ok(json!({ "ScheduledWindowExecutions": [] }));
            }
            let key = targets[0]["Key"].as_str().unwrap_or_default();
            let values: Vec<&str> = targets[0]["Values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let found: Vec<Value> = s
                .schedules
                .iter()
                .filter(|(k, v, _)| k == key && values.contains(&v.as_str()))
                .map(|(_, _, w)| w.clone())
                .collect();
            ok(json!({ "ScheduledWindowExecutions": found }))
        }
        other => error(
            400,
            "UnknownOperationException",
            &format!("the fake does not serve {other}"),
        ),
    }
}

fn len_between(v: &Value, field: &str, min: usize, max: usize) -> Result<(), String> {
    let n = v
        .as_str()
        .map(|s| s.chars().count())
        .ok_or_else(|| format!("{field} is required"))?;
    if n < min || n > max {
        return Err(format!("1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length between {min} and {max}"));
    }
    Ok(())
}

/// PutComplianceItems' documented constraints.
fn validate_put(input: &Value) -> Result<Put, String> {
    len_between(&input["ResourceId"], "resourceId", 1, 100)?;
    len_between(&input["ResourceType"], "resourceType", 1, 50)?;
    len_between(&input["ComplianceType"], "complianceType", 1, 100)?;
    let ct = input["ComplianceType"].as_str().unwrap();
    // [A-Za-z0-9_\-]\w+|Custom:[a-zA-Z0-9_\-]\w+
    let word = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && s.len() >= 2
            && chars.all(|c| c.is_alphanumeric() || c == '_')
    };
    let valid_type = match ct.strip_prefix("Custom:") {
        Some(rest) => word(rest),
        None => word(ct),
    };
    if !valid_type {
        return Err("Value at 'complianceType' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9_\\-]\\w+|Custom:[a-zA-Z0-9_\\-]\\w+".into());
    }
    let summary = &input["ExecutionSummary"];
    let time = summary["ExecutionTime"]
        .as_f64()
        .ok_or("ExecutionSummary.ExecutionTime is required")?;
    if let Some(id) = summary.get("ExecutionId") {
        len_between(id, "executionSummary.executionId", 1, 100)?;
    }
    if !matches!(
        input["UploadType"].as_str(),
        None | Some("COMPLETE") | Some("PARTIAL")
    ) {
        return Err(
            "Value at 'uploadType' failed to satisfy enum value set: [COMPLETE, PARTIAL]".into(),
        );
    }
    let items = input["Items"].as_array().ok_or("Items is required")?;
    if items.len() > 10_000 {
        return Err("Value at 'items' failed to satisfy constraint: Member must have length less than or equal to 10000".into());
    }
    for item in items {
        if let Some(id) = item.get("Id") {
            len_between(id, "items.member.id", 1, 100)?;
        }
        if let Some(title) = item.get("Title") {
            len_between(title, "items.member.title", 0, 500)?;
        }
        if !matches!(
            item["Severity"].as_str(),
            Some("CRITICAL" | "HIGH" | "MEDIUM" | "LOW" | "INFORMATIONAL" | "UNSPECIFIED")
        ) {
            return Err("Value at 'items.member.severity' failed to satisfy enum value set".into());
        }
        if !matches!(item["Status"].as_str(), Some("COMPLIANT" | "NON_COMPLIANT")) {
            return Err("Value at 'items.member.status' failed to satisfy enum value set".into());
        }
        if let Some(details) = item["Details"].as_object() {
            for (k, v) in details {
                if k.is_empty() || k.chars().count() > 64 {
                    return Err("Value at 'items.member.details' failed to satisfy constraint: Map keys must have length between 1 and 64".into());
                }
                if v.as_str().map(|s| s.chars().count()).unwrap_or(0) > 4096 {
                    return Err("Value at 'items.member.details' failed to satisfy constraint: Map value must have length less than or equal to 4096".into());
                }
            }
        }
    }
    Ok(Put {
        resource_id: input["ResourceId"].as_str().unwrap().to_string(),
        execution_id: summary["ExecutionId"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        execution_time: time,
        items: items.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// Recomputes the request's SigV4 signature (from the specification) with
/// the fake's secret and compares it with the one sent.
pub fn verify_sigv4(parts: &hyper::http::request::Parts, body: &[u8]) -> Result<(), String> {
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let mut scope = credential.split('/');
    let (key_id, date, region, service) = (
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
    );
    let Some((_, secret)) = KEYS.iter().find(|(k, _)| *k == key_id) else {
        return Err(format!("unknown access key {key_id}"));
    };
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Amz-Date")?;
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let body_hash = hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    let path = if parts.uri.path().is_empty() {
        "/"
    } else {
        parts.uri.path()
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        path,
        parts.uri.query().unwrap_or(""),
        canonical_headers,
        signed_headers,
        body_hash
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(ring::digest::digest(&ring::digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided.".into())
    }
}

// ---- a node as the cloud checks want it, in AWS's shapes -------------------

/// The window's next start: in ten days, within patch.sources's 35.
pub fn next_start() -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(240);
    t.strftime("%Y-%m-%dT02:00:00Z").to_string()
}

pub fn days_ago(days: f64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    now - days * 86_400.0
}

impl Cloud {
    /// A node SSM sees as wanted: Online, its group registered for Debian, a
    /// window with the gated patch task, a clean install three days ago.
    pub fn healthy(node: &str, group: &str, window: &str) -> Cloud {
        Cloud {
            instances: vec![json!({
                "InstanceId": node, "PingStatus": "Online", "LastPingDateTime": days_ago(0.001),
                "AgentVersion": "3.3.40.0", "IsLatestVersion": true, "PlatformType": "Linux",
                "PlatformName": "Debian GNU/Linux", "PlatformVersion": "12", "ResourceType": "ManagedInstance"
            })],
            patch_groups: vec![json!({
                "PatchGroup": group,
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
            patch_states: vec![patch_state(node, group, 0)],
            instance_patches: vec![],
            windows: vec![(
                window.into(),
                json!({
                    "WindowId": window, "Name": "production-linux", "Duration": 4, "Cutoff": 1, "Schedule": "cron(0 2 ? * SUN#3 *)", "Enabled": true
                }),
            )],
            window_tasks: vec![(
                window.into(),
                vec![json!({
                    "WindowId": window, "WindowTaskId": "task-1", "TaskArn": "AWS-RunPatchBaselineWithHooks", "Type": "RUN_COMMAND",
                    "MaxConcurrency": "25%", "MaxErrors": "10%", "Priority": 1
                })],
            )],
            task_details: vec![(
                (window.into(), "task-1".into()),
                gated_task(window, Some("SSMPreflight-Gate")),
            )],
            patch_document: Some(patch_document()),
            snapshot: Snapshot::default(),
            // Last month's install, which succeeded.
            runs: vec![Run::patch(
                node,
                "AWS-RunPatchBaselineWithHooks",
                24.0 * 20.0,
                "Success",
                0,
            )],
            associations: vec![],
        }
    }
}

pub fn patch_state(node: &str, group: &str, failed: i64) -> Value {
    json!({
        "InstanceId": node, "PatchGroup": group, "BaselineId": "pb-0debian000000001",
        "OperationStartTime": days_ago(3.01), "OperationEndTime": days_ago(3.0), "Operation": "Install",
        "InstalledCount": 40, "InstalledOtherCount": 0, "MissingCount": 0, "FailedCount": failed,
        "NotApplicableCount": 100, "InstalledPendingRebootCount": 0, "CriticalNonCompliantCount": 0
    })
}

pub fn gated_task(window: &str, hook: Option<&str>) -> Value {
    let mut parameters = json!({"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]});
    if let Some(h) = hook {
        parameters["PreInstallHookDocName"] = json!([h]);
    }
    json!({
        "WindowId": window, "WindowTaskId": "task-1", "TaskArn": "AWS-RunPatchBaselineWithHooks", "TaskType": "RUN_COMMAND",
        "TaskInvocationParameters": {"RunCommand": {"Parameters": parameters}}, "Priority": 1
    })
}

/// The SDK as a reader of the fake's answers (the Compliance console, an
/// operator's script), with the fake's credentials.
pub fn sdk_client(addr: std::net::SocketAddr) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
            .endpoint_url(format!("http://{addr}"))
            .http_client(ssm_preflight::aws::sdk_http_client())
            .credentials_provider(aws_credential_types::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .build(),
    )
}
