//! `agent.proxy`: the proxy the agent itself uses, read from its main
//! process's environment. On EC2 a proxy without `no_proxy` covering
//! 169.254.169.254 sends the agent's metadata calls to the proxy, which
//! cannot answer them: the agent loses its credentials.

use super::{bus_outcome, lookup};
use crate::checks::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::host::mode::Mode;
use crate::host::process;
use std::net::Ipv4Addr;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.proxy",
    group: Group::Agent,
    title: "amazon-ssm-agent proxy settings",
    severity: Severity::Medium,
};

const IMDS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The agent's proxy settings, as Go's `httpproxy` reads them (upper case first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentProxy {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl AgentProxy {
    pub fn from_env(env: &[(String, String)]) -> AgentProxy {
        let get = |upper: &str, lower: &str| {
            let find = |k: &str| {
                env.iter()
                    .find(|(key, v)| key == k && !v.is_empty())
                    .map(|(_, v)| v.clone())
            };
            find(upper).or_else(|| find(lower))
        };
        AgentProxy {
            https_proxy: get("HTTPS_PROXY", "https_proxy"),
            http_proxy: get("HTTP_PROXY", "http_proxy"),
            no_proxy: get("NO_PROXY", "no_proxy"),
        }
    }

    pub fn any(&self) -> bool {
        self.https_proxy.is_some() || self.http_proxy.is_some()
    }

    /// Whether `no_proxy` exempts a host name, as Go's httpproxy decides:
    /// `*`, the name itself, or a domain it is under (`.amazonaws.com`,
    /// `amazonaws.com`); an address literal also matches by address or CIDR.
    pub fn exempts_host(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return self.exempts(ip);
        }
        let Some(list) = &self.no_proxy else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .any(|entry| {
                if entry == "*" {
                    return true;
                }
                let entry = entry
                    .split(':')
                    .next()
                    .unwrap_or(entry)
                    .to_ascii_lowercase();
                let domain = entry.trim_start_matches("*.").trim_start_matches('.');
                host == domain || host.ends_with(&format!(".{domain}"))
            })
    }

    /// The proxy for https:// requests to `host`, or `None` to go direct.
    pub fn for_https(&self, host: &str) -> Option<&str> {
        let proxy = self.https_proxy.as_deref().or(self.http_proxy.as_deref())?;
        (!self.exempts_host(host)).then_some(proxy)
    }

    /// Whether `no_proxy` exempts an address: `*`, the address itself, or a CIDR holding it.
    pub fn exempts(&self, ip: Ipv4Addr) -> bool {
        let Some(list) = &self.no_proxy else {
            return false;
        };
        list.split(',').map(str::trim).any(|entry| {
            if entry == "*" || entry == ip.to_string() {
                return true;
            }
            let Some((net, bits)) = entry.split_once('/') else {
                return false;
            };
            match (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) {
                (Ok(net), Ok(bits)) if bits <= 32 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    u32::from(net) & mask == u32::from(ip) & mask
                }
                _ => false,
            }
        })
    }
}

/// The agent's proxy settings, when the agent runs and its environment can be read.
pub async fn of_agent(ctx: &Context) -> Option<AgentProxy> {
    let units = lookup(ctx).await.as_ref().ok()?;
    let pid = units.in_use().filter(|u| u.main_pid > 0)?.main_pid;
    process::environment(&ctx.root, pid)
        .ok()
        .map(|env| AgentProxy::from_env(&env))
}

pub fn plan(ctx: &Context) -> crate::checks::Check {
    let ctx2 = ctx.clone();
    ctx.check_async(&ENTRY, ENTRY.id, async move {
        let ctx = ctx2;
        let units = match lookup(&ctx).await {
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
    fn upper_case_wins_like_go() {
        let p = env(&[
            ("https_proxy", "http://lower:3128"),
            ("HTTPS_PROXY", "http://upper:3128"),
            ("no_proxy", "localhost"),
        ]);
        assert_eq!(p.https_proxy.as_deref(), Some("http://upper:3128"));
        assert_eq!(p.no_proxy.as_deref(), Some("localhost"));
    }

    #[test]
    fn no_proxy_matching() {
        assert!(env(&[("no_proxy", "localhost, 169.254.169.254")]).exempts(IMDS));
        assert!(env(&[("no_proxy", "169.254.0.0/16")]).exempts(IMDS));
        assert!(env(&[("no_proxy", "*")]).exempts(IMDS));
        assert!(!env(&[("no_proxy", "169.254.169.25,10.0.0.0/8")]).exempts(IMDS));
        assert!(!env(&[]).exempts(IMDS));
    }

    #[test]
    fn no_proxy_for_host_names() {
        let p = env(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("no_proxy", "localhost,.internal, amazonaws.com:443"),
        ]);
        assert!(p.exempts_host("ssm.eu-west-1.amazonaws.com"));
        assert!(p.exempts_host("repo.internal"));
        assert!(!p.exempts_host("deb.debian.org"));
        assert_eq!(p.for_https("deb.debian.org"), Some("http://proxy:3128"));
        assert_eq!(p.for_https("ssm.eu-west-1.amazonaws.com"), None);
        assert_eq!(env(&[]).for_https("x"), None);
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
