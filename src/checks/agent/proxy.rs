//! `agent.proxy`: the proxy the agent itself uses, read from its main
//! process's environment. On EC2 a proxy without `no_proxy` covering
//! 169.254.169.254 sends the agent's metadata calls to the proxy, which
//! cannot answer them: the agent loses its credentials.

use crate::aws::proxy::{AgentProxy, IMDS};
use crate::checks::common::bus_outcome;
use crate::checks::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::host::mode::Mode;
use crate::host::process;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.proxy",
    group: Group::Agent,
    title: "amazon-ssm-agent proxy settings",
    severity: Severity::Medium,
    members: None,
};

pub fn plan(ctx: &Context) -> crate::checks::Check {
    let ctx2 = ctx.clone();
    crate::checks::task(ctx, &ENTRY, ENTRY.id, async move {
        let ctx = ctx2;
        let units = match ctx.agent_units().await {
            Ok(u) => u,
            Err(e) => return bus_outcome(e),
        };
        let Some(unit) = units.in_use().filter(|u| u.main_pid > 0) else {
            return Outcome::skip("the agent is not running, so it has no environment to read (agent.service says why)");
        };
        let pid = unit.main_pid;
        match process::environment(&ctx.root, pid) {
            Ok(env) => judge(&AgentProxy::from_env(&env), ctx.host.mode).detail("pid", pid),
            Err(e) => Outcome::error(
                format!("cannot read the agent's environment (/proc/{pid}/environ): {e}"),
                "Run ssm-preflight as root: only root may read another process's environment.",
            ),
        }
    })
}

pub fn judge(proxy: &AgentProxy, mode: Mode) -> Outcome {
    if !proxy.any() {
        return Outcome::pass("the agent uses no proxy");
    }
    let used = proxy
        .https_proxy
        .as_deref()
        .or(proxy.http_proxy.as_deref())
        .unwrap_or_default();
    let no_proxy = proxy.no_proxy.as_deref().unwrap_or("(unset)");
    let outcome = if mode == Mode::Ec2 && !proxy.exempts(IMDS) {
        Outcome::warn(
            format!("the agent uses the proxy {used} and no_proxy ({no_proxy}) does not cover 169.254.169.254, so its instance-metadata calls go to the proxy"),
            "Add 169.254.169.254 to the agent's no_proxy: `sudo systemctl edit amazon-ssm-agent`, set `Environment=\"no_proxy=169.254.169.254\"` (keeping any hosts already listed), then `sudo systemctl restart amazon-ssm-agent`.",
        )
    } else {
        Outcome::pass(format!(
            "the agent uses the proxy {used} (no_proxy: {no_proxy})"
        ))
    };
    let mut outcome = outcome.detail("no_proxy", no_proxy);
    if let Some(p) = &proxy.https_proxy {
        outcome = outcome.detail("https_proxy", p);
    }
    if let Some(p) = &proxy.http_proxy {
        outcome = outcome.detail("http_proxy", p);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn env(pairs: &[(&str, &str)]) -> AgentProxy {
        AgentProxy::from_env(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&env(&[]), Mode::Ec2).status, Status::Pass);
        let bad = judge(&env(&[("HTTPS_PROXY", "http://proxy:3128")]), Mode::Ec2);
        assert_eq!(bad.status, Status::Warn);
        assert!(bad.summary.contains("does not cover 169.254.169.254"));
        let ok = judge(
            &env(&[
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("NO_PROXY", "169.254.169.254"),
            ]),
            Mode::Ec2,
        );
        assert_eq!(ok.status, Status::Pass);
        // Hybrid nodes have no instance metadata to protect.
        assert_eq!(
            judge(&env(&[("HTTPS_PROXY", "http://proxy:3128")]), Mode::Hybrid).status,
            Status::Pass
        );
    }
}
