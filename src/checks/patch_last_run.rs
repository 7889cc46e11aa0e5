//! `patch.last_run`: what the node's last patch operation left, as the
//! compliance dashboard counts it (`DescribeInstancePatchStates`): failed
//! patches (named, from `DescribeInstancePatches`), patches installed but
//! waiting for a reboot, no operation for weeks, or a run made under
//! another patch group or baseline than today's. And what the patch states
//! cannot show: a last run that failed before it completed
//! (`ListCommandInvocations`), with its exit code's meaning, its Operation
//! and the end of its error output.

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity, Status};
use crate::aws::invocations::{self, FailedRun, Invocation};
use crate::aws::patching::{self, CallError, PatchState};
use crate::config::units::format_age;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patch.last_run",
    group: Group::Cloud,
    title: "Last patch operation",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "`ssm:DescribeInstancePatchStates` for this node (last operation, its end, failed / missing / pending-reboot / critical counts, the group and baseline used) and the failed patches' names (`ssm:DescribeInstancePatches`, at most 10); the node's last 5 `AWS-RunPatchBaseline`/`AWS-RunPatchBaselineWithHooks` runs (`ssm:ListCommandInvocations`) and, for a failed last run, its Operation (`ssm:ListCommands`) and the end of its error output (`ssm:GetCommandInvocation`, secrets masked)",
        warns: "failed patches (named); patches waiting for a reboot; no operation in 35 days or never; a run under another patch group than today's; the last patch run failed or timed out (its time, operation, exit code and what the code means)",
        fails: "—",
        fix: "the last run's output in Run Command; reboot; a scan",
        cannot_see: "local mode, no identity or no credentials / the optional action refused (AccessDenied; without `ssm:ListCommandInvocations` the rest still runs and says the runs were not read) / SSM does not answer",
        reports: "`skip` / `skip` naming the action to add / `error`",
    },
};

/// A node not scanned or patched for this long has missed its windows.
pub const NO_RUN_AFTER: Duration = Duration::from_secs(35 * 24 * 3600);
/// Failed patches named in the summary.
pub const FAILED_SHOWN: usize = 10;

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let node = id.instance_id.as_str();
        let (state, recent) =
            tokio::join!(ctx.patch_state(&ssm, node), invocations::recent(&ssm, node));
        let state = match state {
            Ok(s) => s,
            Err(e) => return call_outcome(&e),
        };
        let failed = match &state {
            Some(s) if s.failed > 0 => {
                match patching::failed_patches(&ssm, node, FAILED_SHOWN).await {
                    Ok(names) => names,
                    Err(e) => vec![format!("(names not read: {e})")],
                }
            }
            _ => Vec::new(),
        };
        let failure = match recent.as_deref() {
            Ok([last, ..]) if last.failed() => {
                Some(invocations::failed_run(&ssm, node, last).await)
            }
            _ => None,
        };
        let group = ctx.patch_group(&id).await;
        let outcome = judge(state.as_ref(), &failed, group.as_deref(), ctx.now);
        let runs = Runs {
            recent: &recent,
            failure: failure.as_ref(),
            instance_id: node,
        };
        with_runs(outcome, &runs, ctx.now)
    })
}

/// The node's recent patch runs, as read.
pub struct Runs<'a> {
    pub recent: &'a Result<Vec<Invocation>, CallError>,
    /// What was read of the last run, when it failed.
    pub failure: Option<&'a FailedRun>,
    pub instance_id: &'a str,
}

/// The patch states' verdict with the runs beside it: a last run that
/// failed turns a pass into a warning (its patch states are the run's
/// before it); runs not read are said, and change no status.
pub fn with_runs(outcome: Outcome, runs: &Runs, now: SystemTime) -> Outcome {
    let list = match runs.recent {
        Err(e) => {
            let why = match e {
                CallError::Denied { action, .. } => format!(
                    "add {action} to the node's role to see a run that failed before it completed"
                ),
                CallError::Failed(why) => why.clone(),
            };
            return Outcome {
                summary: format!(
                    "{}; the last patch runs were not read: {why}",
                    outcome.summary
                ),
                ..outcome
            }
            .detail("runs_not_read", e);
        }
        Ok(list) => list,
    };
    let shown: Vec<String> = list.iter().map(run_line).collect();
    let outcome = outcome.detail(
        "recent_runs",
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join("; ")
        },
    );
    let (Some(last), Some(failure)) = (list.first(), runs.failure) else {
        return outcome;
    };
    let (sentence, remedy) = failed_sentence(last, failure, runs.instance_id, now);
    let summary = match outcome.status {
        Status::Pass => format!(
            "{sentence}; its patch states are the run's before it ({})",
            outcome.summary
        ),
        _ => format!("{sentence}; {}", outcome.summary),
    };
    let remedy = match &outcome.remedy {
        Some(r) => format!("{remedy} {r}"),
        None => remedy,
    };
    let mut outcome = Outcome {
        status: Status::Warn,
        summary,
        remedy: Some(remedy),
        details: outcome.details,
    };
    if let Some(tail) = &failure.error_tail {
        outcome = outcome.detail("last_run_error_output", tail);
    }
    if !failure.not_read.is_empty() {
        outcome = outcome.detail("last_run_not_read", failure.not_read.join("; "));
    }
    outcome
        .detail("last_run_command_id", &last.command_id)
        .detail(
            "last_run_response_code",
            last.response_code.map_or("none".into(), |c| c.to_string()),
        )
}

/// "2026-12-01T02:00:00Z AWS-RunPatchBaseline Failed (exit 156)"
fn run_line(i: &Invocation) -> String {
    let when = i
        .requested
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| "(no date)".into());
    let code = i
        .response_code
        .map(|c| format!(" (exit {c})"))
        .unwrap_or_default();
    format!("{when} {} {}{code}", i.document, i.status)
}

/// The failed last run as a sentence, and its remedy.
fn failed_sentence(
    last: &Invocation,
    failure: &FailedRun,
    instance_id: &str,
    now: SystemTime,
) -> (String, String) {
    let when = last
        .requested
        .and_then(|t| now.duration_since(t).ok())
        .map(|a| format!(" {} ago", format_age(a)))
        .unwrap_or_default();
    let operation = failure
        .operation
        .as_deref()
        .map(|o| format!(", Operation={o}"))
        .unwrap_or_default();
    let details = if last.status_details.is_empty() || last.status_details == last.status {
        String::new()
    } else {
        format!(" ({})", last.status_details)
    };
    let code = match last.response_code {
        Some(c) => match invocations::meaning(c) {
            Some(m) => format!(" with exit code {c}: {m}"),
            None => format!(" with exit code {c}"),
        },
        None => String::new(),
    };
    let said = failure
        .error_tail
        .as_deref()
        .and_then(|t| t.lines().last())
        .map(|l| format!("; it said \"{l}\""))
        .unwrap_or_default();
    let verb = if last.status == "TimedOut" {
        "timed out"
    } else {
        "failed"
    };
    (
        format!("the last patch run{when} ({}{operation}) {verb}{details}{code}{said}", last.document),
        format!("Read the whole output with `aws ssm get-command-invocation --command-id {} --instance-id {instance_id} --plugin-name PatchLinux`, fix what it says, and run a Scan to confirm before the window.", last.command_id),
    )
}

pub fn judge(
    state: Option<&PatchState>,
    failed: &[String],
    group_now: Option<&str>,
    now: SystemTime,
) -> Outcome {
    let Some(s) = state else {
        return Outcome::warn(
            "SSM has no patch operation for this node: it has never been scanned or patched",
            "Run a scan to see where it stands: Patch Manager → Patch now → Scan, or `aws ssm send-command --document-name AWS-RunPatchBaseline --parameters Operation=Scan --targets Key=InstanceIds,Values=<this node>`.",
        );
    };
    let age = s.ended.and_then(|t| now.duration_since(t).ok());
    let when = age
        .map(|a| format!(" {} ago", format_age(a)))
        .unwrap_or_default();
    let (problems, remedies): (Vec<String>, Vec<String>) =
        findings(s, failed, group_now, age).into_iter().unzip();
    let summary_tail = format!(
        "last {}{when} with baseline {}: {} failed, {} missing, {} pending reboot, {} critical non-compliant",
        s.operation, s.baseline_id, s.failed, s.missing, s.installed_pending_reboot, s.critical_non_compliant
    );
    let outcome = if problems.is_empty() {
        Outcome::pass(summary_tail)
    } else {
        Outcome::warn(
            format!("{} ({summary_tail})", problems.join("; ")),
            remedies.join(" "),
        )
    };
    let outcome = outcome
        .detail("operation", &s.operation)
        .detail("failed", s.failed)
        .detail("missing", s.missing)
        .detail("installed_pending_reboot", s.installed_pending_reboot)
        .detail("critical_non_compliant", s.critical_non_compliant)
        .detail("patch_group", &s.patch_group)
        .detail("baseline_id", &s.baseline_id);
    match s.ended {
        Some(t) => outcome.detail("ended", humantime::format_rfc3339_seconds(t)),
        None => outcome,
    }
}

/// What the last operation left wrong: each problem with its remedy.
fn findings(
    s: &PatchState,
    failed: &[String],
    group_now: Option<&str>,
    age: Option<Duration>,
) -> Vec<(String, String)> {
    let when = age
        .map(|a| format!(" {} ago", format_age(a)))
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut remedies = Vec::new();
    if s.failed > 0 {
        let more = (s.failed as usize).saturating_sub(failed.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        problems.push(format!(
            "{} patch(es) failed: {}{more}",
            s.failed,
            failed.join(", ")
        ));
        remedies.push("See why in the last run's output (Run Command → the AWS-RunPatchBaseline command → this node), fix it, and install again before the window.".to_string());
    }
    if s.installed_pending_reboot > 0 {
        problems.push(format!(
            "{} patch(es) are installed but wait for a reboot",
            s.installed_pending_reboot
        ));
        remedies.push(
            "Reboot the node (`sudo systemctl reboot`) or let the window's RebootIfNeeded do it."
                .to_string(),
        );
    }
    if age.is_some_and(|a| a > NO_RUN_AFTER) {
        problems.push(format!("the last operation was{when}, more than 35 days ago: no window has scanned or patched it since"));
        remedies.push(
            "Check that something patches this node (patch.sources says what does, and when)."
                .to_string(),
        );
    }
    if let Some(g) = group_now {
        if !s.patch_group.is_empty() && s.patch_group != g {
            problems.push(format!(
                "it ran under the patch group {} but the node's group is now {g}",
                s.patch_group
            ));
            remedies.push(
                "The next scan reports under the new group; run one to refresh compliance."
                    .to_string(),
            );
        }
    }
    problems.into_iter().zip(remedies).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 24 * 3600;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn state(days_ago: u64, failed: i32, reboot: i32) -> PatchState {
        PatchState {
            operation: "Install".into(),
            started: None,
            ended: Some(now() - Duration::from_secs(days_ago * DAY)),
            patch_group: "production-linux".into(),
            baseline_id: "pb-0123".into(),
            failed,
            missing: 0,
            installed_pending_reboot: reboot,
            critical_non_compliant: 0,
        }
    }

    #[test]
    fn a_clean_recent_install_passes() {
        let o = judge(Some(&state(3, 0, 0)), &[], Some("production-linux"), now());
        o.assert_begins(
            Status::Pass,
            "last Install 3d 0h ago with baseline pb-0123: 0 failed",
        );
    }

    #[test]
    fn failed_patches_are_named() {
        let names = vec![
            "openssl".to_string(),
            "libc6".to_string(),
            "curl".to_string(),
        ];
        let o = judge(
            Some(&state(3, 3, 0)),
            &names,
            Some("production-linux"),
            now(),
        );
        assert_eq!(o.status, Status::Warn);
        assert!(
            o.summary
                .starts_with("3 patch(es) failed: openssl, libc6, curl ("),
            "{}",
            o.summary
        );
    }

    #[test]
    fn pending_reboot_old_runs_and_a_changed_group_warn() {
        let o = judge(Some(&state(3, 0, 2)), &[], Some("production-linux"), now());
        assert_eq!(o.status, Status::Warn);
        assert!(o
            .summary
            .contains("2 patch(es) are installed but wait for a reboot"));
        let o = judge(Some(&state(40, 0, 0)), &[], Some("production-linux"), now());
        o.assert_says(Status::Warn, "more than 35 days ago");
        let o = judge(Some(&state(3, 0, 0)), &[], Some("staging-linux"), now());
        assert_eq!(o.status, Status::Warn);
        assert!(o.summary.contains(
            "ran under the patch group production-linux but the node's group is now staging-linux"
        ));
        let never = judge(None, &[], None, now());
        assert_eq!(never.status, Status::Warn);
    }

    fn run(status: &str, details: &str, code: Option<i32>, hours_ago: u64) -> Invocation {
        Invocation {
            command_id: "c-1".into(),
            document: "AWS-RunPatchBaselineWithHooks".into(),
            requested: Some(now() - Duration::from_secs(hours_ago * 3600)),
            status: status.into(),
            status_details: details.into(),
            response_code: code,
        }
    }

    fn clean() -> Outcome {
        judge(Some(&state(3, 0, 0)), &[], Some("production-linux"), now())
    }

    /// A clean patch state with these runs beside it, for node i-0test.
    fn with(recent: &Result<Vec<Invocation>, CallError>, failure: Option<&FailedRun>) -> Outcome {
        let runs = Runs {
            recent,
            failure,
            instance_id: "i-0test",
        };
        with_runs(clean(), &runs, now())
    }

    #[test]
    fn a_failed_last_run_warns_with_its_code_operation_and_output() {
        let recent = Ok(vec![
            run("Failed", "Failed", Some(156), 20),
            run("Success", "Success", Some(0), 24 * 30),
        ]);
        let failure = FailedRun {
            operation: Some("Install".into()),
            error_tail: Some(
                "Traceback (most recent call last):\nUnable to download payload: https://x/."
                    .into(),
            ),
            not_read: vec![],
        };
        let o = with(&recent, Some(&failure));
        o.assert_begins(Status::Warn, "the last patch run 20h 0m ago (AWS-RunPatchBaselineWithHooks, Operation=Install) failed with exit code 156: the payload could not be downloaded from S3");
        for words in [
            "it said \"Unable to download payload: https://x/.\"",
            "its patch states are the run's before it (last Install 3d 0h ago",
        ] {
            o.assert_says(Status::Warn, words);
        }
        assert!(o.remedy.unwrap().contains("aws ssm get-command-invocation --command-id c-1 --instance-id i-0test --plugin-name PatchLinux"));
        assert_eq!(o.details["last_run_response_code"], "156");
        assert!(o.details["recent_runs"].contains("AWS-RunPatchBaselineWithHooks Success (exit 0)"));
        assert!(o.details["last_run_error_output"].starts_with("Traceback"));
    }

    #[test]
    fn a_timed_out_run_with_nothing_more_read() {
        let recent = Ok(vec![run("TimedOut", "ExecutionTimedOut", Some(-1), 2)]);
        let failure = FailedRun {
            operation: None,
            error_tail: None,
            not_read: vec![
                "its Operation (ssm:ListCommands answered AccessDeniedException: no)".into(),
            ],
        };
        let o = with(&recent, Some(&failure));
        o.assert_begins(Status::Warn, "the last patch run 2h 0m ago (AWS-RunPatchBaselineWithHooks) timed out (ExecutionTimedOut) with exit code -1: the agent ended the run");
        assert!(o.details["last_run_not_read"].contains("ssm:ListCommands"));
    }

    #[test]
    fn successful_runs_none_and_runs_not_read_change_no_status() {
        let ok = Ok(vec![run("Success", "Success", Some(0), 20)]);
        let none = Ok(vec![]);
        for (recent, shown) in [
            (&ok, "AWS-RunPatchBaselineWithHooks Success (exit 0)"),
            (&none, "none"),
        ] {
            let o = with(recent, None);
            assert_eq!(o.status, Status::Pass);
            assert!(o.details["recent_runs"].contains(shown));
        }
        let denied = Err(CallError::Denied {
            action: "ssm:ListCommandInvocations",
            message: "not authorized".into(),
        });
        let o = with(&denied, None);
        o.assert_says(
            Status::Pass,
            "the last patch runs were not read: add ssm:ListCommandInvocations to the node's role",
        );
    }
}
