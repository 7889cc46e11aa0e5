//! `patch.last_run`: what the node's last patch operation left, as the
//! compliance dashboard counts it (`DescribeInstancePatchStates`): failed
//! patches (named, from `DescribeInstancePatches`), patches installed but
//! waiting for a reboot, no operation for weeks, or a run made under
//! another patch group or baseline than today's.

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::patching::{self, PatchState};
use crate::config::units::format_age;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patch.last_run",
    group: Group::Cloud,
    title: "Last patch operation",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "`ssm:DescribeInstancePatchStates` for this node (last operation, its end, failed / missing / pending-reboot / critical counts, the group and baseline used) and the failed patches' names (`ssm:DescribeInstancePatches`, at most 10)",
        warns: "failed patches (named); patches waiting for a reboot; no operation in 35 days or never; a run under another patch group than today's",
        fails: "—",
        fix: "the last run's output in Run Command; reboot; a scan",
        cannot_see: "local mode, no identity or no credentials / the optional action refused (AccessDenied) / SSM does not answer",
        reports: "`skip` / `skip` naming the action to add / `error`",
    },
};

/// A node not scanned or patched for this long has missed its windows.
pub const NO_RUN_AFTER: Duration = Duration::from_secs(35 * 24 * 3600);
/// Failed patches named in the summary.
pub const FAILED_SHOWN: usize = 10;

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let state = match patching::patch_state(&ssm, &id.instance_id).await {
            Ok(s) => s,
            Err(e) => return call_outcome(&e),
        };
        let failed = match &state {
            Some(s) if s.failed > 0 => {
                match patching::failed_patches(&ssm, &id.instance_id, FAILED_SHOWN).await {
                    Ok(names) => names,
                    Err(e) => vec![format!("(names not read: {e})")],
                }
            }
            _ => Vec::new(),
        };
        let group = ctx.patch_group(&id).await;
        judge(state.as_ref(), &failed, group.as_deref(), ctx.now)
    })
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
            "Check that a window targets this node (window.targeted says whether one does)."
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
}
