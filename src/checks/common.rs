//! Outcomes several checks give for the same reason: systemd could not be
//! asked, the host runs in local mode, an endpoint could not be probed.

use super::{CatalogueEntry, Check, Context, Outcome};
use crate::aws::identity::Identity;
use crate::facts::{ProbeError, RegionUnknown};
use crate::host::systemd::BusError;

/// The outcome when systemd could not be asked.
pub fn bus_outcome(e: &BusError) -> Outcome {
    match e {
        BusError::NoBus(_) => Outcome::skip(format!(
            "{e}, so systemd cannot be asked; this host does not run systemd (a container?)"
        )),
        BusError::NotOnBus { .. } => Outcome::error(
            e.to_string(),
            "Check that systemd is PID 1 (`ps -p 1 -o comm=` prints systemd) and that the bus works: `busctl status org.freedesktop.systemd1`.",
        ),
        BusError::Failed(why) => Outcome::error(
            format!("systemd answered with an error: {why}"),
            "Run ssm-preflight as root; `busctl status org.freedesktop.systemd1` shows whether the bus lets you ask.",
        ),
    }
}

/// Why an AWS check does not run here, or `None` when it may.
pub fn local_skip(ctx: &Context) -> Option<Outcome> {
    ctx.is_local()
        .then(|| Outcome::skip(RegionUnknown::Local.to_string()))
}

/// The outcome when the region to check is unknown.
pub fn region_outcome(e: &RegionUnknown) -> Outcome {
    Outcome::skip(e.to_string())
}

/// The outcome when an endpoint could not be probed at all.
pub fn probe_outcome(e: &ProbeError) -> Outcome {
    match e {
        ProbeError::Region(r) => region_outcome(r),
        ProbeError::BadUrl { service, .. } => Outcome::error(
            e.to_string(),
            format!(
                "Fix endpoints.urls.{service} (or AWS_ENDPOINT_URL_{}).",
                service.to_ascii_uppercase().replace('-', "_")
            ),
        ),
        ProbeError::Tls(_) => Outcome::error(
            e.to_string(),
            "Install the ca-certificates package, or fix endpoints.ca_bundle.",
        ),
        ProbeError::BadProxy(_) => Outcome::error(
            e.to_string(),
            "Fix HTTPS_PROXY in the agent's environment (`systemctl cat amazon-ssm-agent`).",
        ),
    }
}

/// The outcome when an SSM call about this node gave no answer: a missing
/// optional permission is `skip` naming the action to add, anything else
/// is `error` (the check could not look).
pub fn call_outcome(e: &crate::aws::patching::CallError) -> Outcome {
    use crate::aws::patching::CallError;
    match e {
        CallError::Denied { action, .. } => Outcome::skip(format!(
            "{e}; add {action} to the node's role to have this checked (optional; /usr/share/ssm-preflight/iam/ssm-preflight-policy.json lists it)"
        )),
        CallError::Failed(why) => Outcome::error(
            why.clone(),
            "endpoint.ssm and credentials.valid say whether SSM can be reached with the node's credentials; run `ssm-preflight check` again once they pass.",
        ),
    }
}

/// A cloud check: asked about this node with its identity and SSM client
/// (or skipped saying why there are none), while SSM's endpoint is probed:
/// a probe that fails first ends the wait, so a dead endpoint costs its
/// timeout once.
pub fn ssm_task<F, W>(ctx: &Context, entry: &CatalogueEntry, work: W) -> Check
where
    F: std::future::Future<Output = Outcome> + Send + 'static,
    W: FnOnce(Context, Identity, aws_sdk_ssm::Client) -> F + Send + 'static,
{
    super::task(ctx, entry, entry.id, |ctx| async move {
        let probe_ctx = ctx.clone();
        while_reachable(&probe_ctx, "ssm", async move {
            match node_ssm(&ctx).await {
                Ok((id, ssm)) => work(ctx, id, ssm).await,
                Err(why) => why,
            }
        })
        .await
    })
}

/// The node and its SSM client, or the outcome that says why there is none.
pub async fn node_ssm(ctx: &Context) -> Result<(Identity, aws_sdk_ssm::Client), Outcome> {
    ctx.node_ssm().await.map_err(|why| {
        if ctx.is_local() {
            Outcome::skip(why.to_string())
        } else {
            Outcome::skip(format!("{why}, so SSM cannot be asked about this node"))
        }
    })
}

/// Resolves only when `service`'s endpoint probe (the one its
/// `endpoint.<service>` check reports, made once per run) fails, with why;
/// a probe that answers, or cannot run for want of a region (local mode, no
/// identity: the caller's own work says so), never resolves.
pub async fn probe_failure(ctx: &Context, service: &str) -> String {
    match ctx.probe(service).await {
        Ok(probe) if probe.result.is_err() => format!(
            "{service}'s endpoint {} does not answer (endpoint.{service} says why)",
            probe.target.host
        ),
        Err(crate::facts::ProbeError::Region(_)) | Ok(_) => std::future::pending().await,
        Err(e) => format!("{service}'s endpoint could not be probed ({e})"),
    }
}

/// Runs `work` while `service`'s endpoint is probed: the calls start at
/// once, beside the probe rather than after it, and when the probe fails
/// first the wait ends there, saying why. So a healthy endpoint adds no
/// round trip to the run, and a dead one costs its probe's timeout once.
pub async fn while_reachable(
    ctx: &Context,
    service: &str,
    work: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    tokio::select! {
        biased;
        outcome = work => outcome,
        why = probe_failure(ctx, service) => Outcome::skip(format!("{why}, so it was not asked")),
    }
}
