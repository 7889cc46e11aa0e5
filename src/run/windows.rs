//! The host's windows: the config's `[[window]]` entries and SSM's schedule
//! for this node — its maintenance windows and the runs of the State Manager
//! associations that patch it (Quick Setup patch policies among them) —
//! merged.

use crate::config::schedule::window::Window;
use crate::facts::Context;

/// Why SSM's schedule is not among the windows.
#[derive(Debug, thiserror::Error)]
pub enum NoSchedule {
    #[error("the node's identity is unknown ({0})")]
    NoIdentity(String),
    #[error(transparent)]
    Credentials(#[from] crate::aws::sdk::CredentialsError),
    #[error("{}{}", .0.error, .0.remedy.as_deref().map(|r| format!(". {r}")).unwrap_or_default())]
    Unavailable(crate::aws::windows::ScheduleUnavailable),
}

/// How far ahead an association's runs are listed.
const ASSOCIATION_RUNS: usize = 3;

/// The runs of the associations that install: a preflight before each. A
/// scan changes no package (and a `rate(30 minutes)` scan would have the
/// daemon run every half hour); patch.sources judges the scans.
fn installing_runs(
    associations: &[crate::aws::associations::Association],
    now: jiff::Timestamp,
) -> Vec<Window> {
    associations
        .iter()
        .filter(|a| a.installs())
        .flat_map(|a| a.windows(now, ASSOCIATION_RUNS))
        .collect()
}

/// SSM's schedule for this node: its windows and its patching
/// associations' runs, with a sentence for each that could not be read.
#[derive(Debug, Default)]
pub struct FromSsm {
    pub windows: Vec<Window>,
    pub not_read: Option<String>,
}

/// SSM's windows and association runs for this node; `Err` when neither
/// could be read, saying why, with the remedy.
pub async fn from_ssm(ctx: &Context) -> Result<FromSsm, NoSchedule> {
    let identity = ctx
        .identity()
        .await
        .as_ref()
        .map_err(|e| NoSchedule::NoIdentity(format!("{e:?}")))?
        .clone();
    let ssm = ctx.ssm_client(&identity)?;
    let (windows, associations) = tokio::join!(
        maintenance_windows(ctx, &identity, &ssm),
        crate::aws::associations::of_node(&ssm, &identity.instance_id)
    );
    let now = jiff::Timestamp::try_from(ctx.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    match (windows, associations) {
        (Ok(mut windows), Ok(associations)) => {
            windows.extend(installing_runs(&associations, now));
            Ok(FromSsm { windows, not_read: None })
        }
        (Ok(windows), Err(e)) => Ok(FromSsm {
            windows,
            not_read: Some(format!("the node's State Manager associations were not read ({e}); add the action it names to the node's role (/usr/share/ssm-preflight/iam/ssm-preflight-policy.json lists it) to run ahead of patch policies too")),
        }),
        (Err(e), Ok(associations)) => Ok(FromSsm {
            windows: installing_runs(&associations, now),
            not_read: Some(format!("the node's maintenance windows were not read: {e}")),
        }),
        (Err(e), Err(_)) => Err(e),
    }
}

/// The node's maintenance windows, each with its length.
async fn maintenance_windows(
    ctx: &Context,
    identity: &crate::aws::identity::Identity,
    ssm: &aws_sdk_ssm::Client,
) -> Result<Vec<Window>, NoSchedule> {
    // By instance ID and by the Patch Group tag, as patch.sources looks
    // (the config's value, else the tags IMDS and the API show).
    let mut windows = crate::aws::windows::from_ssm(
        ssm,
        &identity.instance_id,
        ctx.patch_group_sources(identity),
        None,
    )
    .await
    .map_err(NoSchedule::Unavailable)?;
    // Each window's length, so that pkg.state judges the update timers
    // against the real window rather than an assumed 4 hours. Optional
    // (ssm:GetMaintenanceWindow): without it the length stays unknown.
    let mut lengths: std::collections::HashMap<String, Option<u64>> = Default::default();
    for w in &mut windows {
        let Some(id) = w.window_id.clone() else {
            continue;
        };
        if !lengths.contains_key(&id) {
            let hours = crate::aws::windows::duration_hours(ssm, &id).await;
            lengths.insert(id.clone(), hours.map(|h| h * 3600));
        }
        w.duration_secs = lengths[&id];
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::associations::Association;

    #[test]
    fn only_associations_that_install_get_a_lead_run() {
        let association = |id: &str, operation: &str| Association {
            id: id.into(),
            document: "AWS-RunPatchBaseline".into(),
            schedule: Some("cron(0 2 ? * SUN *)".into()),
            operation: operation.into(),
            ..Default::default()
        };
        let now: jiff::Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let runs = installing_runs(
            &[
                association("scan", "Scan"),
                association("install", "Install"),
            ],
            now,
        );
        assert_eq!(runs.len(), ASSOCIATION_RUNS);
        assert!(runs
            .iter()
            .all(|w| w.window_id.as_deref() == Some("install")));
        assert_eq!(runs[0].start, "2026-12-13T02:00:00Z");
    }
}
