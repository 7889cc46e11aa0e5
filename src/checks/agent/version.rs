//! `agent.version`: the installed agent's version against the minimum that
//! runs `AWS-RunPatchBaselineWithHooks` (3.0.502, configurable) and, on a
//! managed node, against the newest version AWS publishes for its region.

use crate::checks::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::agent::{binary, run_version, AgentUnits, CLASSIC_BINARY, SNAP_BINARY};
use crate::host::version;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.version",
    group: Group::Agent,
    title: "amazon-ssm-agent version",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "`amazon-ssm-agent --version` (the snap's binary when the snap runs the agent), with a timeout; outside `local` mode also the newest version AWS publishes for the region (the public object `amazon-ssm-<region>/latest/VERSION` on the S3 endpoint, through the agent's proxy)",
        warns: "a minor version or more behind the region's newest; the newest could not be read",
        fails: "older than `agent.min_version` (3.0.502, the oldest that runs `AWS-RunPatchBaselineWithHooks` and so this tool's gate)",
        fix: "`AWS-UpdateSSMAgent`, `snap refresh amazon-ssm-agent`",
        cannot_see: "no agent binary / `--version` fails or does not answer / the region's newest version (S3 does not answer, the region is unknown)",
        reports: "`skip` / `error` / `warn`",
    },
};

pub fn plan(ctx: &Context) -> crate::checks::Check {
    crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let units = ctx.agent_units().await.as_ref().ok().cloned();
        let (root, found_units) = (ctx.root.clone(), units.clone());
        // Off the runtime's thread, like every file lookup in a task.
        let found = tokio::task::spawn_blocking(move || binary(&root, found_units.as_ref()))
            .await
            .ok()
            .flatten();
        let Some(binary) = found else {
            return match units {
                Some(u) if u.in_use().is_none() => Outcome::skip(
                    "amazon-ssm-agent is not installed (agent.service says how to install it)",
                ),
                _ => Outcome::skip(format!(
                    "no agent binary at {CLASSIC_BINARY} or {SNAP_BINARY}"
                )),
            };
        };
        let budget = ctx.settings.checks.timeout.mul_f32(0.8);
        let shown = binary.1.clone();
        let answer = tokio::task::spawn_blocking(move || run_version(&binary.0, budget)).await;
        let snap = units.as_ref().is_some_and(AgentUnits::is_snap);
        match answer {
            Ok(Ok(output)) => {
                let outcome =
                    judge(&output, &ctx.settings.agent.min_version, snap).detail("binary", shown);
                if ctx.is_local() {
                    return outcome;
                }
                let latest = latest(&ctx).await;
                match parse_version(&output) {
                    Some(found) => with_latest(outcome, found, &latest, snap),
                    None => outcome,
                }
            }
            Ok(Err(why)) => Outcome::error(
                format!("cannot tell the agent's version: {why}"),
                format!("Run `sudo {shown} --version` by hand; reinstall the agent if it fails."),
            ),
            Err(e) => Outcome::error(
                format!("cannot tell the agent's version: {e}"),
                "This is a bug in ssm-preflight: report it.",
            ),
        }
    })
}

/// The region's newest agent version, read once, within `aws.attempt_timeout`.
async fn latest(ctx: &Context) -> Result<String, String> {
    let region = ctx.region().await.map_err(|e| e.to_string())?;
    let http = ctx.aws_http().await.map_err(|e| e.to_string())?;
    let url =
        crate::aws::agent_release::latest_version_url(&ctx.endpoint_url("s3", &region), &region);
    let bound = ctx.settings.aws.attempt_timeout;
    let fetch = async {
        tokio::time::timeout(
            bound,
            crate::aws::agent_release::latest_version(&http, &url),
        )
        .await
        .map(|answer| answer.map_err(|e| e.to_string()))
        .unwrap_or_else(|_| {
            Err(format!(
                "{url} did not answer within {}",
                humantime::format_duration(bound)
            ))
        })
    };
    // Beside the S3 endpoint's probe, not after it: when the probe fails
    // first, the wait ends there.
    tokio::select! {
        biased;
        answer = fetch => answer,
        why = crate::checks::common::probe_failure(ctx, "s3") => Err(why),
    }
}

/// Major and minor of a version ("3.3.40.0" → (3, 3)).
fn major_minor(v: &str) -> (u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The installed version against the region's latest: a minor version or
/// more behind warns; a latest that could not be read is said, and a pass
/// that could not compare becomes a warning (it did not look).
pub fn with_latest(
    outcome: Outcome,
    found: &str,
    latest: &Result<String, String>,
    snap: bool,
) -> Outcome {
    use crate::checks::Status;
    let update = if snap {
        "`sudo snap refresh amazon-ssm-agent`"
    } else {
        "the SSM document `AWS-UpdateSSMAgent` on this node (or turn on automatic agent updates in Fleet Manager's settings)"
    };
    match latest {
        Ok(latest) => {
            let outcome = outcome.detail("latest", latest);
            if major_minor(found) < major_minor(latest) && outcome.status == Status::Pass {
                Outcome {
                    details: outcome.details.clone(),
                    ..Outcome::warn(
                        format!("amazon-ssm-agent {found} is a minor version or more behind {latest}, the newest in this region"),
                        format!("Update the agent with {update}; old agents miss the fixes Patch Manager's documents rely on."),
                    )
                }
            } else if outcome.status == Status::Pass {
                Outcome {
                    summary: format!("{}; the newest in this region is {latest}", outcome.summary),
                    ..outcome
                }
            } else {
                outcome
            }
        }
        Err(why) => {
            let outcome = outcome.detail("latest", format!("not known: {why}"));
            if outcome.status == Status::Pass {
                Outcome {
                    details: outcome.details.clone(),
                    ..Outcome::warn(
                        format!("{}, but the newest version in this region could not be read: {why}", outcome.summary),
                        "endpoint.s3 says whether S3 answers from this node; the patch run downloads from S3 too.",
                    )
                }
            } else {
                outcome
            }
        }
    }
}

/// The version in `amazon-ssm-agent --version` output ("SSM Agent version: 3.3.40.0").
pub fn parse_version(output: &str) -> Option<&str> {
    output.split_whitespace().rev().find(|t| {
        t.contains('.')
            && t.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    })
}

pub fn judge(output: &str, minimum: &str, snap: bool) -> Outcome {
    let Some(found) = parse_version(output) else {
        let shown: String = output.trim().chars().take(80).collect();
        return Outcome::error(
            format!("the agent printed no version: `{shown}`"),
            "Run `sudo amazon-ssm-agent --version` by hand; reinstall the agent if it fails.",
        );
    };
    let update = if snap {
        "`sudo snap refresh amazon-ssm-agent`"
    } else {
        "the SSM document `AWS-UpdateSSMAgent` on this node, or your package manager's update of amazon-ssm-agent"
    };
    // Below the minimum fails: such an agent cannot run
    // AWS-RunPatchBaselineWithHooks (nor this tool's pre-install gate), and
    // one that old misses the fixes the current patch documents rely on.
    let outcome = if version::compare(found, minimum) == std::cmp::Ordering::Less {
        Outcome::fail(
            format!("amazon-ssm-agent {found} is older than {minimum}, the oldest that runs AWS-RunPatchBaselineWithHooks"),
            format!("Update the agent with {update}, then run `ssm-preflight check --only agent.version`."),
        )
    } else {
        Outcome::pass(format!("amazon-ssm-agent {found} (at least {minimum})"))
    };
    outcome.detail("version", found).detail("minimum", minimum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn versions_against_the_minimum() {
        assert_eq!(
            parse_version("SSM Agent version: 3.3.40.0\n"),
            Some("3.3.40.0")
        );
        assert_eq!(parse_version("3.0.1124.0"), Some("3.0.1124.0"));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(
            judge("SSM Agent version: 3.3.40.0", "3.0.502", false).status,
            Status::Pass
        );
        let old = judge("SSM Agent version: 2.3.1319.0", "3.0.502", true);
        assert_eq!(old.status, Status::Fail);
        assert!(old.summary.contains("2.3.1319.0 is older than 3.0.502"));
        assert!(old.remedy.unwrap().contains("snap refresh"));
        assert_eq!(
            judge("SSM Agent version: 3.0.502.0", "3.0.502", false).status,
            Status::Pass
        );
        assert_eq!(judge("oops", "3.0.502", false).status, Status::Error);
    }

    #[test]
    fn against_the_regions_latest() {
        let pass = || judge("SSM Agent version: 3.3.40.0", "3.0.502", false);
        let same_minor = with_latest(pass(), "3.3.40.0", &Ok("3.3.1142.0".into()), false);
        assert_eq!(same_minor.status, Status::Pass);
        assert!(
            same_minor
                .summary
                .ends_with("the newest in this region is 3.3.1142.0"),
            "{}",
            same_minor.summary
        );
        let behind = with_latest(pass(), "3.3.40.0", &Ok("3.4.0.0".into()), false);
        behind.assert_says(Status::Warn, "a minor version or more behind 3.4.0.0");
        assert!(behind.remedy.unwrap().contains("AWS-UpdateSSMAgent"));
        let unknown = with_latest(pass(), "3.3.40.0", &Err("no answer".into()), false);
        assert_eq!(unknown.status, Status::Warn);
        assert_eq!(unknown.details["latest"], "not known: no answer");
    }
}
