//! Probing an AWS endpoint on 443 the way the agent reaches it, one step at
//! a time — DNS, TCP, the proxy's CONNECT, the TLS handshake with
//! certificate validation, an HTTP answer — so that a failure names the step
//! that failed and the remedy can be exact. (An HTTP client would hide the
//! step; that is why this is written on tokio and rustls directly.)

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The four services a patch run needs; more come from `endpoints.extra`.
pub const REQUIRED_SERVICES: &[&str] = &["ssm", "ssmmessages", "ec2messages", "s3"];

/// Where a service is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// `ssm.eu-west-1.amazonaws.com`, `ssm.cn-north-1.amazonaws.com.cn`.
pub fn regional_host(service: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{service}.{region}.{suffix}")
}

/// The target for a service: an `https://host[:port]` override, or the regional name.
pub fn target(service: &str, region: &str, url_override: Option<&str>) -> Result<Target, String> {
    let Some(url) = url_override else {
        return Ok(Target {
            service: service.into(),
            host: regional_host(service, region),
            port: 443,
        });
    };
    let (host, port) = split_url(url)?;
    Ok(Target {
        service: service.into(),
        host,
        port: port.unwrap_or(443),
    })
}

pub use crate::config::url::{split_authority, split_url};

/// An HTTP proxy to CONNECT through: `http://[user:pass@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub basic_auth: Option<String>,
}

impl Proxy {
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let rest = with_scheme.strip_prefix("http://").ok_or_else(|| {
            format!(
                "the proxy `{}` is not an http:// URL",
                super::proxy::redact(url)
            )
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_authority(hostport)
            .ok_or_else(|| format!("the proxy `{}` has no host", super::proxy::redact(url)))?;
        // The URL as shown to people never carries the password; the
        // credentials are percent-decoded before Basic auth, as Go does.
        let shown = super::proxy::redact(&format!("http://{authority}"));
        let basic_auth = userinfo.map(|u| {
            let decoded: Vec<u8> = u
                .split(':')
                .map(|part| percent_encoding::percent_decode_str(part).collect::<Vec<u8>>())
                .collect::<Vec<_>>()
                .join(&b':');
            aws_smithy_types::base64::encode(decoded)
        });
        Ok(Proxy {
            url: shown,
            host,
            port: port.unwrap_or(80),
            basic_auth,
        })
    }
}

/// What went wrong, at which step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Dns(String),
    Refused(SocketAddr),
    /// No answer within the timeout; the step and the address it was at.
    TimedOut {
        step: &'static str,
        addr: Option<SocketAddr>,
    },
    Unreachable {
        addr: SocketAddr,
        error: String,
    },
    ProxyUnreachable {
        proxy: String,
        error: String,
    },
    ProxyRefused {
        proxy: String,
        status: String,
    },
    /// The certificate chain does not lead to a trusted root.
    UntrustedCertificate {
        addr: SocketAddr,
        detail: String,
    },
    /// The certificate is not for this name.
    WrongName {
        addr: SocketAddr,
        detail: String,
    },
    Tls {
        addr: SocketAddr,
        error: String,
    },
    Http {
        addr: SocketAddr,
        error: String,
    },
}

impl std::fmt::Display for Failure {
    /// One line for a message that refers to a probe (the endpoint's own
    /// check gives the whole story and the remedy).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dns(e) => write!(f, "DNS: {e}"),
            Failure::Refused(addr) => write!(f, "{addr} refused the connection"),
            Failure::TimedOut { step, addr } => match addr {
                Some(a) => write!(f, "no answer from {a} at the {step} step"),
                None => write!(f, "no answer at the {step} step"),
            },
            Failure::Unreachable { addr, error } => write!(f, "{addr} is unreachable: {error}"),
            Failure::ProxyUnreachable { proxy, error } => {
                write!(f, "the proxy {proxy} is unreachable: {error}")
            }
            Failure::ProxyRefused { proxy, status } => {
                write!(f, "the proxy {proxy} refused: {status}")
            }
            Failure::UntrustedCertificate { addr, detail } => {
                write!(f, "{addr}'s certificate is not trusted: {detail}")
            }
            Failure::WrongName { addr, detail } => {
                write!(f, "{addr}'s certificate is for another name: {detail}")
            }
            Failure::Tls { addr, error } => write!(f, "TLS with {addr} failed: {error}"),
            Failure::Http { addr, error } => write!(f, "HTTP with {addr} failed: {error}"),
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    /// What DNS answered (empty through a proxy, which resolves for us).
    pub addresses: Vec<IpAddr>,
    pub via_proxy: Option<String>,
    pub result: Result<Answer, Failure>,
    pub elapsed: Duration,
}

/// The endpoint answered HTTP over verified TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addr: Option<SocketAddr>,
    pub status: u16,
    /// The server's `Date` header, for the clock-skew check.
    pub date: Option<SystemTime>,
    /// When the answer arrived, by our clock.
    pub received: SystemTime,
}

#[derive(Default)]
struct Progress {
    step: &'static str,
    addr: Option<SocketAddr>,
    addresses: Vec<IpAddr>,
}

/// Probes one endpoint, bounded by `timeout` as a whole.
pub async fn probe(
    target: Target,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<Proxy>,
    timeout: Duration,
) -> Probe {
    let started = Instant::now();
    let progress = Mutex::new(Progress {
        step: "dns",
        ..Default::default()
    });
    let via_proxy = proxy.as_ref().map(|p| p.url.clone());
    let result =
        match tokio::time::timeout(timeout, run(&target, tls, proxy.as_ref(), &progress)).await {
            Ok(r) => r,
            Err(_) => {
                let p = progress.lock().unwrap();
                Err(Failure::TimedOut {
                    step: p.step,
                    addr: p.addr,
                })
            }
        };
    let addresses = std::mem::take(&mut progress.lock().unwrap().addresses);
    Probe {
        target,
        addresses,
        via_proxy,
        result,
        elapsed: started.elapsed(),
    }
}

fn set(progress: &Mutex<Progress>, step: &'static str, addr: Option<SocketAddr>) {
    let mut p = progress.lock().unwrap();
    p.step = step;
    p.addr = addr;
}

async fn run(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<&Proxy>,
    progress: &Mutex<Progress>,
) -> Result<Answer, Failure> {
    let (stream, addr) = match proxy {
        None => {
            let addrs = resolve(&target.host, target.port)
                .await
                .map_err(|e| Failure::Dns(e.to_string()))?;
            progress.lock().unwrap().addresses = addrs.iter().map(SocketAddr::ip).collect();
            connect_any(&addrs, progress).await?
        }
        Some(proxy) => {
            let addrs =
                resolve(&proxy.host, proxy.port)
                    .await
                    .map_err(|e| Failure::ProxyUnreachable {
                        proxy: proxy.url.clone(),
                        error: e.to_string(),
                    })?;
            let (mut stream, addr) = connect_any(&addrs, progress).await.map_err(|f| match f {
                Failure::TimedOut { .. } => f,
                other => Failure::ProxyUnreachable {
                    proxy: proxy.url.clone(),
                    error: describe_connect(&other),
                },
            })?;
            set(progress, "proxy CONNECT", Some(addr));
            connect_through(&mut stream, proxy, target).await?;
            (stream, addr)
        }
    };
    set(progress, "TLS handshake", Some(addr));
    let name =
        rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| Failure::Tls {
            addr,
            error: format!("`{}` is not a valid TLS name: {e}", target.host),
        })?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut tls_stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| tls_failure(addr, e))?;
    set(progress, "HTTP answer", Some(addr));
    let (status, date) = http_head(&mut tls_stream, &target.host)
        .await
        .map_err(|e| Failure::Http {
            addr,
            error: e.to_string(),
        })?;
    Ok(Answer {
        addr: if proxy.is_some() { None } else { Some(addr) },
        status,
        date,
        received: SystemTime::now(),
    })
}

/// Why a name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0}")]
    Lookup(#[from] std::io::Error),
    #[error("no address")]
    NoAddress,
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(DnsError::NoAddress);
    }
    // IPv4 first: most VPCs route IPv4 only, and a dead IPv6 path would eat the timeout.
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs.dedup();
    Ok(addrs)
}

async fn connect_any(
    addrs: &[SocketAddr],
    progress: &Mutex<Progress>,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let mut last = None;
    for addr in addrs {
        set(progress, "TCP connect", Some(*addr));
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok((s, *addr)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(Failure::Refused(*addr))
            }
            Err(e) => {
                last = Some(Failure::Unreachable {
                    addr: *addr,
                    error: e.to_string(),
                })
            }
        }
    }
    Err(last.unwrap_or(Failure::Dns("no address".into())))
}

fn describe_connect(f: &Failure) -> String {
    match f {
        Failure::Refused(a) => format!("connection refused at {a}"),
        Failure::Unreachable { addr, error } => format!("{error} at {addr}"),
        other => format!("{other:?}"),
    }
}

/// Asks an HTTP proxy for a tunnel: `CONNECT host:port`, expecting 2xx.
async fn connect_through(
    stream: &mut TcpStream,
    proxy: &Proxy,
    target: &Target,
) -> Result<(), Failure> {
    let authority = target.authority();
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ssm-preflight\r\n"
    );
    if let Some(auth) = &proxy.basic_auth {
        request.push_str(&format!("Proxy-Authorization: Basic {auth}\r\n"));
    }
    request.push_str("\r\n");
    let io = |e: std::io::Error| Failure::ProxyUnreachable {
        proxy: proxy.url.clone(),
        error: e.to_string(),
    };
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let head = read_head(stream)
        .await
        .map_err(|e| Failure::ProxyUnreachable {
            proxy: proxy.url.clone(),
            error: e.to_string(),
        })?;
    let status_line = head.lines().next().unwrap_or_default().to_string();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(Failure::ProxyRefused {
            proxy: proxy.url.clone(),
            status: status_line
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
}

/// Why no HTTP answer could be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the response head is larger than 16 KiB")]
    TooLarge,
    #[error("the connection closed without an answer")]
    NoAnswer,
    #[error("the connection closed in the middle of the answer")]
    Cut,
    #[error("the answer is not HTTP")]
    NotHttp,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads an HTTP response head (up to the blank line), 16 KiB at most.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, HttpError> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: after a CONNECT answer the TLS handshake follows on the same stream.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(HttpError::TooLarge);
        }
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return Err(if head.is_empty() {
                HttpError::NoAnswer
            } else {
                HttpError::Cut
            });
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Sends `HEAD /` and reads the status and `Date` of the answer.
async fn http_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
) -> Result<(u16, Option<SystemTime>), HttpError> {
    let request = format!(
        "HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ssm-preflight\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let head = read_head(stream).await?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(HttpError::NotHttp)?;
    let date = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("date")
                .then(|| v.trim().to_string())
        })
        .and_then(|v| parse_http_date(&v));
    Ok((status, date))
}

/// `Thu, 26 Nov 2026 18:41:35 GMT` (RFC 9110's IMF-fixdate).
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    jiff::fmt::rfc2822::parse(value)
        .ok()
        .map(|z| SystemTime::from(z.timestamp()))
}

fn tls_failure(addr: SocketAddr, e: std::io::Error) -> Failure {
    use rustls::CertificateError as C;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            C::UnknownIssuer | C::BadSignature | C::UnknownRevocationStatus => {
                Failure::UntrustedCertificate {
                    addr,
                    detail: format!("{cert:?}"),
                }
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => Failure::WrongName {
                addr,
                detail: cert.to_string(),
            },
            other => Failure::Tls {
                addr,
                error: format!("invalid certificate: {other}"),
            },
        },
        Some(other) => Failure::Tls {
            addr,
            error: other.to_string(),
        },
        None => Failure::Tls {
            addr,
            error: e.to_string(),
        },
    }
}

/// Where an address lives, for the summary: a VPC endpoint answers with a
/// private address, the public endpoint with a public one.
pub fn address_kind(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "a loopback address",
        IpAddr::V4(v4) if v4.is_private() => "a VPC endpoint (private address)",
        IpAddr::V6(v6) if v6.is_loopback() => "a loopback address",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => {
            "a VPC endpoint (private address)"
        }
        _ => "the public endpoint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_partition_and_overrides() {
        assert_eq!(
            regional_host("ssm", "eu-west-1"),
            "ssm.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            regional_host("ssmmessages", "cn-north-1"),
            "ssmmessages.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            regional_host("ec2messages", "us-gov-west-1"),
            "ec2messages.us-gov-west-1.amazonaws.com"
        );
        let t = target(
            "ssm",
            "eu-west-1",
            Some("https://vpce-1.ssm.eu-west-1.vpce.amazonaws.com/"),
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.port),
            ("vpce-1.ssm.eu-west-1.vpce.amazonaws.com", 443)
        );
        let t = target("ssm", "eu-west-1", Some("https://localhost:8443")).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 8443));
        assert!(target("ssm", "eu-west-1", Some("http://x")).is_err());
    }

    #[test]
    fn proxies() {
        let p = Proxy::parse("http://user:secret@proxy.internal:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.internal", 3128));
        assert_eq!(
            p.url, "http://user:***@proxy.internal:3128",
            "no password in what is shown"
        );
        assert_eq!(p.basic_auth.as_deref(), Some("dXNlcjpzZWNyZXQ="));
        // Percent-encoded credentials are decoded before Basic auth.
        let p = Proxy::parse("http://alice:p%40ss%3Aw@proxy:3128").unwrap();
        assert_eq!(p.basic_auth.as_deref(), Some("YWxpY2U6cEBzczp3"));
        assert_eq!(p.url, "http://alice:***@proxy:3128");
        assert_eq!(Proxy::parse("proxy:8080").unwrap().port, 8080);
        assert_eq!(Proxy::parse("http://[::1]:3128").unwrap().host, "::1");
        assert!(Proxy::parse("socks5://x").is_err());
        // A refused setting is named without its password.
        let err = Proxy::parse("socks5://alice:S3cretPw@proxy:1080").unwrap_err();
        assert!(
            !err.contains("S3cretPw") && err.contains("alice:***@proxy"),
            "{err}"
        );
    }

    #[test]
    fn address_kinds() {
        for (address, kind) in [
            ("10.0.1.5", "a VPC endpoint (private address)"),
            ("52.94.1.1", "the public endpoint"),
            ("fd00::5", "a VPC endpoint (private address)"),
            ("127.0.0.1", "a loopback address"),
        ] {
            assert_eq!(address_kind(&address.parse().unwrap()), kind, "{address}");
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Thu, 26 Nov 2026 18:41:35 GMT").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2026-11-26T18:41:35Z"
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
