//! `window.targeted`: whether a maintenance window will patch this node,
//! and how: the node's windows (by instance ID and Patch Group tag, as the
//! daemon's schedule lookup finds them), each one's patch task
//! (`AWS-RunPatchBaseline` or `…WithHooks`), its `Operation` and
//! `RebootOption`, and whether a WithHooks task runs the gate as its
//! pre-install hook; the window's length and cutoff.

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::patching::{self, WindowTasks};
use crate::config::schedule::window::Window;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "window.targeted",
    group: Group::Cloud,
    title: "Maintenance window patches this node",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "the node's windows in the next 35 days (by instance ID and Patch Group tag), each one's `GetMaintenanceWindow` (length, cutoff), `DescribeMaintenanceWindowTasks` and, for its patch task, `GetMaintenanceWindowTask` (document, `Operation`, `RebootOption`, `PreInstallHookDocName`)",
        warns: "no window targets the node; a window runs no patch task, or only scans; an `AWS-RunPatchBaselineWithHooks` task without the gate (`SSMPreflight-Gate`) as its pre-install hook",
        fails: "—",
        fix: "register targets; register the patch task (`maintenance-window-task.json` in the package)",
        cannot_see: "local mode, no identity or no credentials / the optional action refused (AccessDenied) / SSM does not answer",
        reports: "`skip` / `skip` naming the action to add / `error`",
    },
};

/// The gate's document, as packaging/ssm-documents names it.
pub const GATE_DOCUMENT: &str = "SSMPreflight-Gate";
/// How far ahead a window must be to count.
pub const HORIZON_DAYS: i64 = 35;

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let windows = match crate::aws::windows::from_ssm(
            &ssm,
            &id.instance_id,
            ctx.patch_group_sources(&id),
        )
        .await
        {
            Ok(w) => w,
            Err(e) => {
                return match e.remedy {
                    Some(remedy) => Outcome::skip(format!("{}; {remedy}", e.error)),
                    None => Outcome::error(
                        e.error,
                        "endpoint.ssm and credentials.valid say whether SSM can be reached.",
                    ),
                }
            }
        };
        let horizon = jiff::Timestamp::try_from(ctx.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            + jiff::SignedDuration::from_hours(24 * HORIZON_DAYS);
        let now = jiff::Timestamp::try_from(ctx.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        // An entry already past is no window ahead of this node; it is
        // left out and counted, not judged as the next patch run.
        let (past, windows): (Vec<Window>, Vec<Window>) =
            crate::config::schedule::window::merge(windows)
                .into_iter()
                .filter(|w| {
                    w.start
                        .parse::<jiff::Timestamp>()
                        .is_ok_and(|t| t <= horizon)
                })
                .partition(|w| w.start.parse::<jiff::Timestamp>().is_ok_and(|t| t < now));
        // Each window once, all at once: the check waits for the slowest
        // window's chain, not for every window's in turn.
        let mut seen = std::collections::BTreeSet::new();
        let each: Vec<&Window> = windows
            .iter()
            .filter(|w| {
                w.window_id
                    .as_ref()
                    .is_some_and(|id| seen.insert(id.clone()))
            })
            .collect();
        let read = futures_util::future::join_all(
            each.iter()
                .map(|w| patching::window_tasks(&ssm, w.window_id.as_deref().unwrap_or_default())),
        )
        .await;
        let mut details = Vec::new();
        for (w, tasks) in each.into_iter().zip(read) {
            match tasks {
                Ok(t) => details.push((w.clone(), t)),
                Err(e) => return call_outcome(&e),
            }
        }
        judge(&windows, &details).detail("past_entries_skipped", past.len().to_string())
    })
}

pub fn judge(windows: &[Window], tasks: &[(Window, WindowTasks)]) -> Outcome {
    // A disabled window runs nothing: it is no patch run for this node.
    let disabled: Vec<&WindowTasks> = tasks
        .iter()
        .map(|(_, t)| t)
        .filter(|t| !t.enabled)
        .collect();
    let enabled: Vec<(Window, WindowTasks)> =
        tasks.iter().filter(|(_, t)| t.enabled).cloned().collect();
    if !disabled.is_empty() && enabled.is_empty() {
        let names: Vec<String> = disabled
            .iter()
            .map(|t| format!("{} ({})", t.name, t.window_id))
            .collect();
        return Outcome::warn(
            format!("the only window that targets this node in the next {HORIZON_DAYS} days, {}, is disabled, so nothing will patch it", names.join(", ")),
            format!("Enable the window (`aws ssm update-maintenance-window --window-id {} --enabled`), or register the node with an enabled window.", disabled[0].window_id),
        );
    }
    let tasks = &enabled[..];
    if windows.is_empty() {
        return Outcome::warn(
            format!("no maintenance window targets this node (by its instance ID or Patch Group tag) in the next {HORIZON_DAYS} days, so nothing will patch it"),
            "Register the node's Patch Group tag (or its ID) as a target of a window that runs AWS-RunPatchBaseline: Systems Manager → Maintenance Windows → the window → Register targets.",
        );
    }
    let (findings, patching_windows) = read_tasks(tasks);
    let listed = if patching_windows.is_empty() {
        windows
            .iter()
            .map(|w| format!("{} at {}", w.name, w.start))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        patching_windows.join("; ")
    };
    let outcome = if findings.is_empty() {
        Outcome::pass(format!("patched by {listed}"))
    } else {
        Outcome::warn(
            format!("{} ({listed})", findings.join("; ")),
            format!("Give the window a patch task (`aws ssm register-task-with-maintenance-window --task-arn AWS-RunPatchBaselineWithHooks --task-type RUN_COMMAND …` with Operation=Install and PreInstallHookDocName={GATE_DOCUMENT}; /usr/share/ssm-preflight/ssm-documents/maintenance-window-task.json is the whole task)."),
        )
    };
    outcome.detail(
        "windows",
        windows
            .iter()
            .map(|w| w.window_id.clone().unwrap_or_else(|| w.name.clone()))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// What the enabled windows' tasks do wrong (no patch task, scan only, the
/// gate missing), and each patch task as a line.
fn read_tasks(tasks: &[(Window, WindowTasks)]) -> (Vec<String>, Vec<String>) {
    let mut findings = Vec::new();
    let mut patching_windows = Vec::new();
    for (w, t) in tasks {
        let length = match (t.duration_hours, t.cutoff_hours) {
            (Some(d), c) => format!("{d} h, cutoff {c} h"),
            (None, c) => format!("cutoff {c} h"),
        };
        if t.patch_tasks.is_empty() {
            findings.push(format!(
                "the window {} ({}, next {}) runs no patch task",
                t.name, t.window_id, w.start
            ));
            continue;
        }
        for p in &t.patch_tasks {
            let op = p.operation.as_deref().unwrap_or("Scan");
            let reboot = p.reboot_option.as_deref().unwrap_or("RebootIfNeeded");
            if p.document == "AWS-RunPatchBaselineWithHooks"
                && p.pre_install_hook.as_deref() != Some(GATE_DOCUMENT)
            {
                findings.push(format!(
                    "the window {} runs AWS-RunPatchBaselineWithHooks without the gate (PreInstallHookDocName is {}), so a node that would fail is patched anyway",
                    t.name,
                    p.pre_install_hook.as_deref().unwrap_or("not set")
                ));
            }
            if op == "Scan" {
                findings.push(format!(
                    "the window {} only scans ({}, Operation=Scan): it installs nothing",
                    t.name, p.document
                ));
            }
            patching_windows.push(format!(
                "{} next at {} ({length}): {} {op}, {reboot}",
                t.name, w.start, p.document
            ));
        }
    }
    (findings, patching_windows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::patching::PatchTask;
    use crate::checks::Status;

    fn window() -> Window {
        Window {
            start: "2026-12-20T02:00:00Z".into(),
            name: "production-linux".into(),
            source: "ssm".into(),
            window_id: Some("mw-0123456789abcdef0".into()),
            duration_secs: None,
        }
    }

    fn tasks(patch: Vec<PatchTask>) -> WindowTasks {
        WindowTasks {
            window_id: "mw-0123456789abcdef0".into(),
            name: "production-linux".into(),
            enabled: true,
            duration_hours: Some(4),
            cutoff_hours: 1,
            next_execution: None,
            patch_tasks: patch,
            other_tasks: vec![],
            calls: 0,
        }
    }

    fn with_hooks(hook: Option<&str>) -> PatchTask {
        PatchTask {
            document: "AWS-RunPatchBaselineWithHooks".into(),
            operation: Some("Install".into()),
            reboot_option: Some("RebootIfNeeded".into()),
            pre_install_hook: hook.map(str::to_string),
            max_concurrency: Some("25%".into()),
            max_errors: Some("10%".into()),
            task_id: "task-1".into(),
            targets: vec![],
        }
    }

    #[test]
    fn a_window_with_the_gated_patch_task_passes() {
        let o = judge(
            &[window()],
            &[(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))],
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.summary, "patched by production-linux next at 2026-12-20T02:00:00Z (4 h, cutoff 1 h): AWS-RunPatchBaselineWithHooks Install, RebootIfNeeded");
    }

    #[test]
    fn no_window_no_patch_task_or_no_gate_warn() {
        assert_eq!(judge(&[], &[]).status, Status::Warn);
        let o = judge(&[window()], &[(window(), tasks(vec![]))]);
        o.assert_says(Status::Warn, "runs no patch task");
        let o = judge(&[window()], &[(window(), tasks(vec![with_hooks(None)]))]);
        o.assert_says(
            Status::Warn,
            "without the gate (PreInstallHookDocName is not set)",
        );
    }

    #[test]
    fn a_disabled_window_is_no_patch_run() {
        // Issue #26 item 10: a disabled window passed.
        let mut off = tasks(vec![with_hooks(Some(GATE_DOCUMENT))]);
        off.enabled = false;
        let o = judge(&[window()], &[(window(), off.clone())]);
        o.assert_says(Status::Warn, "is disabled, so nothing will patch it");
        // Beside an enabled one, the enabled one is the patch run.
        let mut on = tasks(vec![with_hooks(Some(GATE_DOCUMENT))]);
        on.window_id = "mw-0123456789abcdef1".into();
        let o = judge(&[window()], &[(window(), off), (window(), on)]);
        assert_eq!(o.status, Status::Pass, "{o:?}");
    }
}
