//! AWS facts several checks share, gathered once per run on first use:
//! the node's identity, the TLS trust, the agent's proxy, endpoint probes.
//! In `local` mode none of this is gathered and nothing leaves the host.

use super::agent::proxy::{self, AgentProxy};
use super::{Context, Outcome};
use crate::aws::endpoints::{self, Probe, Proxy};
use crate::aws::identity::{self, Identity, IdentityError};
use crate::host::mode::Mode;
use std::sync::Arc;
use tokio::sync::OnceCell;

pub async fn identity(ctx: &Context) -> &Result<Identity, IdentityError> {
    ctx.shared
        .identity
        .get_or_init(|| {
            identity::lookup(
                &ctx.root,
                &ctx.host,
                ctx.settings.aws.imds_endpoint.as_deref(),
            )
        })
        .await
}

/// Why an AWS check does not run here, or `None` when it may.
pub fn local_skip(ctx: &Context) -> Option<Outcome> {
    (ctx.host.mode == Mode::Local).then(|| {
        Outcome::skip("local mode: nothing on the network is contacted (use --mode ec2 or --mode hybrid on a managed node)")
    })
}

/// The region to probe: `aws.region` in the config, else the identity's.
pub async fn region(ctx: &Context) -> Result<String, Outcome> {
    if let Some(skip) = local_skip(ctx) {
        return Err(skip);
    }
    if let Some(r) = &ctx.settings.aws.region {
        return Ok(r.clone());
    }
    match identity(ctx).await {
        Ok(id) => Ok(id.region.clone()),
        Err(_) => Err(Outcome::skip(
            "the region is unknown because the node's identity could not be read (agent.identity says why); set aws.region to check anyway",
        )),
    }
}

/// The TLS trust for probes and repository fetches, loaded once.
pub fn tls(ctx: &Context) -> Result<Arc<rustls::ClientConfig>, String> {
    ctx.shared
        .tls
        .get_or_init(|| crate::aws::tls::client_config(ctx.settings.endpoints.ca_bundle.as_deref()))
        .clone()
}

pub async fn agent_proxy(ctx: &Context) -> Option<AgentProxy> {
    proxy::of_agent(ctx).await
}

/// Probes a service's endpoint once per run; `endpoint.<service>` and
/// `clock.sync` share the answer.
pub async fn probe(ctx: &Context, service: &str) -> Result<Probe, Outcome> {
    let region = region(ctx).await?;
    let cell = {
        let mut probes = ctx.shared.probes.lock().unwrap();
        probes
            .entry(service.to_string())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone()
    };
    let result = cell
        .get_or_init(|| async {
            let url = crate::aws::sdk::endpoint_override(&ctx.settings, service);
            let target = endpoints::target(service, &region, url.as_deref()).map_err(|e| {
                Outcome::error(
                    format!("the endpoint URL for {service} is unusable: {e}"),
                    format!("Fix endpoints.urls.{service} (or AWS_ENDPOINT_URL_{}).", service.to_ascii_uppercase()),
                )
            })?;
            let tls = tls(ctx).map_err(|e| Outcome::error(e, "Install the ca-certificates package, or fix endpoints.ca_bundle."))?;
            let agent_proxy = agent_proxy(ctx).await;
            let proxy = match agent_proxy.as_ref().and_then(|p| p.for_https(&target.host)) {
                Some(url) => Some(Proxy::parse(url).map_err(|e| {
                    Outcome::error(
                        format!("the agent's proxy setting is unusable: {e}"),
                        "Fix HTTPS_PROXY in the agent's environment (`systemctl cat amazon-ssm-agent`).",
                    )
                })?),
                None => None,
            };
            Ok(endpoints::probe(target, tls, proxy, ctx.settings.endpoints.timeout).await)
        })
        .await;
    result.clone()
}

/// An SSM client for this node: its region (`aws.region` or the
/// identity's) and the credentials the agent would use.
pub fn ssm_client(ctx: &Context, identity: &Identity) -> Result<aws_sdk_ssm::Client, String> {
    let credentials = crate::aws::sdk::credentials(&ctx.root, &ctx.settings, identity)?;
    let region = ctx
        .settings
        .aws
        .region
        .clone()
        .unwrap_or(identity.region.clone());
    Ok(crate::aws::sdk::ssm_client(
        &ctx.settings,
        &region,
        &credentials,
    ))
}
