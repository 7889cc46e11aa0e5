//! The host's windows: the config's `[[window]]` entries and SSM's schedule
//! for this node, merged.

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

/// SSM's windows for this node; `Err` says why not, with the remedy.
pub async fn from_ssm(ctx: &Context) -> Result<Vec<Window>, NoSchedule> {
    let identity = ctx
        .identity()
        .await
        .as_ref()
        .map_err(|e| NoSchedule::NoIdentity(format!("{e:?}")))?
        .clone();
    let ssm = ctx.ssm_client(&identity)?;
    let mut windows = crate::aws::windows::from_ssm(
        &ssm,
        &identity.instance_id,
        ctx.settings
            .patch_group
            .value
            .iter()
            .map(|v| {
                std::future::ready(vec![
                    ("Patch Group".to_string(), v.clone()),
                    ("PatchGroup".to_string(), v.clone()),
                ])
            })
            .collect(),
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
            let hours = crate::aws::windows::duration_hours(&ssm, &id).await;
            lengths.insert(id.clone(), hours.map(|h| h * 3600));
        }
        w.duration_secs = lengths[&id];
    }
    Ok(windows)
}
