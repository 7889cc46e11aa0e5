//! Outcomes several checks give for the same reason: systemd could not be
//! asked, the host runs in local mode, an endpoint could not be probed.

use super::{Context, Outcome};
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
