//! A loopback fake of SSM as an operator's `ssm-preflight fleet` reads it: a
//! synthetic fleet of managed nodes in patch groups, their
//! `Custom:PatchPreflight` compliance, registered patch groups and
//! maintenance windows — with AWS's page limits (a MaxResults over the
//! documented maximum is a ValidationException), opaque NextTokens, SigV4
//! checked on every call, a latency per call, ThrottlingException on a
//! share of calls, and AccessDenied / ExpiredToken on demand.

// Errors here are the HTTP answer itself, returned to hyper at once.
#![allow(clippy::result_large_err)]

use super::fake_ssm::{error, filter_values, ok, verify_sigv4};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A node's last report: how old, and its NON_COMPLIANT checks with
/// whether its gate blocks on each (empty: compliant).
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub age_s: f64,
    pub failing: Vec<(&'static str, bool)>,
}

#[derive(Debug, Clone, Default)]
pub struct FleetNode {
    pub id: String,
    /// The patch group, and the tag key it is written under.
    pub group: Option<(String, &'static str)>,
    /// Its other tags (Role = web, …).
    pub tags: Vec<(String, String)>,
    pub ping: &'static str,
    pub report: Option<NodeReport>,
}

impl FleetNode {
    /// Every tag it carries, the patch group's included.
    fn all_tags(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some((g, k)) = &self.group {
            out.push((k, g.as_str()));
        }
        out
    }
}

/// A target registered with a window: every condition must match.
#[derive(Debug, Clone)]
pub struct FleetTarget {
    pub id: String,
    pub conditions: Vec<(String, Vec<String>)>,
}

impl FleetTarget {
    pub fn new(id: &str, conditions: &[(&str, &[&str])]) -> FleetTarget {
        FleetTarget {
            id: id.into(),
            conditions: conditions
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|x| x.to_string()).collect()))
                .collect(),
        }
    }
}

/// A window's task (AWS-RunPatchBaselineWithHooks, or another document).
#[derive(Debug, Clone)]
pub struct FleetTask {
    pub id: String,
    pub document: String,
    /// "Install" or "Scan".
    pub operation: &'static str,
    /// The task's targets: `WindowTargetIds` or `InstanceIds`, and values.
    pub targets: (&'static str, Vec<String>),
    pub max_errors: String,
    pub max_concurrency: String,
    pub hook: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FleetWindow {
    pub id: String,
    pub name: String,
    pub targets: Vec<FleetTarget>,
    pub tasks: Vec<FleetTask>,
    pub next_start: String,
    pub enabled: bool,
}

impl FleetWindow {
    /// A window with one gated Install task over all its targets.
    pub fn install(
        id: &str,
        name: &str,
        targets: Vec<FleetTarget>,
        max_errors: &str,
        max_concurrency: &str,
        next_start: &str,
    ) -> FleetWindow {
        let ids = targets.iter().map(|t| t.id.clone()).collect();
        FleetWindow {
            id: id.into(),
            name: name.into(),
            targets,
            tasks: vec![FleetTask {
                id: format!("task-{id}-install"),
                document: "AWS-RunPatchBaselineWithHooks".into(),
                operation: "Install",
                targets: ("WindowTargetIds", ids),
                max_errors: max_errors.into(),
                max_concurrency: max_concurrency.into(),
                hook: Some("SSMPreflight-Gate".into()),
            }],
            next_start: next_start.into(),
            enabled: true,
        }
    }
}

#[derive(Default)]
pub struct Fleet {
    pub nodes: Vec<FleetNode>,
    pub windows: Vec<FleetWindow>,
    /// Patch groups registered with a baseline (DescribePatchGroups).
    pub registered: Vec<String>,
    pub latency: Duration,
    /// Every n-th call is throttled (0: none).
    pub throttle_every: usize,
    /// A rate limit as SSM's: a bucket of `burst` calls refilled at
    /// `per_sec`; a call that finds it empty is throttled.
    pub rate_limit: Option<RateLimit>,
    /// Actions refused with AccessDeniedException ("ListComplianceItems", …).
    pub deny: Vec<String>,
    /// Every call refused with ExpiredTokenException.
    pub expired: bool,
    /// Calls by action, throttled ones included.
    pub calls: BTreeMap<String, usize>,
    pub throttled: usize,
    /// Throttled calls by action.
    pub throttled_by_action: BTreeMap<String, usize>,
    /// The largest MaxResults each action was asked with.
    pub max_results: BTreeMap<String, i64>,
    pub bad_signatures: usize,
    /// Every list answered a page of one, whatever MaxResults asked.
    pub page_by_one: bool,
    /// Nodes whose ListComplianceItems answers InvalidResourceId (gone
    /// since the listing).
    pub invalid: Vec<String>,
    /// Resource groups by name: each member's (ResourceType, ResourceArn),
    /// for Resource Groups' ListGroupResources.
    pub resource_groups: BTreeMap<String, Vec<(String, String)>>,
    /// State Manager associations, each an AssociationDescription
    /// (ListAssociations lists them by document, DescribeAssociation
    /// answers one).
    pub associations: Vec<Value>,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: f64,
    tokens: f64,
    last: Option<std::time::Instant>,
}

impl RateLimit {
    pub fn new(per_sec: f64, burst: f64) -> RateLimit {
        RateLimit {
            per_sec,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token; false when the bucket is empty.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        if let Some(last) = self.last {
            self.tokens = (self.tokens + now.duration_since(last).as_secs_f64() * self.per_sec)
                .min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub type Shared = Arc<Mutex<Fleet>>;

pub const PRODUCTION: &str = "production-linux";
pub const STAGING: &str = "staging-linux";
pub const DEV: &str = "dev-linux";
pub const BATCH: &str = "batch-linux";
pub const WINDOW_PROD: &str = "mw-0a000000000000001";
pub const WINDOW_NONPROD: &str = "mw-0b000000000000002";

/// One group's mix, in per mille of its nodes.
struct Mix {
    group: &'static str,
    blocked: usize,
    stale: usize,
    silent: usize,
    offline: usize,
    /// NON_COMPLIANT on a check the gate does not block on: ready.
    ignored: usize,
}

/// The synthetic fleet's four groups: production 4 % failing (under its
/// window's 10 %), staging exactly 10 % (at it), dev 20 % (over it), batch
/// 4 % with no window (under --max-blocked's default 10 %).
const MIXES: [Mix; 4] = [
    Mix {
        group: PRODUCTION,
        blocked: 24,
        stale: 20,
        silent: 8,
        offline: 8,
        ignored: 10,
    },
    Mix {
        group: STAGING,
        blocked: 60,
        stale: 0,
        silent: 20,
        offline: 20,
        ignored: 0,
    },
    Mix {
        group: DEV,
        blocked: 120,
        stale: 0,
        silent: 40,
        offline: 40,
        ignored: 0,
    },
    Mix {
        group: BATCH,
        blocked: 40,
        stale: 0,
        silent: 0,
        offline: 0,
        ignored: 0,
    },
];

/// Counts per group the synthetic fleet has, for `per_group` nodes each:
/// (group, ready, blocked, stale, silent, offline).
pub fn expected(per_group: usize) -> Vec<(&'static str, [usize; 5])> {
    MIXES
        .iter()
        .map(|m| {
            let n = |pm: usize| per_group * pm / 1000;
            let bad = n(m.blocked) + n(m.stale) + n(m.silent) + n(m.offline);
            (
                m.group,
                [
                    per_group - bad,
                    n(m.blocked),
                    n(m.stale),
                    n(m.silent),
                    n(m.offline),
                ],
            )
        })
        .collect()
}

impl Fleet {
    /// `per_group` nodes in each of four patch groups (a multiple of 250
    /// keeps every share exact), every tenth under the `PatchGroup` key,
    /// and `ungrouped` managed nodes with no group that never reported.
    pub fn synthetic(per_group: usize, ungrouped: usize) -> Fleet {
        let mut nodes = Vec::new();
        let mut serial = 0usize;
        for m in &MIXES {
            let n = |pm: usize| per_group * pm / 1000;
            for i in 0..per_group {
                serial += 1;
                let key = if serial.is_multiple_of(10) {
                    "PatchGroup"
                } else {
                    "Patch Group"
                };
                let fresh = |failing| {
                    Some(NodeReport {
                        age_s: 3600.0,
                        failing,
                    })
                };
                let mut at = i;
                let mut take = |k: usize| {
                    let hit = at < k;
                    at = at.saturating_sub(k);
                    hit
                };
                let (ping, report) = if take(n(m.blocked)) {
                    // Some blocked nodes' reports predate the Gate detail.
                    let legacy = i % 7 == 0;
                    let failing = if legacy {
                        vec![("disk.var", true), ("LEGACY", true)]
                    } else {
                        vec![("disk.var", true), ("repo.reachable", false)]
                    };
                    ("Online", fresh(failing))
                } else if take(n(m.stale)) {
                    (
                        "Online",
                        Some(NodeReport {
                            age_s: 3.0 * 86_400.0,
                            failing: vec![],
                        }),
                    )
                } else if take(n(m.silent)) {
                    ("Online", None)
                } else if take(n(m.offline)) {
                    ("ConnectionLost", fresh(vec![]))
                } else if take(n(m.ignored)) {
                    ("Online", fresh(vec![("repo.reachable", false)]))
                } else {
                    ("Online", fresh(vec![]))
                };
                nodes.push(FleetNode {
                    id: format!("i-{serial:017x}"),
                    group: Some((m.group.to_string(), key)),
                    ping,
                    report,
                    ..FleetNode::default()
                });
            }
        }
        for _ in 0..ungrouped {
            serial += 1;
            nodes.push(FleetNode {
                id: format!("i-{serial:017x}"),
                ping: "Online",
                ..FleetNode::default()
            });
        }
        // One registered target per tag key: a node carries one of them,
        // and one target with both keys would reach only nodes with both.
        let both = |window: &str, groups: &[&str]| {
            vec![
                FleetTarget::new(&format!("{window}-pg"), &[("tag:Patch Group", groups)]),
                FleetTarget::new(&format!("{window}-pg2"), &[("tag:PatchGroup", groups)]),
            ]
        };
        Fleet {
            nodes,
            windows: vec![
                FleetWindow::install(
                    WINDOW_PROD,
                    "production",
                    both("prod", &[PRODUCTION]),
                    "10%",
                    "25%",
                    "2026-12-20T02:00Z",
                ),
                FleetWindow::install(
                    WINDOW_NONPROD,
                    "non-production",
                    both("nonprod", &[STAGING, DEV]),
                    "10%",
                    "10%",
                    "2026-12-13T02:00Z",
                ),
            ],
            registered: vec![PRODUCTION.into(), STAGING.into(), DEV.into(), BATCH.into()],
            ..Fleet::default()
        }
    }

    /// Online nodes with a fresh NON_COMPLIANT report: one
    /// ListComplianceItems call each.
    pub fn fresh_non_compliant(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| {
                n.ping == "Online"
                    && n.report
                        .as_ref()
                        .is_some_and(|r| !r.failing.is_empty() && r.age_s < 86_400.0)
            })
            .count()
    }

    pub fn total_calls(&self) -> usize {
        self.calls.values().sum()
    }
}

pub async fn start(fleet: Fleet) -> (Shared, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared: Shared = Arc::new(Mutex::new(fleet));
    let state = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    },
                );
                super::fake_aws::serve_one(tcp, None, service).await;
            });
        }
    });
    (shared, addr)
}

/// A page of `items` from the request's NextToken (an opaque offset); only
/// the page's items are rendered, so a page costs the same at any offset.
fn page<T>(
    s: &Fleet,
    items: &[T],
    render: impl Fn(&T) -> Value,
    input: &Value,
    size: usize,
    field: &str,
) -> Result<Value, hyper::Response<Full<Bytes>>> {
    let start = match input["NextToken"].as_str() {
        None => 0,
        Some(t) => match t
            .strip_prefix("fake-page-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n <= items.len() => n,
            _ => {
                return Err(error(
                    400,
                    "InvalidNextToken",
                    "The specified token is not valid.",
                ))
            }
        },
    };
    let size = if s.page_by_one { 1 } else { size };
    let end = (start + size).min(items.len());
    let rendered: Vec<Value> = items[start..end].iter().map(render).collect();
    let mut out = json!({ field: rendered });
    if end < items.len() {
        out["NextToken"] = json!(format!("fake-page-{end}"));
    }
    Ok(out)
}

/// The page size asked for, within AWS's documented range for the action.
fn page_size(
    input: &Value,
    min: i64,
    max: i64,
    default: i64,
) -> Result<usize, hyper::Response<Full<Bytes>>> {
    match input["MaxResults"].as_i64() {
        None => Ok(default as usize),
        Some(n) if (min..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(error(400, "ValidationException", &format!("1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {max}"))),
    }
}

fn report_time(age_s: f64) -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - age_s
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    state: &Shared,
) -> hyper::Response<Full<Bytes>> {
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
    // Resource Groups is a REST-JSON API: the operation is the path.
    let action = if target.is_empty() && parts.uri.path() == "/list-group-resources" {
        "ListGroupResources".to_string()
    } else {
        target.trim_start_matches("AmazonSSM.").to_string()
    };
    let latency = {
        let mut s = state.lock().unwrap();
        *s.calls.entry(action.clone()).or_default() += 1;
        s.latency
    };
    tokio::time::sleep(latency).await;
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
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    if s.expired {
        return error(
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        );
    }
    if s.deny.contains(&action) && action == "ListGroupResources" {
        return error(403, "ForbiddenException", "User: arn:aws:sts::123456789012:assumed-role/PatchOperator/alice is not authorized to perform: resource-groups:ListGroupResources because no identity-based policy allows the resource-groups:ListGroupResources action");
    }
    if s.deny.contains(&action) {
        return error(400, "AccessDeniedException", &format!("User: arn:aws:sts::123456789012:assumed-role/PatchOperator/alice is not authorized to perform: ssm:{action} because no identity-based policy allows the ssm:{action} action"));
    }
    let over_rate = s.rate_limit.as_mut().is_some_and(|r| !r.take());
    if over_rate || (s.throttle_every > 0 && s.total_calls().is_multiple_of(s.throttle_every)) {
        s.throttled += 1;
        *s.throttled_by_action.entry(action.clone()).or_default() += 1;
        return error(400, "ThrottlingException", "Rate exceeded");
    }
    if let Some(n) = input["MaxResults"].as_i64() {
        let seen = s.max_results.entry(action.clone()).or_insert(n);
        *seen = (*seen).max(n);
    }
    let answer = match action.as_str() {
        "DescribeInstanceInformation" => describe_instances(&s, &input),
        "ListResourceComplianceSummaries" => summaries(&s, &input),
        "ListComplianceItems" => items(&s, &input),
        "DescribePatchGroups" => page_size(&input, 1, 100, 100).and_then(|size| {
            let render = |g: &String| json!({"PatchGroup": g, "BaselineIdentity": {"BaselineId": "pb-0debian000000001", "BaselineName": "prod-debian", "OperatingSystem": "DEBIAN", "DefaultBaseline": false}});
            page(&s, &s.registered, render, &input, size, "Mappings")
        }),
        "DescribeMaintenanceWindows" => page_size(&input, 10, 100, 10).and_then(|size| {
            let render = |w: &FleetWindow| {
                let mut v = json!({"WindowId": w.id, "Name": w.name, "Enabled": w.enabled, "Duration": 4, "Cutoff": 1,
                                   "Schedule": "cron(0 2 ? * SUN#3 *)"});
                // A disabled window has no next execution.
                if w.enabled {
                    v["NextExecutionTime"] = json!(w.next_start);
                }
                v
            };
            page(&s, &s.windows, render, &input, size, "WindowIdentities")
        }),
        "GetMaintenanceWindow" => window(&s, &input).map(|w| {
            let mut v = json!({"WindowId": w.id, "Name": w.name, "Enabled": w.enabled, "Duration": 4, "Cutoff": 1,
                               "Schedule": "cron(0 2 ? * SUN#3 *)"});
            if w.enabled {
                v["NextExecutionTime"] = json!(w.next_start);
            }
            v
        }),
        "DescribeMaintenanceWindowTasks" => page_size(&input, 10, 100, 10).and_then(|size| {
            let w = window(&s, &input)?;
            let render = |t: &FleetTask| {
                json!({"WindowId": w.id, "WindowTaskId": t.id, "TaskArn": t.document, "Type": "RUN_COMMAND",
                       "Targets": [{"Key": t.targets.0, "Values": t.targets.1}],
                       "MaxConcurrency": t.max_concurrency, "MaxErrors": t.max_errors, "Priority": 1})
            };
            page(&s, &w.tasks, render, &input, size, "Tasks")
        }),
        "GetMaintenanceWindowTask" => window(&s, &input).and_then(|w| {
            let id = input["WindowTaskId"].as_str().unwrap_or_default();
            let t = w.tasks.iter().find(|t| t.id == id).ok_or_else(|| {
                error(400, "DoesNotExistException", &format!("Maintenance window task {id} does not exist"))
            })?;
            let mut parameters = json!({"Operation": [t.operation], "RebootOption": ["RebootIfNeeded"]});
            if let Some(h) = &t.hook {
                parameters["PreInstallHookDocName"] = json!([h]);
            }
            Ok(json!({"WindowId": w.id, "WindowTaskId": t.id, "TaskArn": t.document, "TaskType": "RUN_COMMAND",
                   "Targets": [{"Key": t.targets.0, "Values": t.targets.1}],
                   "MaxConcurrency": t.max_concurrency, "MaxErrors": t.max_errors,
                   "TaskInvocationParameters": {"RunCommand": {"Parameters": parameters}}}))
        }),
        "DescribeMaintenanceWindowTargets" => page_size(&input, 10, 100, 10).and_then(|size| {
            let w = window(&s, &input)?;
            let render = |t: &FleetTarget| {
                let conditions: Vec<Value> = t.conditions.iter().map(|(k, v)| json!({"Key": k, "Values": v})).collect();
                let kind = if t.conditions.iter().any(|(k, _)| k.starts_with("resource-groups:")) { "RESOURCE_GROUP" } else { "INSTANCE" };
                json!({"WindowId": w.id, "WindowTargetId": t.id, "ResourceType": kind, "Targets": conditions})
            };
            page(&s, &w.targets, render, &input, size, "Targets")
        }),
        "ListGroupResources" => page_size(&input, 1, 50, 50).and_then(|size| {
            let name = input["Group"].as_str().unwrap_or_default();
            let members = s.resource_groups.get(name).ok_or_else(|| {
                error(404, "NotFoundException", &format!("Cannot find group {name}."))
            })?;
            let render = |(kind, arn): &(String, String)| json!({"Identifier": {"ResourceArn": arn, "ResourceType": kind}});
            let mut out = page(&s, members, render, &input, size, "Resources")?;
            // The deprecated field AWS still fills beside Resources.
            out["ResourceIdentifiers"] = json!(out["Resources"].as_array().unwrap().iter().map(|r| r["Identifier"].clone()).collect::<Vec<_>>());
            Ok(out)
        }),
        "ListAssociations" => page_size(&input, 1, 50, 50).and_then(|size| {
            // As SSM: filters AND, a Name filter keeps that document's.
            let filters = input["AssociationFilterList"].as_array().cloned().unwrap_or_default();
            let kept: Vec<&Value> = s
                .associations
                .iter()
                .filter(|a| filters.iter().all(|f| f["key"] != "Name" || a["Name"] == f["value"]))
                .collect();
            let render = |a: &&Value| json!({
                "Name": a["Name"], "AssociationId": a["AssociationId"], "AssociationVersion": "1",
                "AssociationName": a["AssociationName"], "Targets": a["Targets"],
                "ScheduleExpression": a["ScheduleExpression"], "Overview": a["Overview"]
            });
            page(&s, &kept, render, &input, size, "Associations")
        }),
        "DescribeAssociation" => {
            let id = input["AssociationId"].as_str().unwrap_or_default();
            s.associations
                .iter()
                .find(|a| a["AssociationId"] == id)
                .map(|a| json!({ "AssociationDescription": a }))
                .ok_or_else(|| error(400, "AssociationDoesNotExist", &format!("Association {id} does not exist.")))
        }
        other => Err(error(400, "UnknownOperationException", &format!("the fake fleet does not serve {other}"))),
    };
    match answer {
        Ok(v) => ok(v),
        Err(e) => e,
    }
}

fn window<'a>(
    s: &'a Fleet,
    input: &Value,
) -> Result<&'a FleetWindow, hyper::Response<Full<Bytes>>> {
    let id = input["WindowId"].as_str().unwrap_or_default();
    s.windows.iter().find(|w| w.id == id).ok_or_else(|| {
        error(
            400,
            "DoesNotExistException",
            &format!("Maintenance window {id} does not exist"),
        )
    })
}

fn describe_instances(s: &Fleet, input: &Value) -> Result<Value, hyper::Response<Full<Bytes>>> {
    let size = page_size(input, 5, 50, 10)?;
    let filters: Vec<(String, Vec<String>)> = input["Filters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let values = f["Values"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            (f["Key"].as_str().unwrap_or_default().to_string(), values)
        })
        .collect();
    let is_tag = |k: &str| k.starts_with("tag:") || k == "tag-key";
    // As the API reference says: tag filters can't be combined with other
    // filter types.
    if filters.iter().any(|(k, _)| is_tag(k)) && filters.iter().any(|(k, _)| !is_tag(k)) {
        return Err(error(
            400,
            "InvalidFilter",
            "Tag filters can't be combined with other filter types.",
        ));
    }
    for (k, _) in &filters {
        if !is_tag(k) && k != "InstanceIds" {
            return Err(error(
                400,
                "InvalidFilterKey",
                &format!("The specified filter key {k} is not valid."),
            ));
        }
    }
    // Every filter must match (AND); the values of one are alternatives.
    let matches = |n: &FleetNode| {
        let tags = n.all_tags();
        filters.iter().all(|(key, values)| {
            if key == "InstanceIds" {
                values.contains(&n.id)
            } else if key == "tag-key" {
                tags.iter().any(|(k, _)| values.iter().any(|v| v == k))
            } else {
                let want = key.strip_prefix("tag:").unwrap_or_default();
                tags.iter()
                    .any(|(k, v)| *k == want && values.iter().any(|x| x == v))
            }
        })
    };
    let found: Vec<&FleetNode> = s.nodes.iter().filter(|n| matches(n)).collect();
    let render = |n: &&FleetNode| {
        json!({"InstanceId": n.id, "PingStatus": n.ping, "LastPingDateTime": report_time(60.0),
               "AgentVersion": "3.3.1142.0", "PlatformType": "Linux", "PlatformName": "Debian GNU/Linux",
               "PlatformVersion": "12", "ResourceType": "EC2Instance"})
    };
    page(s, &found, render, input, size, "InstanceInformationList")
}

fn summaries(s: &Fleet, input: &Value) -> Result<Value, hyper::Response<Full<Bytes>>> {
    let size = page_size(input, 1, 50, 50)?;
    let types = filter_values(&input["Filters"], "ComplianceType").unwrap_or_default();
    if types != ["Custom:PatchPreflight"] {
        return Err(error(
            400,
            "ValidationException",
            "the fake fleet answers for ComplianceType = Custom:PatchPreflight only",
        ));
    }
    let reported: Vec<&FleetNode> = s.nodes.iter().filter(|n| n.report.is_some()).collect();
    let render = |n: &&FleetNode| {
        let r = n.report.as_ref().unwrap();
        let compliant = r.failing.is_empty();
        json!({
                "ComplianceType": "Custom:PatchPreflight", "ResourceType": "ManagedInstance", "ResourceId": n.id,
                "Status": if compliant { "COMPLIANT" } else { "NON_COMPLIANT" },
                "OverallSeverity": if compliant { "UNSPECIFIED" } else { "CRITICAL" },
                "ExecutionSummary": {"ExecutionTime": report_time(r.age_s), "ExecutionId": "run-1", "ExecutionType": "ssm-preflight"},
                "CompliantSummary": {"CompliantCount": 20 - r.failing.len(), "SeveritySummary": {"CriticalCount": 0}},
                "NonCompliantSummary": {"NonCompliantCount": r.failing.len(), "SeveritySummary": {"CriticalCount": r.failing.len()}}
        })
    };
    page(
        s,
        &reported,
        render,
        input,
        size,
        "ResourceComplianceSummaryItems",
    )
}

fn items(s: &Fleet, input: &Value) -> Result<Value, hyper::Response<Full<Bytes>>> {
    let size = page_size(input, 1, 50, 50)?;
    let ids: Vec<&str> = input["ResourceIds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let status = filter_values(&input["Filters"], "Status");
    let types = filter_values(&input["Filters"], "ComplianceType");
    let wants = |t: &str| types.as_ref().is_none_or(|ts| ts.iter().any(|x| x == t));
    let mut out = Vec::new();
    if let Some(gone) = ids.iter().find(|i| s.invalid.iter().any(|x| x == *i)) {
        return Err(error(
            400,
            "InvalidResourceId",
            &format!("The resource ID {gone} is not valid. Verify that you entered the correct ID and try again."),
        ));
    }
    for n in s.nodes.iter().filter(|n| ids.contains(&n.id.as_str())) {
        let Some(r) = &n.report else { continue };
        // Every node with a failing check is also missing a patch: an item
        // of another type, which only a request without the type filter gets.
        if !r.failing.is_empty() && wants("Patch") {
            out.push(json!({
                "ComplianceType": "Patch", "ResourceType": "ManagedInstance", "ResourceId": n.id,
                "Id": "CVE-2026-0001", "Title": "openssl", "Status": "NON_COMPLIANT", "Severity": "CRITICAL",
                "Details": {"Classification": "Security"}
            }));
        }
        if !wants("Custom:PatchPreflight") {
            continue;
        }
        for (check, blocks) in &r.failing {
            if status
                .as_ref()
                .is_some_and(|st| !st.iter().any(|x| x == "NON_COMPLIANT"))
            {
                continue;
            }
            // "LEGACY" marks a report from a version before the Gate detail.
            if *check == "LEGACY" {
                continue;
            }
            let legacy = r.failing.iter().any(|(c, _)| *c == "LEGACY");
            let mut details =
                json!({"Status": "fail", "Summary": format!("{check} failed"), "Version": "0.1.0"});
            if !legacy {
                details["Gate"] = json!(if *blocks { "blocks" } else { "no" });
            }
            out.push(json!({
                "ComplianceType": "Custom:PatchPreflight", "ResourceType": "ManagedInstance", "ResourceId": n.id,
                "Id": check, "Title": check, "Status": "NON_COMPLIANT", "Severity": "CRITICAL", "Details": details,
                "ExecutionSummary": {"ExecutionTime": report_time(r.age_s), "ExecutionId": "run-1", "ExecutionType": "ssm-preflight"}
            }));
        }
    }
    page(s, &out, Value::clone, input, size, "ComplianceItems")
}
