//! `patch.sources`: everything that scans or installs patches on this
//! node, and whether together they patch it once, in time: the node's
//! maintenance windows (by instance ID and Patch Group tag, as the daemon's
//! schedule lookup finds them; each one's patch task, `Operation`,
//! `RebootOption`, gate hook, length and cutoff) and its State Manager
//! associations that run a patch document, Quick Setup patch policies among
//! them (`aws::associations`). Replaces `window.targeted`, which saw the
//! windows alone and called a node patched by a patch policy unpatched.

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::associations::{self, Association};
use crate::aws::patching::{self, CallError, WindowTasks};
use crate::config::schedule::window::{Window, ASSUMED_DURATION};
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patch.sources",
    group: Group::Cloud,
    title: "Something patches this node, once and in time",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "the node's windows in the next 35 days (by instance ID and Patch Group tag) with each one's `GetMaintenanceWindow` (length, cutoff), `DescribeMaintenanceWindowTasks` and its patch task's `GetMaintenanceWindowTask` (document, `Operation`, `RebootOption`, `PreInstallHookDocName`, `BaselineOverride`); the node's State Manager associations (`DescribeEffectiveInstanceAssociations`, then `DescribeAssociation`) that run `AWS-RunPatchBaseline`, `…WithHooks` or `…Association`, Quick Setup patch policies (`AWS-QuickSetup-PatchPolicy-…`) among them; the last install's duration (`DescribeInstancePatchStates`)",
        warns: "nothing scans or installs on the node in the next 35 days; a window runs no patch task, or only scans while nothing installs; a WithHooks task without the gate (`SSMPreflight-Gate`); a disabled window; more than one source installs; sources use different baselines (each scan overwrites the other's compliance); two sources run within one window's length of each other (they race for the package manager's lock: exit 152/155); the last install took longer than the window's length minus its cutoff",
        fails: "—",
        fix: "keep one source that installs (a window with the gated patch task, `maintenance-window-task.json` in the package, or one patch policy), one baseline, runs hours apart, and a window long enough for the install",
        cannot_see: "local mode, no identity or no credentials / the windows' or the associations' actions refused (AccessDenied) / SSM does not answer",
        reports: "`skip` / `skip` naming the action to add when nothing else was seen (else the refused source is named in the details) / `error`",
    },
};

/// The gate's document, as packaging/ssm-documents names it.
pub const GATE_DOCUMENT: &str = "SSMPreflight-Gate";
/// The detail listing the node's windows (their IDs, else their names):
/// the next run reads them first (`facts::Remembered`).
pub const WINDOWS_DETAIL: &str = "windows";

/// How far ahead a source's run must be to count.
pub const HORIZON_DAYS: i64 = 35;
/// The runs of one source looked at for overlaps (a `rate(30 minutes)`
/// scan has many in 35 days; the first ones already show a clash).
const RUNS_LOOKED_AT: usize = 100;

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let node = id.instance_id.as_str();
        // The three reads at once: the windows' chain is the longest.
        let (windows, associations, state) = tokio::join!(
            read_windows(&ctx, &id, &ssm),
            associations::of_node(&ssm, node),
            ctx.patch_state(&ssm, node),
        );
        let (windows, tasks, past) = match windows {
            Ok(w) => w,
            Err(outcome) => return outcome,
        };
        let last_install = state.ok().flatten().and_then(|s| {
            let took = s.ended?.duration_since(s.started?).ok()?;
            (s.operation == "Install").then_some(took)
        });
        let now = Timestamp::try_from(ctx.now).unwrap_or(Timestamp::UNIX_EPOCH);
        judge(&Sources {
            windows: &windows,
            tasks: &tasks,
            associations: associations.as_deref(),
            last_install,
            now,
        })
        .detail("past_entries_skipped", past.to_string())
    })
}

/// The node's upcoming windows (merged, within the horizon), each distinct
/// window's tasks, and how many entries were already past.
async fn read_windows(
    ctx: &Context,
    id: &crate::aws::identity::Identity,
    ssm: &aws_sdk_ssm::Client,
) -> Result<(Vec<Window>, Vec<(Window, WindowTasks)>, usize), Outcome> {
    // Each window is read as soon as a lookup names it, while the other
    // lookups (by the Patch Group tag, once a tag source answers) are out.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let lookup =
        crate::aws::windows::from_ssm(ssm, &id.instance_id, ctx.patch_group_sources(id), Some(tx));
    let (found, read) = tokio::join!(lookup, read_as_named(ssm, ctx.remembered_windows(), rx));
    let found = found.map_err(|e| match e.remedy {
        Some(remedy) => Outcome::skip(format!("{}; {remedy}", e.error)),
        None => Outcome::error(
            e.error,
            "endpoint.ssm and credentials.valid say whether SSM can be reached.",
        ),
    })?;
    let now = Timestamp::try_from(ctx.now).unwrap_or(Timestamp::UNIX_EPOCH);
    let horizon = now + SignedDuration::from_hours(24 * HORIZON_DAYS);
    // An entry already past is no window ahead of this node; it is left
    // out and counted, not judged as the next patch run.
    let (past, windows): (Vec<Window>, Vec<Window>) = crate::config::schedule::window::merge(found)
        .into_iter()
        .filter(|w| w.start().is_some_and(|t| t <= horizon))
        .partition(|w| w.start().is_some_and(|t| t < now));
    // Each window ahead once, with its tasks (a window only past was read
    // for nothing, and is not judged).
    let mut seen = std::collections::BTreeSet::new();
    let mut tasks = Vec::new();
    for w in &windows {
        let Some(wid) = w.window_id.as_ref().filter(|i| seen.insert(i.to_string())) else {
            continue;
        };
        match read.get(wid) {
            Some(Ok(t)) => tasks.push((w.clone(), t.clone())),
            Some(Err(e)) => return Err(call_outcome(e)),
            None => {}
        }
    }
    Ok((windows, tasks, past.len()))
}

/// Reads the windows an earlier run found (at once: most nodes keep their
/// windows) and each window named on `rx` not read already (its settings
/// and patch tasks), all at once, until the lookups are done. A remembered
/// window the lookups do not name is read for nothing and not judged.
async fn read_as_named(
    ssm: &aws_sdk_ssm::Client,
    remembered: Vec<String>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> std::collections::HashMap<String, Result<WindowTasks, CallError>> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let read_one = |id: String| async move {
        let tasks = patching::window_tasks(ssm, &id).await;
        (id, tasks)
    };
    let mut asked: std::collections::HashSet<String> = remembered.into_iter().collect();
    let mut reading: FuturesUnordered<_> = asked.iter().cloned().map(read_one).collect();
    let mut read = std::collections::HashMap::new();
    loop {
        tokio::select! {
            Some(id) = rx.recv() => if asked.insert(id.clone()) {
                reading.push(read_one(id));
            },
            Some((id, tasks)) = reading.next() => {
                read.insert(id, tasks);
            }
            else => break,
        }
    }
    read
}

/// What the check judges, read from SSM.
pub struct Sources<'a> {
    /// The node's window entries ahead, within the horizon.
    pub windows: &'a [Window],
    /// Each distinct window with its tasks.
    pub tasks: &'a [(Window, WindowTasks)],
    /// The node's patching associations, or why they were not read.
    pub associations: Result<&'a [Association], &'a CallError>,
    /// How long the last install ran, when the node's last operation was one.
    pub last_install: Option<Duration>,
    pub now: Timestamp,
}

/// One thing that patches the node: a window's patch task or an association.
#[derive(Debug, Clone)]
struct Source {
    label: String,
    installs: bool,
    /// `BaselineOverride`, or `None` for the patch group's baseline.
    baseline: Option<String>,
    /// Its runs within the horizon: start and length.
    runs: Vec<(Timestamp, Duration)>,
    /// What it does, for the summary.
    does: String,
}

pub fn judge(s: &Sources) -> Outcome {
    let horizon = s.now + SignedDuration::from_hours(24 * HORIZON_DAYS);
    let mut findings = Vec::new();
    let mut remedies = Vec::new();
    let mut sources = window_sources(s, &mut findings, &mut remedies);
    if let Ok(associations) = s.associations {
        sources.extend(
            associations
                .iter()
                .map(|a| association_source(a, s.now, horizon)),
        );
    }
    sources.retain(|src| !src.runs.is_empty());
    let refused = s.associations.err().map(|e| e.to_string());
    if sources.is_empty() && findings.is_empty() {
        if let Some(e) = s.associations.err() {
            if s.windows.is_empty() {
                return call_outcome(e);
            }
        }
        return Outcome::warn(
            format!("nothing scans or installs patches on this node in the next {HORIZON_DAYS} days: no maintenance window targets it (by its instance ID or Patch Group tag) and no State Manager association or patch policy runs a patch document on it"),
            "Register the node's Patch Group tag (or its ID) as a target of a window that runs AWS-RunPatchBaselineWithHooks with the gate (Systems Manager → Maintenance Windows → the window → Register targets), or include it in a Quick Setup patch policy.",
        )
        .detail("associations", association_list(s));
    }
    judge_together(
        &sources,
        s.last_install,
        s.tasks,
        &mut findings,
        &mut remedies,
    );
    sources.sort_by_key(|src| src.runs.first().map(|r| r.0));
    let listed = sources
        .iter()
        .map(|src| src.does.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let outcome = if findings.is_empty() {
        Outcome::pass(format!("patched by {listed}"))
    } else {
        remedies.dedup();
        Outcome::warn(
            format!("{} ({listed})", findings.join("; ")),
            remedies.join(" "),
        )
    };
    let outcome = outcome
        .detail(
            WINDOWS_DETAIL,
            s.windows
                .iter()
                .map(|w| w.window_id.clone().unwrap_or_else(|| w.name.clone()))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .detail("associations", association_list(s));
    match refused {
        Some(why) => outcome.detail("associations_not_read", format!("{why}; add ssm:DescribeEffectiveInstanceAssociations to the node's role to have them seen (optional; /usr/share/ssm-preflight/iam/ssm-preflight-policy.json lists it)")),
        None => outcome,
    }
}

/// The associations as read, one per line part.
fn association_list(s: &Sources) -> String {
    match s.associations {
        Ok(list) => list
            .iter()
            .map(|a| {
                format!(
                    "{}: {} {}, {}{}",
                    a.label(),
                    a.document,
                    a.operation,
                    a.schedule.as_deref().unwrap_or("no schedule"),
                    a.baseline_override
                        .as_deref()
                        .map(|b| format!(", BaselineOverride {b}"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => "not read".into(),
    }
}

/// How long a run lasts: its hours when set, else the console's default.
fn length(hours: Option<i32>) -> Duration {
    hours
        .and_then(|h| u64::try_from(h).ok())
        .map_or(ASSUMED_DURATION, |h| Duration::from_secs(h * 3600))
}

fn association_source(a: &Association, now: Timestamp, horizon: Timestamp) -> Source {
    let length = length(a.duration_hours);
    let runs: Vec<(Timestamp, Duration)> = a
        .next_runs(now, RUNS_LOOKED_AT)
        .into_iter()
        .filter(|t| *t <= horizon)
        .map(|t| (t, length))
        .collect();
    let next = runs.first().map(|r| r.0.to_string()).unwrap_or_default();
    Source {
        label: a.label(),
        installs: a.installs(),
        baseline: a.baseline_override.clone(),
        does: format!(
            "{} next at {next} ({}): {} {}",
            a.label(),
            a.schedule.as_deref().unwrap_or("no schedule"),
            a.document,
            a.operation
        ),
        runs,
    }
}

/// The windows' patch tasks as sources; what a window does wrong on its
/// own (no patch task, no gate, disabled) goes into `findings`.
fn window_sources(
    s: &Sources,
    findings: &mut Vec<String>,
    remedies: &mut Vec<String>,
) -> Vec<Source> {
    let mut out = Vec::new();
    for (w, t) in s.tasks {
        if !t.enabled {
            findings.push(format!(
                "the window {} ({}) targets this node but is disabled, so it runs nothing",
                t.name, t.window_id
            ));
            remedies.push(format!("Enable the window (`aws ssm update-maintenance-window --window-id {} --enabled`), or deregister the node from it.", t.window_id));
            continue;
        }
        if t.patch_tasks.is_empty() {
            findings.push(format!(
                "the window {} ({}, next {}) runs no patch task",
                t.name, t.window_id, w.start
            ));
            remedies.push(GIVE_PATCH_TASK.to_string());
            continue;
        }
        let length = length(t.duration_hours);
        let runs: Vec<(Timestamp, Duration)> = s
            .windows
            .iter()
            .filter(|e| e.window_id.as_deref() == Some(t.window_id.as_str()))
            .filter_map(|e| Some((e.start()?, length)))
            .collect();
        let span = match (t.duration_hours, t.cutoff_hours) {
            (Some(d), c) => format!("{d} h, cutoff {c} h"),
            (None, c) => format!("cutoff {c} h"),
        };
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
                remedies.push(GIVE_PATCH_TASK.to_string());
            }
            out.push(Source {
                label: format!("the window {} ({})", t.name, t.window_id),
                installs: op == "Install",
                baseline: p.baseline_override.clone(),
                runs: runs.clone(),
                does: format!(
                    "{} next at {} ({span}): {} {op}, {reboot}",
                    t.name, w.start, p.document
                ),
            });
        }
    }
    out
}

const GIVE_PATCH_TASK: &str = "Give the window a patch task (`aws ssm register-task-with-maintenance-window --task-arn AWS-RunPatchBaselineWithHooks --task-type RUN_COMMAND …` with Operation=Install and PreInstallHookDocName=SSMPreflight-Gate; /usr/share/ssm-preflight/ssm-documents/maintenance-window-task.json is the whole task).";

/// What the sources do wrong together: none installs, several install,
/// different baselines, runs that overlap, an install longer than its window.
fn judge_together(
    sources: &[Source],
    last_install: Option<Duration>,
    tasks: &[(Window, WindowTasks)],
    findings: &mut Vec<String>,
    remedies: &mut Vec<String>,
) {
    let installing: Vec<&Source> = sources.iter().filter(|s| s.installs).collect();
    if installing.is_empty() && !sources.is_empty() {
        findings.push(format!(
            "nothing installs patches on this node: {} only scan (Operation=Scan)",
            names(sources.iter())
        ));
        remedies.push("Set Operation=Install on the window's patch task or the patch policy's install schedule.".into());
    }
    if installing.len() > 1 {
        findings.push(format!(
            "{} sources install patches on this node ({}): each runs the install with its own schedule and baseline",
            installing.len(),
            names(installing.iter().copied())
        ));
        remedies.push("Keep one source that installs: remove the node from the others' targets (or switch them to Operation=Scan).".into());
    }
    let mut baselines: Vec<Option<&String>> = sources.iter().map(|s| s.baseline.as_ref()).collect();
    baselines.sort();
    baselines.dedup();
    if baselines.len() > 1 {
        let each: Vec<String> = sources
            .iter()
            .map(|s| {
                format!(
                    "{} uses {}",
                    s.label,
                    s.baseline
                        .as_deref()
                        .map(|b| format!("BaselineOverride {b}"))
                        .unwrap_or_else(|| "the patch group's baseline".into())
                )
            })
            .collect();
        findings.push(format!(
            "the sources patch with different baselines, so each scan overwrites the other's compliance: {}",
            each.join(", ")
        ));
        remedies.push(
            "Give every source the same baseline (the patch group's, or one BaselineOverride)."
                .into(),
        );
    }
    if let Some(clash) = overlap(sources) {
        findings.push(clash);
        remedies.push("Move one source's schedule at least a window's length away from the other's: two runs at once race for the package manager's lock (exit 152/155).".into());
    }
    if let Some(took) = last_install {
        for (_, t) in tasks.iter().filter(|(_, t)| t.enabled) {
            let Some(hours) = t.duration_hours else {
                continue;
            };
            let room = Duration::from_secs(
                u64::try_from((hours - t.cutoff_hours).max(0)).unwrap_or(0) * 3600,
            );
            let installs = t
                .patch_tasks
                .iter()
                .any(|p| p.operation.as_deref() == Some("Install"));
            if installs && took > room {
                findings.push(format!(
                    "the last install took {} min, longer than the window {}'s {hours} h minus its {} h cutoff",
                    took.as_secs() / 60, t.name, t.cutoff_hours
                ));
                remedies.push(format!("Lengthen the window (`aws ssm update-maintenance-window --window-id {} --duration {}`) or shorten its cutoff.", t.window_id, (took.as_secs() / 3600) as i64 + 1 + i64::from(t.cutoff_hours)));
            }
        }
    }
}

fn names<'a>(sources: impl Iterator<Item = &'a Source>) -> String {
    sources
        .map(|s| s.label.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first two sources whose runs start within the earlier run's length
/// of each other, as a sentence.
fn overlap(sources: &[Source]) -> Option<String> {
    for (i, a) in sources.iter().enumerate() {
        for b in &sources[i + 1..] {
            if a.label == b.label {
                continue;
            }
            for (ta, la) in &a.runs {
                for (tb, lb) in &b.runs {
                    let (gap, length) = if ta <= tb {
                        (tb.duration_since(*ta), la)
                    } else {
                        (ta.duration_since(*tb), lb)
                    };
                    if gap < SignedDuration::try_from(*length).unwrap_or(SignedDuration::ZERO) {
                        return Some(format!(
                            "{} (at {ta}) and {} (at {tb}) run within {} h of each other",
                            a.label,
                            b.label,
                            length.as_secs() / 3600
                        ));
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::patching::PatchTask;
    use crate::checks::Status;

    const NOW: &str = "2026-12-06T10:00:00Z";

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
            ..Default::default()
        }
    }

    fn policy(operation: &str, schedule: &str) -> Association {
        Association {
            id: format!("a0000000-0000-4000-8000-00000000{:04}", schedule.len()),
            name: Some(format!("AWS-QuickSetup-PatchPolicy-{operation}Patches-qs1")),
            document: "AWS-RunPatchBaseline".into(),
            schedule: Some(schedule.into()),
            operation: operation.into(),
            baseline_override: Some(
                "s3://aws-quicksetup-patchpolicy-111122223333-qs1/baseline_overrides.json".into(),
            ),
            ..Default::default()
        }
    }

    /// Judges the windows (each entry with its tasks) and the associations.
    fn judged(windows: &[(Window, WindowTasks)], associations: &[Association]) -> Outcome {
        judge_with(windows, Ok(associations), None)
    }

    fn judge_with(
        windows: &[(Window, WindowTasks)],
        associations: Result<&[Association], &CallError>,
        last_install: Option<Duration>,
    ) -> Outcome {
        let entries: Vec<Window> = windows.iter().map(|(w, _)| w.clone()).collect();
        judge(&Sources {
            windows: &entries,
            tasks: windows,
            associations,
            last_install,
            now: NOW.parse().unwrap(),
        })
    }

    #[test]
    fn a_window_with_the_gated_patch_task_passes() {
        let o = judged(
            &[(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))],
            &[],
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.summary, "patched by production-linux next at 2026-12-20T02:00:00Z (4 h, cutoff 1 h): AWS-RunPatchBaselineWithHooks Install, RebootIfNeeded");
    }

    #[test]
    fn no_source_no_patch_task_or_no_gate_warn() {
        judged(&[], &[]).assert_says(
            Status::Warn,
            "nothing scans or installs patches on this node",
        );
        let o = judged(&[(window(), tasks(vec![]))], &[]);
        o.assert_says(Status::Warn, "runs no patch task");
        let o = judged(&[(window(), tasks(vec![with_hooks(None)]))], &[]);
        o.assert_says(
            Status::Warn,
            "without the gate (PreInstallHookDocName is not set)",
        );
    }

    #[test]
    fn a_disabled_window_warns() {
        let mut off = tasks(vec![with_hooks(Some(GATE_DOCUMENT))]);
        off.enabled = false;
        let o = judged(&[(window(), off.clone())], &[]);
        o.assert_says(
            Status::Warn,
            "targets this node but is disabled, so it runs nothing",
        );
        assert!(
            o.remedy
                .as_deref()
                .unwrap_or_default()
                .contains("--enabled"),
            "{o:?}"
        );
        // Beside an enabled one it still warns: it is a schedule nobody runs.
        let mut on = tasks(vec![with_hooks(Some(GATE_DOCUMENT))]);
        on.window_id = "mw-0123456789abcdef1".into();
        let mut w2 = window();
        w2.window_id = Some(on.window_id.clone());
        let o = judged(&[(window(), off), (w2, on)], &[]);
        o.assert_says(Status::Warn, "is disabled");
    }

    #[test]
    fn a_patch_policy_alone_patches_the_node() {
        // The false warning #28 was filed for: no window, a patch policy.
        let o = judged(&[], &[policy("Install", "cron(0 3 ? * SAT *)")]);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.summary.starts_with(
                "patched by Quick Setup patch policy AWS-QuickSetup-PatchPolicy-InstallPatches-qs1"
            ),
            "{}",
            o.summary
        );
        assert!(
            o.summary.contains("next at 2026-12-12T03:00:00Z"),
            "{}",
            o.summary
        );
    }

    #[test]
    fn a_policy_and_a_window_that_both_install_warn() {
        let o = judged(
            &[(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))],
            &[policy("Install", "cron(0 3 ? * SAT *)")],
        );
        o.assert_says(Status::Warn, "2 sources install patches on this node (the window production-linux (mw-0123456789abcdef0), Quick Setup patch policy");
        assert!(
            o.remedy
                .as_deref()
                .unwrap_or_default()
                .contains("Keep one source that installs"),
            "{o:?}"
        );
    }

    #[test]
    fn scans_with_different_baselines_warn_naming_them() {
        let mut other = policy("Scan", "cron(0 12 ? * * *)");
        other.name = Some("nightly-scan".into());
        let o = judged(
            &[(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))],
            &[other],
        );
        o.assert_says(Status::Warn, "each scan overwrites the other's compliance");
        assert!(
            o.summary.contains("State Manager association nightly-scan"),
            "{}",
            o.summary
        );
        // The same baseline everywhere: no overwrite to warn of.
        let mut same = policy("Scan", "cron(0 12 ? * * *)");
        same.baseline_override = None;
        let o = judged(
            &[(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))],
            &[same],
        );
        assert_eq!(o.status, Status::Pass, "{o:?}");
    }

    #[test]
    fn runs_within_a_window_of_each_other_warn() {
        // A daily rate scan anchored at 03:00 runs inside Sunday's 02:00 window.
        let mut scan = policy("Scan", "rate(1 day)");
        scan.baseline_override = None;
        scan.last_execution = Some("2026-12-05T03:00:00Z".parse().unwrap());
        let o = judged(
            &[(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))],
            &[scan],
        );
        o.assert_says(Status::Warn, "run within 4 h of each other");
        assert!(
            o.summary.contains("at 2026-12-20T02:00:00Z")
                && o.summary.contains("at 2026-12-20T03:00:00Z"),
            "{}",
            o.summary
        );
    }

    #[test]
    fn only_scans_is_no_patching() {
        let mut scan = with_hooks(Some(GATE_DOCUMENT));
        scan.operation = Some("Scan".into());
        let o = judged(&[(window(), tasks(vec![scan]))], &[]);
        o.assert_says(Status::Warn, "nothing installs patches on this node");
    }

    #[test]
    fn an_install_longer_than_the_window_warns() {
        let one = [(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))];
        let o = judge_with(&one, Ok(&[]), Some(Duration::from_secs(200 * 60)));
        o.assert_says(Status::Warn, "the last install took 200 min, longer than the window production-linux's 4 h minus its 1 h cutoff");
        assert!(
            o.remedy
                .as_deref()
                .unwrap_or_default()
                .contains("--duration 5"),
            "{o:?}"
        );
        let o = judge_with(&one, Ok(&[]), Some(Duration::from_secs(170 * 60)));
        assert_eq!(o.status, Status::Pass, "{o:?}");
    }

    #[test]
    fn associations_refused_name_the_action() {
        let denied = CallError::Denied {
            action: "ssm:DescribeEffectiveInstanceAssociations",
            message: "not authorized".into(),
        };
        // Nothing else seen: skip, naming the action.
        let o = judge_with(&[], Err(&denied), None);
        o.assert_says(Status::Skip, "ssm:DescribeEffectiveInstanceAssociations");
        // A window seen: it is judged, the refusal is in the details.
        let one = [(window(), tasks(vec![with_hooks(Some(GATE_DOCUMENT))]))];
        let o = judge_with(&one, Err(&denied), None);
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.details["associations_not_read"].contains("DescribeEffectiveInstanceAssociations"),
            "{o:?}"
        );
    }
}
