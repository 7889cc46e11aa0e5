//! The fleet as SSM sees it, for `ssm-preflight fleet`: the managed nodes
//! of a patch group or a window's targets (`DescribeInstanceInformation`),
//! every node's `Custom:PatchPreflight` summary
//! (`ListResourceComplianceSummaries`), a non-compliant node's failing
//! checks (`ListComplianceItems`) and the registered patch groups; the
//! windows are read in `windows`, with the same operator. Every list is
//! read at the API's largest page.
//!
//! This is the one place that uses the operator's own credentials through
//! the SDK's default chain (environment, profile, SSO, web identity,
//! container, and IMDS only when the operator runs it on an instance and
//! has not set `AWS_EC2_METADATA_DISABLED`): the command is run by a
//! person or a pipeline, never by the daemon.

use crate::aws::compliance::COMPLIANCE_TYPE;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{
    ComplianceQueryOperatorType, ComplianceStatus, ComplianceStringFilter,
    InstanceInformationStringFilter,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

/// The largest page each list call allows (API reference).
const PAGE_NODES: i32 = 50;
const PAGE_COMPLIANCE: i32 = 50;
const PAGE_PATCH_GROUPS: i32 = 100;
pub(super) const PAGE_WINDOW_TARGETS: i32 = 100;
pub(super) const PAGE_WINDOWS: i32 = 100;
/// ListGroupResources' largest page.
pub(super) const PAGE_GROUP_MEMBERS: i32 = 50;

/// The IAM policy shipped for the operator.
pub const OPERATOR_POLICY: &str = "/usr/share/ssm-preflight/iam/fleet-operator-policy.json";

/// Why the fleet could not be read: each a sentence with what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("{action} was refused ({message}). Add {action} to your IAM policy; {OPERATOR_POLICY} lists every action `ssm-preflight fleet` needs.")]
    Denied {
        action: &'static str,
        message: String,
    },
    #[error("your AWS credentials were refused by {action} ({code}: {message}). Your session has probably expired: sign in again (`aws sso login`, or refresh the profile's credentials) and run the command again.")]
    Session {
        action: &'static str,
        code: String,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{action} got no answer from SSM in {region}: {why}. Check --region (the region must offer Systems Manager), and your network or proxy.")]
    Unreachable {
        action: &'static str,
        region: String,
        why: String,
    },
    #[error(
        "no AWS region: pass --region, set AWS_REGION, or set `region` in your AWS config profile."
    )]
    NoRegion,
    #[error("no usable AWS credentials: {0}. Sign in (`aws sso login`, `aws configure`), or pass --profile.")]
    NoCredentials(String),
    #[error("SSM kept throttling {action} after six attempts ({why}). Other tools are calling SSM in this account and region at the same time: run the view again in a few minutes, or narrow it (--patch-group, --window, a lower --max-detail).")]
    Throttled { action: &'static str, why: String },
    #[error("{0}")]
    Failed(String),
}

/// Calls made to SSM by this process (pages, not retries): the fleet view
/// prints it with `-v`, and the benchmark compares it with the formula.
static CALLS: AtomicUsize = AtomicUsize::new(0);

pub fn calls_made() -> usize {
    CALLS.load(Ordering::Relaxed)
}

pub(super) fn count() {
    CALLS.fetch_add(1, Ordering::Relaxed);
}

/// An SSM client with the operator's credentials, and its region.
pub struct Operator {
    pub client: aws_sdk_ssm::Client,
    /// Resource Groups, for windows that target `resource-groups:Name`.
    pub groups: aws_sdk_resourcegroups::Client,
    pub region: String,
}

/// The operator's client: the default credential and region chains with
/// `--region` and `--profile` as the AWS CLI reads them, bounded calls, and
/// the standard retry mode (jittered exponential backoff per call). Not the
/// adaptive mode: its client-side rate limiter starts from the transmit
/// rate it has measured, which here is one paged chain's (about 50 calls a
/// second) when the failing checks' burst first meets a throttle; it then
/// sends at 0.7 of that and climbs back over seconds. Measured against the
/// fake fleet throttling at 400 calls a second (BENCHMARKS.md): adaptive
/// 14.8 s, standard 6 s, for the same 1,055 calls.
pub async fn operator(region: Option<&str>, profile: Option<&str>) -> Result<Operator, FleetError> {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_credential_types::provider::ProvideCredentials;
    use std::time::Duration;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::aws::sdk_http_client())
        // Short first backoff: an endpoint that refuses the connection is
        // told within seconds; a throttled call waits 0.2–3 s, jittered.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(6)
                .with_initial_backoff(Duration::from_millis(200)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(20))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(p) = profile {
        profile_exists(p).await?;
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let config = loader.load().await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or(FleetError::NoRegion)?;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| FleetError::NoCredentials("no credential provider".into()))?;
    // Resolved once here so a missing or expired login is one clear message,
    // not the first call's dispatch failure.
    provider
        .provide_credentials()
        .await
        .map_err(|e| FleetError::NoCredentials(crate::aws::sdk::source_chain(&e)))?;
    Ok(Operator {
        client: aws_sdk_ssm::Client::new(&config),
        groups: aws_sdk_resourcegroups::Client::new(&config),
        region,
    })
}

/// Whether `--profile` names a profile of the operator's AWS config or
/// credentials file: the SDK's own chain only says, deep in a list of
/// providers, that it found no credentials.
async fn profile_exists(name: &str) -> Result<(), FleetError> {
    use aws_types::os_shim_internal::{Env, Fs};
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let set = aws_config::profile::load(&Fs::real(), &Env::real(), &files, None)
        .await
        .map_err(|e| FleetError::Failed(format!("your AWS config could not be read: {e}. Fix the file it names, or pass --region with credentials in the environment.")))?;
    if set.get_profile(name).is_some() {
        return Ok(());
    }
    let mut known: Vec<&str> = set.profiles().collect();
    known.sort();
    let known = if known.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has {}", known.join(", "))
    };
    Err(FleetError::Failed(format!(
        "there is no profile {name:?} in your AWS config (~/.aws/config, ~/.aws/credentials, or the files AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE name): {known}. Pass one of those to --profile, or add it with `aws configure --profile {name}`."
    )))
}

pub(super) fn classify<E, R>(e: &SdkError<E, R>, action: &'static str, region: &str) -> FleetError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use crate::aws::sdk::FailureKind;
    let failure = crate::aws::sdk::classify(e, action);
    match failure.kind {
        FailureKind::Denied => FleetError::Denied {
            action,
            message: failure.message,
        },
        FailureKind::Expired => FleetError::Session {
            action,
            code: failure.code.unwrap_or_default(),
            message: failure.message,
        },
        FailureKind::Unreachable => FleetError::Unreachable {
            action,
            region: region.to_string(),
            why: failure.text,
        },
        FailureKind::Throttled => FleetError::Throttled {
            action,
            why: failure.text,
        },
        FailureKind::Other => FleetError::Failed(failure.text),
    }
}

/// Every page of a paged call, through the SDK's paginator (which follows
/// NextToken and stops on a repeated one), each counted.
pub(super) async fn all_pages<T, E, R>(
    mut stream: aws_smithy_async::future::pagination_stream::PaginationStream<
        Result<T, SdkError<E, R>>,
    >,
    action: &'static str,
    region: &str,
) -> Result<Vec<T>, FleetError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut out = Vec::new();
    while let Some(page) = stream.next().await {
        count();
        out.push(page.map_err(|e| classify(&e, action, region))?);
    }
    Ok(out)
}

/// A date of an answer; one no check can use counts as none.
fn time(t: &aws_smithy_types::DateTime) -> Option<SystemTime> {
    crate::aws::sdk::aws_date("a date", t).ok()
}

/// A managed node as `DescribeInstanceInformation` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub instance_id: String,
    /// Online, ConnectionLost or Inactive.
    pub ping: String,
    pub last_ping: Option<SystemTime>,
}

/// One filter of a node listing (`tag:Patch Group` = values,
/// `InstanceIds`, `tag-key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeFilter {
    pub key: String,
    pub values: Vec<String>,
}

/// `InstanceIds` filters take at most this many values per call.
const MAX_FILTER_VALUES: usize = 50;

/// Every managed node matching all of `filters` (SSM ANDs filters of
/// different keys; the values of one are alternatives), page by page. An
/// `InstanceIds` filter longer than the API takes is asked in chunks.
pub async fn nodes(op: &Operator, filters: &[NodeFilter]) -> Result<Vec<Node>, FleetError> {
    const ACTION: &str = "ssm:DescribeInstanceInformation";
    let mut out = Vec::new();
    let chunked = filters.iter().position(|f| f.key == "InstanceIds");
    let calls: Vec<Vec<NodeFilter>> = match chunked {
        Some(i) => filters[i]
            .values
            .chunks(MAX_FILTER_VALUES)
            .map(|c| {
                let mut fs = filters.to_vec();
                fs[i].values = c.to_vec();
                fs
            })
            .collect(),
        None => vec![filters.to_vec()],
    };
    for set in calls {
        let mut call = op
            .client
            .describe_instance_information()
            .max_results(PAGE_NODES);
        for f in &set {
            call = call.filters(
                InstanceInformationStringFilter::builder()
                    .key(&f.key)
                    .set_values(Some(f.values.clone()))
                    .build()
                    .map_err(|e| FleetError::Failed(format!("{ACTION}: {e}")))?,
            );
        }
        for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
            for i in page.instance_information_list() {
                let Some(id) = i.instance_id() else { continue };
                out.push(Node {
                    instance_id: id.to_string(),
                    ping: i
                        .ping_status()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    last_ping: i.last_ping_date_time().and_then(time),
                });
            }
        }
    }
    Ok(out)
}

/// A node's last preflight report as SSM summarises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub compliant: bool,
    pub reported_at: Option<SystemTime>,
}

/// Every node's `Custom:PatchPreflight` summary in the region, by node.
pub async fn summaries(op: &Operator) -> Result<HashMap<String, Summary>, FleetError> {
    const ACTION: &str = "ssm:ListResourceComplianceSummaries";
    let filter = ComplianceStringFilter::builder()
        .key("ComplianceType")
        .values(COMPLIANCE_TYPE)
        .r#type(ComplianceQueryOperatorType::Equal)
        .build();
    let call = op
        .client
        .list_resource_compliance_summaries()
        .filters(filter)
        .max_results(PAGE_COMPLIANCE);
    let mut out = HashMap::new();
    for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
        for s in page.resource_compliance_summary_items() {
            let Some(id) = s.resource_id() else { continue };
            out.insert(
                id.to_string(),
                Summary {
                    compliant: s.status() == Some(&ComplianceStatus::Compliant),
                    reported_at: s.execution_summary().and_then(|e| time(e.execution_time())),
                },
            );
        }
    }
    Ok(out)
}

/// A check a node's report marks NON_COMPLIANT, and whether that node's
/// gate blocks on it (`None`: the report predates the `Gate` detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub check: String,
    pub blocks: Option<bool>,
}

/// The NON_COMPLIANT items of one node's report.
pub async fn failing(op: &Operator, instance_id: &str) -> Result<Vec<Failing>, FleetError> {
    const ACTION: &str = "ssm:ListComplianceItems";
    let eq = |k: &str, v: &str| {
        ComplianceStringFilter::builder()
            .key(k)
            .values(v)
            .r#type(ComplianceQueryOperatorType::Equal)
            .build()
    };
    let call = op
        .client
        .list_compliance_items()
        .resource_ids(instance_id)
        .resource_types(crate::aws::compliance::RESOURCE_TYPE)
        .filters(eq("ComplianceType", COMPLIANCE_TYPE))
        .filters(eq("Status", "NON_COMPLIANT"))
        .max_results(PAGE_COMPLIANCE);
    let mut out = Vec::new();
    for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
        for item in page.compliance_items() {
            // Only this tool's items, failing: an answer that carries
            // another type (Patch, Association) is not ours to count.
            if item.status() != Some(&ComplianceStatus::NonCompliant)
                || item.compliance_type() != Some(COMPLIANCE_TYPE)
            {
                continue;
            }
            let Some(id) = item.id() else { continue };
            // A report from before the Gate detail says nothing: None.
            let gate = item
                .details()
                .and_then(|d| d.get(crate::aws::compliance::GATE_DETAIL));
            out.push(Failing {
                check: id.to_string(),
                blocks: gate.map(|g| g == crate::aws::compliance::GATE_BLOCKS),
            });
        }
    }
    Ok(out)
}

/// The patch groups registered with a baseline (`DescribePatchGroups`).
pub async fn patch_groups(op: &Operator) -> Result<Vec<String>, FleetError> {
    const ACTION: &str = "ssm:DescribePatchGroups";
    let call = op
        .client
        .describe_patch_groups()
        .max_results(PAGE_PATCH_GROUPS);
    let mut out: Vec<String> = Vec::new();
    for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
        for m in page.mappings() {
            if let Some(g) = m.patch_group() {
                if !out.iter().any(|x| x == g) {
                    out.push(g.to_string());
                }
            }
        }
    }
    Ok(out)
}
