//! How SSM and Patch Manager see this node, each answer read into a plain
//! struct for a pure verdict: its ping (`DescribeInstanceInformation`), the
//! baseline its patch group gets (`DescribePatchGroups`,
//! `GetDefaultPatchBaseline`, `GetPatchBaseline`), its last patch operation
//! (`DescribeInstancePatchStates`, `DescribeInstancePatches`) and its
//! windows' patch tasks (`DescribeMaintenanceWindowTasks`,
//! `GetMaintenanceWindowTask`, `GetMaintenanceWindow`). Each is one request
//! (or one per window or task), bounded by the SDK's timeouts.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_maintenance_window_task::GetMaintenanceWindowTaskOutput;
use aws_sdk_ssm::types::MaintenanceWindowTask;
use std::time::SystemTime;

/// Why a call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// AccessDeniedException: the node's role lacks `action`.
    Denied {
        action: &'static str,
        message: String,
    },
    /// Anything else: the sentence says what happened.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Denied { action, message } => {
                write!(f, "{action} answered AccessDeniedException: {message}")
            }
            CallError::Failed(why) => f.write_str(why),
        }
    }
}

pub fn classify<E, R>(e: &SdkError<E, R>, action: &'static str) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let failure = super::sdk::classify(e, action);
    match failure.kind {
        super::sdk::FailureKind::Denied => CallError::Denied {
            action,
            message: failure.message,
        },
        _ => CallError::Failed(failure.text),
    }
}

/// A date of the answer, or the call's error naming the field.
fn time(field: &'static str, t: &aws_smithy_types::DateTime) -> Result<SystemTime, CallError> {
    super::sdk::aws_date(field, t).map_err(|e| CallError::Failed(e.to_string()))
}

/// A count of the answer; SSM's are never negative, so one that is makes
/// the answer unusable rather than a "-3 failed" in a summary.
fn count(field: &'static str, n: i32) -> Result<i32, CallError> {
    if n < 0 {
        return Err(CallError::Failed(format!(
            "{field} is {n}: a negative count, so the answer is not one this tool can use"
        )));
    }
    Ok(n)
}

/// The answer is about `instance_id`, or the call's error naming both.
fn about(action: &str, instance_id: &str, answered: Option<&str>) -> Result<(), CallError> {
    match answered {
        Some(id) if id == instance_id => Ok(()),
        other => Err(CallError::Failed(format!(
            "{action} answered about {}, not {instance_id}: SSM's answer is not about this node",
            other.unwrap_or("no instance")
        ))),
    }
}

/// The node as `DescribeInstanceInformation` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub ping: String,
    pub last_ping: Option<SystemTime>,
    pub agent_version: Option<String>,
    pub is_latest_version: Option<bool>,
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
}

/// `None` when SSM does not know the node.
pub async fn node(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
) -> Result<Option<NodeInfo>, CallError> {
    use aws_sdk_ssm::types::InstanceInformationStringFilter;
    const ACTION: &str = "ssm:DescribeInstanceInformation";
    let filter = InstanceInformationStringFilter::builder()
        .key("InstanceIds")
        .values(instance_id)
        .build()
        .map_err(|e| CallError::Failed(e.to_string()))?;
    let out = ssm
        .describe_instance_information()
        .filters(filter)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    let Some(i) = out.instance_information_list().first() else {
        return Ok(None);
    };
    about(ACTION, instance_id, i.instance_id())?;
    Ok(Some(NodeInfo {
        ping: i
            .ping_status()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        last_ping: i
            .last_ping_date_time()
            .map(|t| time("LastPingDateTime", t))
            .transpose()?,
        agent_version: i.agent_version().map(str::to_string),
        is_latest_version: i.is_latest_version(),
        platform_name: i.platform_name().map(str::to_string),
        platform_version: i.platform_version().map(str::to_string),
    }))
}

/// A patch baseline as a verdict needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baseline {
    pub id: String,
    pub name: String,
    pub operating_system: String,
    /// Each approval rule's auto-approval delay, in days.
    pub approve_after_days: Vec<i32>,
    /// Approval rules, whatever their kind of delay.
    pub rules: usize,
    /// A rule approves non-security updates (`EnableNonSecurity`), or the
    /// approved list may hold them (`ApprovedPatchesEnableNonSecurity`).
    pub non_security: bool,
    pub approved: usize,
    pub rejected: usize,
}

/// The baselines registered for `group`, as (operating system, baseline ID, name).
pub async fn group_baselines(
    ssm: &aws_sdk_ssm::Client,
    group: &str,
) -> Result<Vec<(String, String, String)>, CallError> {
    use aws_sdk_ssm::types::PatchOrchestratorFilter;
    const ACTION: &str = "ssm:DescribePatchGroups";
    let filter = PatchOrchestratorFilter::builder()
        .key("NAME_PREFIX")
        .values(group)
        .build();
    let out = ssm
        .describe_patch_groups()
        .filters(filter)
        .max_results(100)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    Ok(out
        .mappings()
        .iter()
        // NAME_PREFIX matches prefixes: keep the group itself.
        .filter(|m| m.patch_group() == Some(group))
        .filter_map(|m| {
            let b = m.baseline_identity()?;
            Some((
                b.operating_system()
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_default(),
                b.baseline_id()?.to_string(),
                b.baseline_name().unwrap_or_default().to_string(),
            ))
        })
        .collect())
}

/// The default baseline's ID for an operating system.
pub async fn default_baseline(ssm: &aws_sdk_ssm::Client, os: &str) -> Result<String, CallError> {
    use aws_sdk_ssm::types::OperatingSystem;
    const ACTION: &str = "ssm:GetDefaultPatchBaseline";
    let out = ssm
        .get_default_patch_baseline()
        .operating_system(OperatingSystem::from(os))
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    out.baseline_id()
        .map(str::to_string)
        .ok_or_else(|| CallError::Failed(format!("{ACTION} named no baseline for {os}")))
}

pub async fn baseline(ssm: &aws_sdk_ssm::Client, id: &str) -> Result<Baseline, CallError> {
    const ACTION: &str = "ssm:GetPatchBaseline";
    let out = ssm
        .get_patch_baseline()
        .baseline_id(id)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    Ok(Baseline {
        id: out.baseline_id().unwrap_or(id).to_string(),
        name: out.name().unwrap_or_default().to_string(),
        operating_system: out
            .operating_system()
            .map(|o| o.as_str().to_string())
            .unwrap_or_default(),
        approve_after_days: out
            .approval_rules()
            .map(|g| {
                g.patch_rules()
                    .iter()
                    .filter_map(|r| r.approve_after_days())
                    .collect()
            })
            .unwrap_or_default(),
        rules: out
            .approval_rules()
            .map(|g| g.patch_rules().len())
            .unwrap_or(0),
        non_security: out.approved_patches_enable_non_security().unwrap_or(false)
            || out.approval_rules().is_some_and(|g| {
                g.patch_rules()
                    .iter()
                    .any(|r| r.enable_non_security().unwrap_or(false))
            }),
        approved: out.approved_patches().len(),
        rejected: out.rejected_patches().len(),
    })
}

/// The node's last patch operation as `DescribeInstancePatchStates` has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatchState {
    pub operation: String,
    pub started: Option<SystemTime>,
    pub ended: Option<SystemTime>,
    pub patch_group: String,
    pub baseline_id: String,
    pub failed: i32,
    pub missing: i32,
    pub installed_pending_reboot: i32,
    pub critical_non_compliant: i32,
}

/// `None` when SSM has no patch state for the node (never scanned).
pub async fn patch_state(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
) -> Result<Option<PatchState>, CallError> {
    const ACTION: &str = "ssm:DescribeInstancePatchStates";
    let out = ssm
        .describe_instance_patch_states()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    let Some(s) = out.instance_patch_states().first() else {
        return Ok(None);
    };
    Ok(Some(PatchState {
        operation: s.operation().as_str().to_string(),
        started: Some(time("OperationStartTime", s.operation_start_time())?),
        ended: Some(time("OperationEndTime", s.operation_end_time())?),
        patch_group: s.patch_group().to_string(),
        baseline_id: s.baseline_id().to_string(),
        failed: count("FailedCount", s.failed_count())?,
        missing: count("MissingCount", s.missing_count())?,
        installed_pending_reboot: count(
            "InstalledPendingRebootCount",
            s.installed_pending_reboot_count().unwrap_or(0),
        )?,
        critical_non_compliant: count(
            "CriticalNonCompliantCount",
            s.critical_non_compliant_count().unwrap_or(0),
        )?,
    }))
}

/// The titles of the node's patches in state FAILED, at most `limit`.
pub async fn failed_patches(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
    limit: usize,
) -> Result<Vec<String>, CallError> {
    use aws_sdk_ssm::types::PatchOrchestratorFilter;
    const ACTION: &str = "ssm:DescribeInstancePatches";
    let out = ssm
        .describe_instance_patches()
        .instance_id(instance_id)
        .filters(
            PatchOrchestratorFilter::builder()
                .key("State")
                .values("Failed")
                .build(),
        )
        .max_results(50)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    Ok(out
        .patches()
        .iter()
        .take(limit)
        .map(|p| p.title().to_string())
        .collect())
}

/// A window's patch task as `patch.sources` judges it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatchTask {
    pub document: String,
    pub operation: Option<String>,
    pub reboot_option: Option<String>,
    pub pre_install_hook: Option<String>,
    /// The `BaselineOverride` parameter: a baseline used instead of the
    /// patch group's.
    pub baseline_override: Option<String>,
    pub max_concurrency: Option<String>,
    pub max_errors: Option<String>,
    /// Its ID in the window (`WindowTaskId`).
    pub task_id: String,
    /// The task's own targets, as (key, values): `WindowTargetIds` naming
    /// registered targets, or `InstanceIds`.
    pub targets: Vec<(String, Vec<String>)>,
}

/// One window: its length and cutoff (hours), and its patch tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowTasks {
    pub window_id: String,
    pub name: String,
    /// A disabled window runs nothing.
    pub enabled: bool,
    pub duration_hours: Option<i32>,
    pub cutoff_hours: i32,
    /// The next start SSM schedules (`NextExecutionTime`), if any.
    pub next_execution: Option<String>,
    pub patch_tasks: Vec<PatchTask>,
    /// Tasks that run something else (their document or ARN).
    pub other_tasks: Vec<String>,
    /// Calls made to read it (pages included).
    pub calls: usize,
}

/// The documents that patch.
pub const PATCH_DOCUMENTS: [&str; 2] = ["AWS-RunPatchBaseline", "AWS-RunPatchBaselineWithHooks"];

pub async fn window_tasks(
    ssm: &aws_sdk_ssm::Client,
    window_id: &str,
) -> Result<WindowTasks, CallError> {
    // The window and its task list at once; the list to its last page (a
    // patch task on page two is as real as one on page one).
    let every_task = async {
        let mut pages = ssm
            .describe_maintenance_window_tasks()
            .window_id(window_id)
            .into_paginator()
            .send();
        let mut tasks = Vec::new();
        let mut calls = 0;
        while let Some(page) = pages.next().await {
            calls += 1;
            tasks.extend(page?.tasks.unwrap_or_default());
        }
        Ok::<_, SdkError<_, _>>((tasks, calls))
    };
    let (window, tasks) = tokio::join!(
        ssm.get_maintenance_window().window_id(window_id).send(),
        every_task
    );
    let window = window.map_err(|e| classify(&e, "ssm:GetMaintenanceWindow"))?;
    let (tasks, pages) = tasks.map_err(|e| classify(&e, "ssm:DescribeMaintenanceWindowTasks"))?;
    let mut out = WindowTasks {
        window_id: window_id.to_string(),
        name: window.name().unwrap_or_default().to_string(),
        enabled: window.enabled(),
        duration_hours: window.duration(),
        cutoff_hours: window.cutoff(),
        next_execution: window.next_execution_time().map(str::to_string),
        calls: 1 + pages,
        ..Default::default()
    };
    // The patch tasks' details at once.
    let patching: Vec<(&MaintenanceWindowTask, &str, &str)> = tasks
        .iter()
        .filter_map(|task| {
            let arn = task.task_arn().unwrap_or_default();
            // A document may be named by its ARN (arn:aws:ssm:…:document/AWS-RunPatchBaseline).
            let document = arn.rsplit('/').next().unwrap_or(arn);
            if !PATCH_DOCUMENTS.contains(&document) {
                out.other_tasks.push(arn.to_string());
                return None;
            }
            Some((task, document, task.window_task_id()?))
        })
        .collect();
    let details = futures_util::future::join_all(patching.iter().map(|(_, _, task_id)| {
        ssm.get_maintenance_window_task()
            .window_id(window_id)
            .window_task_id(*task_id)
            .send()
    }))
    .await;
    for ((task, document, task_id), detail) in patching.into_iter().zip(details) {
        let detail = detail.map_err(|e| classify(&e, "ssm:GetMaintenanceWindowTask"))?;
        out.calls += 1;
        out.patch_tasks
            .push(patch_task(task, document, task_id, &detail));
    }
    Ok(out)
}

/// A patch task from its listing and its details.
fn patch_task(
    task: &MaintenanceWindowTask,
    document: &str,
    task_id: &str,
    detail: &GetMaintenanceWindowTaskOutput,
) -> PatchTask {
    let parameters = detail
        .task_invocation_parameters()
        .and_then(|p| p.run_command())
        .and_then(|r| r.parameters());
    let first = |name: &str| {
        parameters
            .and_then(|p| p.get(name))
            .and_then(|v| v.first())
            .cloned()
    };
    PatchTask {
        document: document.to_string(),
        operation: first("Operation"),
        reboot_option: first("RebootOption"),
        pre_install_hook: first("PreInstallHookDocName"),
        baseline_override: first("BaselineOverride").filter(|b| !b.is_empty()),
        max_concurrency: task.max_concurrency().map(str::to_string),
        max_errors: task.max_errors().map(str::to_string),
        task_id: task_id.to_string(),
        targets: task
            .targets()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.values().to_vec())))
            .collect(),
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    #[test]
    fn an_absurd_date_is_an_error_naming_the_field() {
        // Issue #26: a LastPingDateTime of 1e15 s panicked inside ssm.ping.
        let far = aws_smithy_types::DateTime::from_secs(1_000_000_000_000_000);
        let e = time("LastPingDateTime", &far).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "LastPingDateTime is 1000000000000000 s after 1970, outside the years 1970 to 9999"
            ),
            "{e}"
        );
        let before = aws_smithy_types::DateTime::from_secs(-1);
        assert!(time("OperationEndTime", &before).is_err());
        let fine = aws_smithy_types::DateTime::from_secs(1_800_000_000);
        assert_eq!(
            time("LastPingDateTime", &fine).unwrap(),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
        );
    }

    #[test]
    fn a_negative_count_is_an_error_not_a_summary() {
        assert_eq!(count("FailedCount", 2), Ok(2));
        let e = count("FailedCount", -3).unwrap_err().to_string();
        assert_eq!(
            e,
            "FailedCount is -3: a negative count, so the answer is not one this tool can use"
        );
    }

    #[test]
    fn an_answer_about_another_node_names_both() {
        assert_eq!(
            about("ssm:DescribeInstanceInformation", "i-1", Some("i-1")),
            Ok(())
        );
        let e = about("ssm:DescribeInstanceInformation", "i-1", Some("i-2"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "ssm:DescribeInstanceInformation answered about i-2, not i-1: SSM's answer is not about this node");
    }
}
