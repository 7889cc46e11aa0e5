//! The maintenance windows as the fleet view reads them from SSM: each
//! window's patch tasks, its registered targets (resource groups resolved
//! to their members) and the enabled windows' next starts.

use super::ssm::{all_pages, count, FleetError, Operator};
use super::ssm::{PAGE_GROUP_MEMBERS, PAGE_WINDOWS, PAGE_WINDOW_TARGETS};
use super::targets::{Member, RegisteredTarget};
use std::collections::HashMap;

/// A window's patch task as the fleet view predicts it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Task {
    pub id: String,
    /// Whether it installs (Operation=Install); a scan changes nothing.
    pub installs: bool,
    pub max_concurrency: Option<String>,
    pub max_errors: Option<String>,
    /// Its pre-install hook (the gate, when wired).
    pub pre_install_hook: Option<String>,
    /// The registered targets it runs on (its `WindowTargetIds`), or its
    /// own `InstanceIds` as one target.
    pub reaches: Vec<RegisteredTarget>,
}

/// What schedules a patch run: a maintenance window, or a State Manager
/// association (a Quick Setup patch policy's among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    #[default]
    MaintenanceWindow,
    Association,
    PatchPolicy,
}

/// A window as the fleet view needs it; an association that patches is
/// read into the same shape (its targets one registered target, itself
/// one task), so the prediction treats both alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    pub source: SourceKind,
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The next start SSM schedules (RFC 3339 or SSM's own format).
    pub next_start: Option<String>,
    /// Every target registered with it.
    pub registered: Vec<RegisteredTarget>,
    /// Its patch tasks, the installing ones first.
    pub tasks: Vec<Task>,
    /// What could not be read about its targets (a resource group).
    pub notes: Vec<String>,
}

impl Window {
    /// How notes name it: `Window mw-…`, `Association …`, `Patch policy association …`.
    pub fn noun(&self) -> String {
        match self.source {
            SourceKind::MaintenanceWindow => format!("Window {}", self.id),
            SourceKind::Association => format!("Association {}", self.id),
            SourceKind::PatchPolicy => format!("Patch policy association {}", self.id),
        }
    }

    /// Whether the window installs at all; one that only scans predicts
    /// no rollout.
    pub fn installs(&self) -> bool {
        self.tasks.first().is_some_and(|t| t.installs)
    }

    /// Whether `task` is predicted: the tasks that install, or, when none
    /// does, its scan tasks.
    pub fn predicts(&self, task: &Task) -> bool {
        task.installs || !self.installs()
    }

    /// The tasks it predicts.
    pub fn predicted_tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(|t| self.predicts(t))
    }
}

/// One window: its settings, registered targets, patch tasks and next start.
pub async fn window(op: &Operator, id: &str) -> Result<Window, FleetError> {
    let (tasks, registered) = tokio::join!(
        crate::aws::patching::window_tasks(&op.client, id),
        window_targets(op, id),
    );
    let tasks = tasks.map_err(|e| match e {
        crate::aws::patching::CallError::Denied { action, message } => {
            FleetError::Denied { action, message }
        }
        crate::aws::patching::CallError::Failed(why) if why.contains("DoesNotExist") => {
            FleetError::NotFound(format!(
                "there is no maintenance window {id} in {}: {why}. List the windows with `aws ssm describe-maintenance-windows --region {}`.",
                op.region, op.region
            ))
        }
        crate::aws::patching::CallError::Failed(why) => FleetError::Failed(why),
    })?;
    for _ in 0..tasks.calls {
        count();
    }
    let (registered, notes) = resolve_groups(op, registered?).await;
    let mut predicted: Vec<Task> = tasks
        .patch_tasks
        .iter()
        .map(|p| Task {
            id: p.task_id.clone(),
            installs: p.operation.as_deref() == Some("Install"),
            max_concurrency: p.max_concurrency.clone(),
            max_errors: p.max_errors.clone(),
            pre_install_hook: p.pre_install_hook.clone(),
            reaches: task_reach(&p.targets, &registered),
        })
        .collect();
    // The Install task decides the rollout: a Scan task listed before it
    // changes nothing.
    predicted.sort_by_key(|t| !t.installs);
    Ok(Window {
        source: SourceKind::MaintenanceWindow,
        id: id.to_string(),
        name: tasks.name.clone(),
        enabled: tasks.enabled,
        next_start: tasks.next_execution.clone(),
        registered,
        tasks: predicted,
        notes,
    })
}

/// The registered targets with their resource groups replaced by the
/// groups' managed nodes; a group that could not be read leaves its target
/// unresolved, with a note saying why.
pub(super) async fn resolve_groups(
    op: &Operator,
    mut registered: Vec<RegisteredTarget>,
) -> (Vec<RegisteredTarget>, Vec<String>) {
    let mut names: Vec<String> = registered
        .iter()
        .flat_map(|t| t.resource_groups().cloned())
        .collect();
    names.sort();
    names.dedup();
    let mut members = HashMap::new();
    let mut notes = Vec::new();
    for name in names {
        match group_members(op, &name).await {
            Ok(m) => {
                members.insert(name, m);
            }
            Err(e) => notes.push(format!(
                "Resource group {name} could not be read, so the nodes in it are not counted: {e}"
            )),
        }
    }
    for t in &mut registered {
        t.resolve_groups(&members);
    }
    (registered, notes)
}

/// The members of a resource group (`ListGroupResources`, every page).
async fn group_members(op: &Operator, name: &str) -> Result<Vec<Member>, FleetError> {
    const ACTION: &str = "resource-groups:ListGroupResources";
    let call = op
        .groups
        .list_group_resources()
        .group(name)
        .max_results(PAGE_GROUP_MEMBERS);
    let mut out = Vec::new();
    for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
        for r in page.resources() {
            let Some(id) = r.identifier() else { continue };
            if let (Some(t), Some(arn)) = (id.resource_type(), id.resource_arn()) {
                out.push(Member {
                    resource_type: t.to_string(),
                    arn: arn.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The registered targets a task's own targets name.
fn task_reach(
    targets: &[(String, Vec<String>)],
    registered: &[RegisteredTarget],
) -> Vec<RegisteredTarget> {
    let mut out = Vec::new();
    for (key, values) in targets {
        if key == "WindowTargetIds" {
            out.extend(
                registered
                    .iter()
                    .filter(|r| values.contains(&r.id))
                    .cloned(),
            );
        } else {
            out.push(RegisteredTarget::new(
                "(the task's own targets)",
                &[(key.clone(), values.clone())],
            ));
        }
    }
    out
}

async fn window_targets(op: &Operator, id: &str) -> Result<Vec<RegisteredTarget>, FleetError> {
    const ACTION: &str = "ssm:DescribeMaintenanceWindowTargets";
    let call = op
        .client
        .describe_maintenance_window_targets()
        .window_id(id)
        .max_results(PAGE_WINDOW_TARGETS);
    let mut out = Vec::new();
    for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
        for t in page.targets() {
            let raw: Vec<(String, Vec<String>)> = t
                .targets()
                .iter()
                .filter_map(|c| Some((c.key()?.to_string(), c.values().to_vec())))
                .collect();
            out.push(RegisteredTarget::new(
                t.window_target_id().unwrap_or_default(),
                &raw,
            ));
        }
    }
    Ok(out)
}

/// The region's enabled windows that have a next start, as (window ID,
/// next start), soonest first (`DescribeMaintenanceWindows`).
pub async fn upcoming_windows(op: &Operator) -> Result<Vec<(String, String)>, FleetError> {
    const ACTION: &str = "ssm:DescribeMaintenanceWindows";
    let call = op
        .client
        .describe_maintenance_windows()
        .max_results(PAGE_WINDOWS);
    let mut out = Vec::new();
    for page in all_pages(call.into_paginator().send(), ACTION, &op.region).await? {
        for w in page.window_identities() {
            let (Some(id), Some(next)) = (w.window_id(), w.next_execution_time()) else {
                continue;
            };
            if w.enabled() {
                out.push((id.to_string(), next.to_string()));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}
