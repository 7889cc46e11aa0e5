//! `endpoint.<service>`: ssm, ssmmessages, ec2messages and s3 (and the
//! configured extras) answer on 443 from this host, through the agent's
//! proxy when it has one. The summary names the step that failed.

use super::common::{local_skip, probe_outcome};
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::network::endpoints::{address_kind, Failure, Probe, REQUIRED_SERVICES};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "endpoint",
    group: Group::Network,
    title: "SSM endpoint reachable on 443",
    severity: Severity::Critical,
    members: Some("<service>"),
    doc: Doc {
        looks_at: "for `ssm`, `ssmmessages`, `ec2messages`, `s3` and `endpoints.extra`: the regional name (`amazonaws.com.cn` for `cn-*`) or `endpoints.urls`, then DNS (a private answer means a VPC endpoint), TCP on 443, the proxy's `CONNECT` when the agent has a proxy that `no_proxy` does not exempt, a TLS handshake validating the certificate (system roots, `SSL_CERT_FILE`, `endpoints.ca_bundle`), an HTTP answer; all at once, each within `endpoints.timeout` (3 s)",
        warns: "—",
        fails: "any step fails; the summary names it — DNS failure, refused, timed out (and where), no route, proxy refused, untrusted certificate (likely TLS interception), wrong name — with the address and the time taken",
        fix: "the interface VPC endpoint `com.amazonaws.<region>.<service>`, security group and NACL rules for 443, the proxy's CONNECT rules, the inspecting CA",
        cannot_see: "local mode / a repository file it may not read",
        reports: "`skip` / `warn` naming the file (a failing repository stays `fail`)",
    },
};

pub fn services(ctx: &Context) -> Vec<String> {
    let mut all: Vec<String> = REQUIRED_SERVICES.iter().map(|s| s.to_string()).collect();
    for extra in &ctx.settings.endpoints.extra {
        if !all.contains(extra) {
            all.push(extra.clone());
        }
    }
    all
}

pub fn plan(ctx: &Context) -> Vec<super::Check> {
    services(ctx)
        .into_iter()
        .map(|service| {
            let id = format!("endpoint.{service}");
            let mut check = crate::checks::task(ctx, &ENTRY, id, |ctx2| async move {
                if let Some(skip) = local_skip(&ctx2) {
                    return skip;
                }
                match ctx2.probe(&service).await {
                    Ok(p) => {
                        let region = ctx2
                            .settings
                            .aws
                            .region
                            .clone()
                            .or_else(|| ctx2.known_identity().map(|i| i.region.clone()));
                        judge(&p, region.as_deref().unwrap_or("REGION"))
                    }
                    Err(e) => probe_outcome(&e),
                }
            });
            // The probe has its own timeout; leave it room to report before the engine's.
            check.info.timeout = check
                .info
                .timeout
                .max(ctx.settings.endpoints.timeout + std::time::Duration::from_secs(1));
            check.info.title = format!(
                "{} endpoint reachable on 443",
                check.info.id.trim_start_matches("endpoint.")
            );
            check
        })
        .collect()
}

fn ms(d: std::time::Duration) -> String {
    format!("{} ms", d.as_millis())
}

pub fn judge(p: &Probe, region: &str) -> Outcome {
    let host = &p.target.host;
    let service = &p.target.service;
    let port = p.target.port;
    let vpce = format!("com.amazonaws.{region}.{service}");
    let took = ms(p.elapsed);
    let route = match (&p.via_proxy, p.addresses.first()) {
        (Some(proxy), _) => format!("through the proxy {proxy}"),
        (None, Some(ip)) => format!("at {ip}, {}", address_kind(ip)),
        (None, None) => String::new(),
    };
    let firewall = format!(
        "Allow outbound TCP {port} to {host} in the instance's security group and the subnet's network ACL; a VPC endpoint also needs its own security group to allow inbound {port} from this host, and a public endpoint needs a NAT or internet gateway route."
    );
    let outcome = match &p.result {
        Ok(answer) => Outcome::pass(format!("{host} answers on {port} {route}, TLS verified, HTTP {} in {took}", answer.status)),
        Err(Failure::Dns(e)) => Outcome::fail(
            format!("{host} does not resolve ({e}) after {took}"),
            format!(
                "Without internet access this VPC needs the interface VPC endpoint {vpce} with private DNS enabled; otherwise check the resolver (`getent hosts {host}`, /etc/resolv.conf) and the VPC's enableDnsSupport and enableDnsHostnames."
            ),
        ),
        Err(Failure::Refused(addr)) => Outcome::fail(
            format!("{host} refused the connection at {addr} ({}) after {took}", address_kind(&addr.ip())),
            format!("Something rejects {port} on the way: the host firewall (`sudo iptables -S OUTPUT`), or, for a VPC endpoint, its security group. {firewall}"),
        ),
        Err(Failure::TimedOut { step, addr }) => {
            let at = addr.map(|a| format!(" at {a}")).unwrap_or_default();
            let remedy = match *step {
                "dns" => format!("The resolver does not answer: check /etc/resolv.conf and that UDP/TCP 53 to it is allowed; without internet access create the interface VPC endpoint {vpce}."),
                "proxy CONNECT" => format!("The agent's proxy {} does not answer CONNECT: check it runs and may reach {host}:{port}.", p.via_proxy.as_deref().unwrap_or("")),
                _ => firewall.clone(),
            };
            Outcome::fail(format!("{host} did not answer{at} within {took} (stuck at {step})"), remedy)
        }
        Err(Failure::Unreachable { addr, error }) => Outcome::fail(
            format!("{host} cannot be reached at {addr}: {error} (after {took})"),
            format!("This host has no route to {addr}: check the subnet's route table. {firewall}"),
        ),
        Err(Failure::ProxyUnreachable { proxy, error }) => Outcome::fail(
            format!("the agent's proxy {proxy} cannot be reached: {error}"),
            format!("Check the proxy runs and its address in the agent's HTTPS_PROXY (`systemctl cat amazon-ssm-agent`), or put {host} in its no_proxy."),
        ),
        Err(Failure::ProxyRefused { proxy, status }) => Outcome::fail(
            format!("the agent's proxy {proxy} refused CONNECT to {host}:{port} (HTTP {status})"),
            format!("Allow CONNECT to *.amazonaws.com:{port} on the proxy, or add {host} (or .amazonaws.com) to the agent's no_proxy."),
        ),
        Err(Failure::UntrustedCertificate { addr, detail }) => Outcome::fail(
            format!("{host} at {addr} presented a certificate this host does not trust ({detail}): most likely TLS interception by a proxy or firewall"),
            format!("Exempt {host} (or *.amazonaws.com) from TLS inspection, or trust the inspecting CA: add it to the system store (`update-ca-certificates` or `update-ca-trust`) and to endpoints.ca_bundle."),
        ),
        Err(Failure::WrongName { addr, detail }) => Outcome::fail(
            format!("{host} at {addr} presented a certificate for another name ({detail})"),
            format!("Something else answers for {host}: check /etc/hosts and the DNS answer (`getent hosts {host}`), and for a VPC endpoint that private DNS is enabled."),
        ),
        Err(Failure::Tls { addr, error }) => Outcome::fail(
            format!("the TLS handshake with {host} at {addr} failed: {error}"),
            "A device on the path breaks TLS: check TLS-inspecting firewalls and proxies, and `openssl s_client -connect HOST:443` from this host.".replace("HOST", host),
        ),
        Err(Failure::Http { addr, error }) => Outcome::fail(
            format!("{host} at {addr} completed TLS but gave no HTTP answer: {error}"),
            "A device on the path cuts the connection after the handshake: check firewalls and proxies between this host and AWS.",
        ),
    };
    with_details(outcome, p)
}

/// What the probe saw, for `details`: the host, the addresses, the time, the proxy.
fn with_details(outcome: Outcome, p: &Probe) -> Outcome {
    let addresses: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
    let outcome = outcome
        .detail("host", &p.target.host)
        .detail("port", p.target.port)
        .detail("elapsed_ms", p.elapsed.as_millis())
        .detail("addresses", addresses.join(" "));
    match &p.via_proxy {
        Some(proxy) => outcome.detail("proxy", proxy),
        None => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::network::endpoints::{Answer, Target};
    use std::time::{Duration, SystemTime};

    fn probe(result: Result<Answer, Failure>, addresses: &[&str], proxy: Option<&str>) -> Probe {
        Probe {
            target: Target {
                service: "ssmmessages".into(),
                host: "ssmmessages.eu-west-1.amazonaws.com".into(),
                port: 443,
            },
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            via_proxy: proxy.map(str::to_string),
            result,
            elapsed: Duration::from_millis(12),
        }
    }

    fn ok() -> Result<Answer, Failure> {
        Ok(Answer {
            addr: None,
            status: 404,
            date: None,
            received: SystemTime::now(),
        })
    }

    #[test]
    fn a_vpc_endpoint_answering() {
        let o = judge(&probe(ok(), &["10.0.1.5"], None), "eu-west-1");
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.summary, "ssmmessages.eu-west-1.amazonaws.com answers on 443 at 10.0.1.5, a VPC endpoint (private address), TLS verified, HTTP 404 in 12 ms");
        let public = judge(&probe(ok(), &["52.94.1.1"], None), "eu-west-1");
        assert!(public.summary.contains("the public endpoint"));
        let proxied = judge(&probe(ok(), &[], Some("http://proxy:3128")), "eu-west-1");
        assert!(proxied
            .summary
            .contains("through the proxy http://proxy:3128"));
    }

    #[test]
    fn each_failure_has_its_remedy() {
        let dns = judge(
            &probe(Err(Failure::Dns("no such host".into())), &[], None),
            "eu-west-1",
        );
        assert_eq!(dns.status, Status::Fail);
        assert!(dns
            .remedy
            .unwrap()
            .contains("interface VPC endpoint com.amazonaws.eu-west-1.ssmmessages"));
        let refused = judge(
            &probe(
                Err(Failure::Refused("10.0.1.5:443".parse().unwrap())),
                &["10.0.1.5"],
                None,
            ),
            "eu-west-1",
        );
        assert!(refused
            .summary
            .contains("refused the connection at 10.0.1.5:443"));
        let timeout = judge(
            &probe(
                Err(Failure::TimedOut {
                    step: "TCP connect",
                    addr: Some("10.0.1.5:443".parse().unwrap()),
                }),
                &["10.0.1.5"],
                None,
            ),
            "eu-west-1",
        );
        assert!(
            timeout
                .summary
                .contains("did not answer at 10.0.1.5:443 within 12 ms (stuck at TCP connect)"),
            "{}",
            timeout.summary
        );
        assert!(timeout.remedy.unwrap().contains("security group"));
        let mitm = judge(
            &probe(
                Err(Failure::UntrustedCertificate {
                    addr: "10.0.1.5:443".parse().unwrap(),
                    detail: "UnknownIssuer".into(),
                }),
                &[],
                None,
            ),
            "eu-west-1",
        );
        assert!(mitm.summary.contains("TLS interception"));
        let proxy = judge(
            &probe(
                Err(Failure::ProxyRefused {
                    proxy: "http://proxy:3128".into(),
                    status: "403 Forbidden".into(),
                }),
                &[],
                Some("http://proxy:3128"),
            ),
            "eu-west-1",
        );
        assert!(proxy.summary.contains(
            "refused CONNECT to ssmmessages.eu-west-1.amazonaws.com:443 (HTTP 403 Forbidden)"
        ));
    }
}
