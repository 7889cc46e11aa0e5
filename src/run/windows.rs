//! The host's windows: the config's `[[window]]` entries and SSM's schedule
//! for this node, merged.

use crate::config::schedule::window::Window;
use crate::facts::Context;

/// SSM's windows for this node; `Err` says why not, with the remedy.
pub async fn from_ssm(ctx: &Context) -> Result<Vec<Window>, String> {
    let identity = ctx
        .identity()
        .await
        .as_ref()
        .map_err(|e| format!("the node's identity is unknown ({e:?})"))?
        .clone();
    let ssm = ctx.ssm_client(&identity).map_err(|e| e.to_string())?;
    let mut windows = crate::aws::windows::from_ssm(
        &ssm,
        &identity.instance_id,
        ctx.settings.patch_group.value.as_deref(),
    )
    .await
    .map_err(|u| match u.remedy {
        Some(r) => format!("{}. {r}", u.error),
        None => u.error,
    })?;
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
