//! The amazon-ssm-agent's proxy settings, read from its environment the way
//! the agent (Go's `httpproxy`) reads them.

use std::net::Ipv4Addr;

/// The instance metadata service's address, which `no_proxy` must cover on EC2.
pub const IMDS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
