//! `agent.proxy`: the proxy the agent itself uses, read from its main
//! process's environment. On EC2 a proxy without `no_proxy` covering
//! 169.254.169.254 sends the agent's metadata calls to the proxy, which
//! cannot answer them: the agent loses its credentials.

use crate::checks::common::bus_outcome;
use crate::checks::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::mode::Mode;
use crate::host::process;
use crate::network::proxy::{redact, AgentProxy, IMDS};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.proxy",
    group: Group::Agent,
    title: "amazon-ssm-agent proxy settings",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "the agent's own environment, `/proc/<MainPID>/environ` (`HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`, `NO_PROXY`, upper case first), read as the agent (Go) reads it: https:// calls use `HTTPS_PROXY` only, never `HTTP_PROXY`; `NO_PROXY` entries are `*`, addresses, CIDR blocks or domains (`foo.com` and its subdomains, `.foo.com` or `*.foo.com` subdomains only), each with an optional `:port`; localhost and loopback are never proxied. A proxy's password is never shown anywhere: `http://alice:***@proxy:3128`",
        warns: "on EC2, `HTTP_PROXY` is set and `no_proxy` does not cover 169.254.169.254 (the agent asks IMDS over http://)",
        fails: "—",
        fix: "`systemctl edit amazon-ssm-agent` with `Environment=\"no_proxy=169.254.169.254\"`",
        cannot_see: "the agent is not running / its `/proc/<pid>/environ` unreadable",
        reports: "`skip` / `error`",
    },
};

pub fn plan(ctx: &Context) -> crate::checks::Check {
    crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
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

/// Every proxy URL shown goes through `redact`: a password never reaches a
/// summary, a detail, the state file, the journal or SSM.
pub fn judge(proxy: &AgentProxy, mode: Mode) -> Outcome {
    if !proxy.any() {
        return Outcome::pass("the agent uses no proxy");
    }
    let used = match (&proxy.https_proxy, &proxy.http_proxy) {
        (Some(https), _) => format!("{} for https", redact(https)),
        (None, Some(http)) => format!(
            "{} for http only (the agent's https calls to SSM go direct: it does not fall back to HTTP_PROXY)",
            redact(http)
        ),
        (None, None) => unreachable!("any() said a proxy is set"),
    };
    let no_proxy = proxy.no_proxy.as_deref().unwrap_or("(unset)");
    // The agent asks IMDS over http://, so HTTP_PROXY is the one that matters.
    let imds_proxied = proxy.for_http(&IMDS.to_string(), 80).is_some();
    let outcome = if mode == Mode::Ec2 && imds_proxied {
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
        outcome = outcome.detail("https_proxy", redact(p));
    }
    if let Some(p) = &proxy.http_proxy {
        outcome = outcome.detail("http_proxy", redact(p));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn env(pairs: &[(&str, &str)]) -> AgentProxy {
        AgentProxy::from_pairs(pairs)
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&env(&[]), Mode::Ec2).status, Status::Pass);
        // IMDS is asked over http://: HTTP_PROXY is the one that catches it.
        let bad = judge(&env(&[("HTTP_PROXY", "http://proxy:3128")]), Mode::Ec2);
        assert_eq!(bad.status, Status::Warn);
        assert!(bad.summary.contains("does not cover 169.254.169.254"));
        let ok = judge(
            &env(&[
                ("HTTP_PROXY", "http://proxy:3128"),
                ("NO_PROXY", "169.254.169.254"),
            ]),
            Mode::Ec2,
        );
        assert_eq!(ok.status, Status::Pass);
        let https_only = judge(&env(&[("HTTPS_PROXY", "http://proxy:3128")]), Mode::Ec2);
        assert_eq!(https_only.status, Status::Pass, "{}", https_only.summary);
        // Hybrid nodes have no instance metadata to protect.
        assert_eq!(
            judge(&env(&[("HTTP_PROXY", "http://proxy:3128")]), Mode::Hybrid).status,
            Status::Pass
        );
    }

    #[test]
    fn a_proxy_password_is_never_in_the_summary_or_details() {
        let o = judge(
            &env(&[
                ("HTTPS_PROXY", "http://alice:S3cretPw@proxy.internal:3128"),
                ("HTTP_PROXY", "http://alice:S3cretPw@proxy.internal:3128"),
            ]),
            Mode::Ec2,
        );
        let all = format!("{} {:?} {:?}", o.summary, o.remedy, o.details);
        assert!(!all.contains("S3cretPw"), "{all}");
        assert!(
            o.summary.contains("http://alice:***@proxy.internal:3128"),
            "{}",
            o.summary
        );
    }

    #[test]
    fn only_http_proxy_is_said_to_leave_https_direct() {
        let o = judge(&env(&[("http_proxy", "http://proxy:3128")]), Mode::Hybrid);
        assert!(o.summary.contains("for http only"), "{}", o.summary);
    }
}
