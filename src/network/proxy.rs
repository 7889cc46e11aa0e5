//! The amazon-ssm-agent's proxy settings, read from its environment the way
//! the agent reads them. The agent is Go: its HTTP client takes
//! `HTTPS_PROXY` (or `https_proxy`) for https:// requests — never
//! `HTTP_PROXY` — and `NO_PROXY` with the rules of Go's `httpproxy`
//! package, written here because no crate implements those rules (reqwest's
//! `NoProxy` follows curl's, which differ on a leading dot and on ports).

use std::net::{IpAddr, Ipv4Addr};

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

    /// `from_env` on literal pairs, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> AgentProxy {
        let env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentProxy::from_env(&env)
    }

    pub fn any(&self) -> bool {
        self.https_proxy.is_some() || self.http_proxy.is_some()
    }

    /// Whether the agent goes around its proxy for `host:port`, as Go's
    /// `httpproxy` decides: `localhost` and loopback addresses always; else
    /// a `NO_PROXY` entry that is `*`, an address or CIDR holding it, or a
    /// domain — `foo.com` matches it and its subdomains, `.foo.com` and
    /// `*.foo.com` only its subdomains — each with an optional `:port` that
    /// must then match.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        let Some(list) = &self.no_proxy else {
            return false;
        };
        list.split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .any(|entry| entry_matches(&entry, &host, ip, port))
    }

    /// The proxy for an https:// request to `host:port`, or `None` to go
    /// direct. Only `HTTPS_PROXY` counts: Go does not fall back to `HTTP_PROXY`.
    pub fn for_https(&self, host: &str, port: u16) -> Option<&str> {
        let proxy = self.https_proxy.as_deref()?;
        (!self.bypasses(host, port)).then_some(proxy)
    }

    /// The proxy for an http:// request to `host:port`, or `None`.
    pub fn for_http(&self, host: &str, port: u16) -> Option<&str> {
        let proxy = self.http_proxy.as_deref()?;
        (!self.bypasses(host, port)).then_some(proxy)
    }
}

/// One `NO_PROXY` entry against a request's host (lower case), its address
/// when it is one, and its port.
fn entry_matches(entry: &str, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        return match (net.parse::<IpAddr>(), bits.parse::<u8>(), ip) {
            (Ok(net), Ok(bits), Some(ip)) => in_cidr(ip, net, bits),
            _ => false,
        };
    }
    let (entry_host, entry_port) = split_port(entry);
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    if let Ok(entry_ip) = entry_host.parse::<IpAddr>() {
        return ip == Some(entry_ip);
    }
    if entry_host.is_empty() || ip.is_some() {
        return false;
    }
    let subdomains_only = entry_host.starts_with('.') || entry_host.starts_with("*.");
    let domain = entry_host.trim_start_matches('*').trim_start_matches('.');
    host.ends_with(&format!(".{domain}")) || (!subdomains_only && host == domain)
}

/// `host:port`, `[v6]:port` or `host`; a bare IPv6 address has no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    if entry.matches(':').count() == 1 {
        if let Some((host, port)) = entry.split_once(':') {
            if let Ok(port) = port.parse() {
                return (host, Some(port));
            }
        }
    }
    (entry, None)
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A proxy URL as it may be shown anywhere — a summary, a detail, the
/// state file, the journal, SSM: `http://alice:***@proxy:3128`. The
/// password never leaves the host.
pub use crate::text::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> AgentProxy {
        AgentProxy::from_pairs(pairs)
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
    fn https_requests_never_fall_back_to_http_proxy() {
        let only_http = env(&[("http_proxy", "http://proxy:3128")]);
        assert_eq!(
            only_http.for_https("ssm.eu-west-1.amazonaws.com", 443),
            None
        );
        assert_eq!(
            only_http.for_http("deb.debian.org", 80),
            Some("http://proxy:3128")
        );
    }

    /// Go's documented NO_PROXY rules (golang.org/x/net/http/httpproxy), as
    /// (NO_PROXY, host, port, bypassed).
    #[test]
    fn no_proxy_follows_go() {
        let cases: &[(&str, &str, u16, bool)] = &[
            // A domain matches itself and its subdomains.
            ("foo.com", "foo.com", 443, true),
            ("foo.com", "bar.foo.com", 443, true),
            ("foo.com", "barfoo.com", 443, false),
            // A leading dot (or *.) matches subdomains only.
            (".y.com", "x.y.com", 443, true),
            (".y.com", "y.com", 443, false),
            ("*.y.com", "x.y.com", 443, true),
            ("*.y.com", "y.com", 443, false),
            // A port must match when given.
            ("foo.com:443", "foo.com", 443, true),
            ("foo.com:8443", "foo.com", 443, false),
            ("1.2.3.4:80", "1.2.3.4", 80, true),
            ("1.2.3.4:80", "1.2.3.4", 443, false),
            // Addresses and CIDR blocks, v4 and v6.
            ("1.2.3.4", "1.2.3.4", 443, true),
            ("1.2.3.4", "1.2.3.5", 443, false),
            ("169.254.0.0/16", "169.254.169.254", 80, true),
            ("10.0.0.0/8", "169.254.169.254", 80, false),
            ("2001:db8::/32", "2001:db8::1", 443, true),
            ("[2001:db8::1]:443", "2001:db8::1", 443, true),
            // A CIDR does not match a name, nor a name an address.
            ("10.0.0.0/8", "ssm.amazonaws.com", 443, false),
            ("amazonaws.com", "52.94.1.1", 443, false),
            // `*` matches everything; entries are trimmed and case-blind.
            ("*", "anything.example", 443, true),
            (" Foo.COM , bar.com", "x.foo.com", 443, true),
            ("", "foo.com", 443, false),
            // Localhost and loopback never go through a proxy.
            ("", "localhost", 443, true),
            ("", "127.0.0.1", 443, true),
            ("", "::1", 443, true),
        ];
        for (no_proxy, host, port, bypassed) in cases {
            let p = env(&[("HTTPS_PROXY", "http://proxy:3128"), ("NO_PROXY", no_proxy)]);
            assert_eq!(
                p.bypasses(host, *port),
                *bypassed,
                "NO_PROXY={no_proxy:?} for {host}:{port}"
            );
        }
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("http://alice:S3cretPw@proxy.internal:3128"),
            "http://alice:***@proxy.internal:3128"
        );
        assert_eq!(
            redact("http://alice:p%40ss@proxy:3128/"),
            "http://alice:***@proxy:3128/"
        );
        assert_eq!(redact("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact("bob:pw@proxy:8080"), "bob:***@proxy:8080");
    }
}
