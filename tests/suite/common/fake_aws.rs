//! Loopback stand-ins for what a node talks to: a test CA and TLS servers
//! (healthy, silent), an HTTP CONNECT proxy, a fake IMDSv2 faithful to the
//! token rules aws-config relies on, and plain HTTP servers for repositories.
//! Every listener is on 127.0.0.1 (or inside a namespace a test made).

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority made for one test, and its PEM file.
pub struct TestCa {
    key: KeyPair,
    params: CertificateParams,
    pub pem_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("ca.pem");
        std::fs::write(&pem_path, cert.pem()).unwrap();
        TestCa {
            key,
            params,
            pem_path,
            _dir: dir,
        }
    }

    /// A certificate for `names` signed by this CA, and its key.
    fn leaf(&self, names: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        (params.signed_by(&key, &issuer).unwrap(), key)
    }

    /// A rustls server config with a certificate for `names`, signed by this CA.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.leaf(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Arc::new(config)
    }

    /// A certificate for `name` signed by this CA and its key, as PEM (a
    /// client's entitlement certificate).
    pub fn issue(&self, name: &str) -> (String, String) {
        let (cert, key) = self.leaf(&[name]);
        (cert.pem(), key.serialize_pem())
    }

    /// As `server_config`, also asking clients for a certificate issued by
    /// `clients`; one without is still answered (as RHUI answers it: 403).
    pub fn server_config_asking(
        &self,
        names: &[&str],
        clients: &TestCa,
    ) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.leaf(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                clients
                    .params
                    .self_signed(&clients.key)
                    .unwrap()
                    .der()
                    .clone(),
            )
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Arc::new(config)
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.pem_path).unwrap()
    }

    /// A client config trusting only this CA (for tests that probe directly).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let cert = self.params.self_signed(&self.key).unwrap();
        roots.add(cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// Milliseconds every fake waits before it answers a request, as an AWS
/// call in a region takes (the benchmarks set it; tests leave it at 0).
pub static LATENCY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Waits `LATENCY_MS` before an answer.
pub async fn answer_delay() {
    let ms = LATENCY_MS.load(std::sync::atomic::Ordering::Relaxed);
    if ms > 0 {
        // Not tokio's sleep: its timer ticks in whole milliseconds and
        // rounds a deadline up to the next tick, so "10 ms" lasted 11.1 ms
        // median (p90 11.8) and overstated a region's latency by a tenth on
        // every call. A thread's sleep ends within tens of microseconds.
        let wait = std::time::Duration::from_millis(ms);
        tokio::task::spawn_blocking(move || std::thread::sleep(wait))
            .await
            .expect("a sleeping thread does not panic");
    }
}

/// Serves one connection with `service`, over TLS when `acceptor` is given.
pub async fn serve_one<S>(tcp: TcpStream, acceptor: Option<tokio_rustls::TlsAcceptor>, service: S)
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = hyper::server::conn::http1::Builder::new();
    match acceptor {
        None => {
            let _ = http
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        }
        Some(acceptor) => {
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = http
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            }
        }
    }
}

/// The newest agent version the fake S3 endpoints publish (the fixtures'
/// stand-in agent is 3.3.40.0: the same minor version).
pub const AGENT_LATEST: &str = "3.3.1142.0";

/// An HTTPS endpoint that answers `HEAD /` with 404 and a `Date` header
/// `date_offset_secs` away from now (as SSM's endpoints answer a bare path).
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    date_offset_secs: i64,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        // As AWS's endpoints do: no Nagle delay on the answer's second write
        // (a client's delayed ACK would add 40 ms to every call).
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            answer_delay().await;
            let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(date_offset_secs);
            let date = jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&now)
                .unwrap();
            // As the S3 endpoint serves AWS's public object, the newest
            // agent version of a region (`amazon-ssm-<region>/latest/VERSION`).
            let request_line = String::from_utf8_lossy(&got)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let answer = if request_line.starts_with("GET ")
                && request_line.contains("/latest/VERSION ")
            {
                format!("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{AGENT_LATEST}", AGENT_LATEST.len())
            } else {
                format!("HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            };
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// Accepts connections and never says a word: a black hole after TCP.
pub async fn serve_silence(listener: TcpListener) {
    let mut held = Vec::new();
    while let Ok((tcp, _)) = listener.accept().await {
        held.push(tcp);
    }
}

/// A port with nothing listening: connecting to it is refused.
pub async fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An HTTP CONNECT proxy that tunnels the authorities it knows to local
/// addresses (it resolves nothing) and answers 403 to the others. It counts
/// the tunnels it opened.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    pub tunnels: Arc<Mutex<Vec<String>>>,
}

pub async fn start_proxy(routes: HashMap<String, SocketAddr>) -> ConnectProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let seen = tunnels.clone();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let routes = routes.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let authority = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let Some(target) = routes.get(&authority) else {
                    let _ = client
                        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                };
                seen.lock().unwrap().push(authority);
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    ConnectProxy { addr, tunnels }
}

/// The identity document's signature the fake IMDS serves: base64 over
/// several lines, as EC2's (its `+` and `/` tell URL-safe base64 apart).
pub const IDENTITY_SIGNATURE: &str =
    "dGVzdCBzaWduYXR1cmU+Pz8/IG9mIHRoZSBpZGVudGl0eSBkb2N1bWVudA==\nb25lIG1vcmUgbGluZQ==";

/// What the fake IMDS knows about its instance.
#[derive(Clone)]
pub struct ImdsData {
    pub instance_id: String,
    pub region: String,
    /// `None`: no instance profile.
    pub role: Option<String>,
    /// `None`: instance tags are not exposed in IMDS (404).
    pub tags: Option<Vec<(String, String)>>,
}

/// IMDSv2 as EC2 serves it: a PUT to /latest/api/token with a TTL header
/// gives a token (and echoes the TTL, which aws-config requires); every GET
/// without a valid token is 401.
pub async fn start_imds(listener: TcpListener, data: ImdsData) {
    start_imds_watched(listener, data, Arc::default()).await
}

/// What a test sees of the fake IMDS: every request's method and path, in
/// the order they arrived.
#[derive(Default)]
pub struct ImdsWatch {
    pub requests: Mutex<Vec<String>>,
    /// Hold the role listing's answer until the credentials of this role
    /// are asked for (or 0.5 s pass, within the
    /// client's 1 s read timeout): only a client that asks for them
    /// without waiting for the listing gets its answer at once.
    pub hold_listing_for: Option<String>,
    /// Whether the listing's answer waited out the 0.5 s.
    pub listing_waited_out: std::sync::atomic::AtomicBool,
    credentials_asked: tokio::sync::Notify,
}

impl ImdsWatch {
    pub fn holding_listing_for(role: &str) -> Arc<ImdsWatch> {
        Arc::new(ImdsWatch {
            hold_listing_for: Some(role.into()),
            ..Default::default()
        })
    }

    /// The GET requests for `path`.
    pub fn gets(&self, path: &str) -> usize {
        let want = format!("GET {path}");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == want)
            .count()
    }
}

/// `start_imds`, watched.
pub async fn start_imds_watched(listener: TcpListener, data: ImdsData, watch: Arc<ImdsWatch>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Request, Response, StatusCode};
    let tokens: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let data = Arc::new(data);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        // As AWS's endpoints do: no Nagle delay on the answer's second write
        // (a client's delayed ACK would add 40 ms to every call).
        let _ = tcp.set_nodelay(true);
        let tokens = tokens.clone();
        let data = data.clone();
        let watch = watch.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let tokens = tokens.clone();
                let data = data.clone();
                let watch = watch.clone();
                async move {
                    let path = req.uri().path().to_string();
                    watch
                        .requests
                        .lock()
                        .unwrap()
                        .push(format!("{} {path}", req.method()));
                    if let Some(role) = &watch.hold_listing_for {
                        if path == format!("/latest/meta-data/iam/security-credentials/{role}") {
                            watch.credentials_asked.notify_one();
                        }
                        if path == "/latest/meta-data/iam/security-credentials/" {
                            let asked = watch.credentials_asked.notified();
                            if tokio::time::timeout(std::time::Duration::from_millis(500), asked)
                                .await
                                .is_err()
                            {
                                watch
                                    .listing_waited_out
                                    .store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                    answer_delay().await;
                    let reply = |status: StatusCode, body: String| {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    };
                    if req.method() == hyper::Method::PUT && path == "/latest/api/token" {
                        let Some(ttl) = req
                            .headers()
                            .get("x-aws-ec2-metadata-token-ttl-seconds")
                            .cloned()
                        else {
                            return reply(StatusCode::BAD_REQUEST, String::new());
                        };
                        let token = format!("token-{}", tokens.lock().unwrap().len());
                        tokens.lock().unwrap().push(token.clone());
                        return Ok(Response::builder()
                            .header("x-aws-ec2-metadata-token-ttl-seconds", ttl)
                            .body(Full::new(Bytes::from(token)))
                            .unwrap());
                    }
                    let valid = req
                        .headers()
                        .get("x-aws-ec2-metadata-token")
                        .and_then(|t| t.to_str().ok())
                        .is_some_and(|t| tokens.lock().unwrap().iter().any(|k| k == t));
                    if !valid {
                        return reply(StatusCode::UNAUTHORIZED, String::new());
                    }
                    let found = match path.as_str() {
                        "/latest/dynamic/instance-identity/document" => Some(format!(
                            r#"{{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"{r}a","instanceId":"{i}","instanceType":"t3.micro","region":"{r}"}}"#,
                            i = data.instance_id,
                            r = data.region
                        )),
                        "/latest/dynamic/instance-identity/signature" => {
                            Some(IDENTITY_SIGNATURE.to_string())
                        }
                        "/latest/meta-data/iam/security-credentials/" => data.role.clone(),
                        "/latest/meta-data/tags/instance" => data.tags.as_ref().map(|t| {
                            t.iter()
                                .map(|(k, _)| k.clone())
                                .collect::<Vec<_>>()
                                .join("\n")
                        }),
                        p => {
                            if let (Some(role), Some(rest)) = (
                                &data.role,
                                p.strip_prefix("/latest/meta-data/iam/security-credentials/"),
                            ) {
                                (rest == role).then(|| {
                                    r#"{"Code":"Success","LastUpdated":"2026-11-26T10:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIATESTKEY","SecretAccessKey":"testsecret","Token":"testtoken","Expiration":"2099-11-26T16:00:00Z"}"#.to_string()
                                })
                            } else if let Some(key) =
                                p.strip_prefix("/latest/meta-data/tags/instance/")
                            {
                                data.tags.as_ref().and_then(|t| {
                                    t.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
                                })
                            } else {
                                None
                            }
                        }
                    };
                    match found {
                        Some(body) => reply(StatusCode::OK, body),
                        None => reply(StatusCode::NOT_FOUND, String::new()),
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// The instance the fake EC2 knows tags of.
pub const INSTANCE_ID: &str = "i-0test";

/// DescribeTags' `Filter.N.Name` / `Filter.N.Value.M` form fields, by name.
fn describe_tags_filters(body: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let fields: Vec<(String, String)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for (k, name) in &fields {
        let Some(n) = k
            .strip_prefix("Filter.")
            .and_then(|r| r.strip_suffix(".Name"))
        else {
            continue;
        };
        let prefix = format!("Filter.{n}.Value.");
        let values: Vec<String> = fields
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect();
        out.insert(name.clone(), values);
    }
    out
}

/// `ec2:DescribeTags` over plain HTTP: answers the tags given when the
/// request is signed (SigV4 `Authorization`) and asks for DescribeTags;
/// `UnauthorizedOperation` when `allow` is false.
pub async fn start_ec2(listener: TcpListener, tags: Vec<(String, String)>, allow: bool) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let tags = Arc::new(tags);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        // As AWS's endpoints do: no Nagle delay on the answer's second write
        // (a client's delayed ACK would add 40 ms to every call).
        let _ = tcp.set_nodelay(true);
        let tags = tags.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |req: hyper::Request<hyper::body::Incoming>| {
                    let tags = tags.clone();
                    async move {
                        answer_delay().await;
                        let signed = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| {
                                v.starts_with("AWS4-HMAC-SHA256 Credential=ASIATESTKEY/")
                                    && v.contains("/ec2/aws4_request")
                            });
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let body = String::from_utf8_lossy(&body).into_owned();
                        let (status, xml) = if !signed {
                            (403, "<Response><Errors><Error><Code>AuthFailure</Code><Message>not signed</Message></Error></Errors></Response>".to_string())
                        } else if !allow {
                            (403, "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors></Response>".to_string())
                        } else if !body.contains("Action=DescribeTags") {
                            (400, "<Response><Errors><Error><Code>InvalidAction</Code></Error></Errors></Response>".to_string())
                        } else {
                            // Filtered as EC2 filters (issue #17 item 9): a
                            // wrong instance ID or key filter gets nothing.
                            let filters = describe_tags_filters(&body);
                            let wanted = |name: &str, value: &str| {
                                filters
                                    .get(name)
                                    .is_none_or(|values| values.iter().any(|v| v == value))
                            };
                            let items: String = tags
                            .iter()
                            .filter(|(k, _)| wanted("resource-id", INSTANCE_ID) && wanted("key", k) && filters.contains_key("resource-id"))
                            .map(|(k, v)| format!("<item><resourceId>{INSTANCE_ID}</resourceId><resourceType>instance</resourceType><key>{k}</key><value>{v}</value></item>"))
                            .collect();
                            (200, format!("<DescribeTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><tagSet>{items}</tagSet></DescribeTagsResponse>"))
                        };
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(xml)))
                                .unwrap(),
                        )
                    }
                },
            );
            let io = hyper_util::rt::TokioIo::new(tcp);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// How the fake STS answers GetCallerIdentity.
#[derive(Debug, Clone)]
pub enum StsAnswer {
    /// Accepts the caller as this ARN, in account 123456789012.
    Accept(String),
    /// The session token has expired.
    Expired,
    /// The fake's clock is this many seconds ahead of the caller's: past
    /// 5 minutes, a signature is refused as expired, as STS does.
    ClockAhead(i64),
}

/// `sts:GetCallerIdentity` in the Query protocol: checks the SigV4 header
/// is for sts, the action and version, and the signature's time against its
/// own clock; answers in STS's XML shapes. Counts calls. Plain HTTP when
/// `tls` is `None`, else HTTPS with that server config (the namespace test
/// serves it under its real name).
pub async fn start_sts(
    listener: TcpListener,
    answer: StsAnswer,
    calls: Arc<std::sync::atomic::AtomicUsize>,
) {
    serve_sts(listener, None, answer, calls).await
}

pub async fn serve_sts(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    answer: StsAnswer,
    calls: Arc<std::sync::atomic::AtomicUsize>,
) {
    let answer = Arc::new(answer);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        // As AWS's endpoints do: no Nagle delay on the answer's second write
        // (a client's delayed ACK would add 40 ms to every call).
        let _ = tcp.set_nodelay(true);
        let (answer, calls, acceptor) = (answer.clone(), calls.clone(), acceptor.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (answer, calls) = (answer.clone(), calls.clone());
                    async move {
                        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        answer_delay().await;
                        Ok::<_, Infallible>(sts_answer(req, &answer).await)
                    }
                });
            serve_one(tcp, acceptor, service).await;
        });
    }
}

async fn sts_answer(
    req: hyper::Request<hyper::body::Incoming>,
    answer: &StsAnswer,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let auth = header("authorization");
    let amz_date = header("x-amz-date");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let error = |status: u16, code: &str, message: &str| {
        (status, format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>4c0e7a52-0000-4000-8000-000000000000</RequestId></ErrorResponse>"))
    };
    let signed_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &amz_date)
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp());
    let offset = match answer {
        StsAnswer::ClockAhead(s) => *s,
        _ => 0,
    };
    let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(offset);
    let (status, xml) = if !auth.starts_with("AWS4-HMAC-SHA256 Credential=")
        || !auth.contains("/sts/aws4_request")
    {
        error(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    } else if body != "Action=GetCallerIdentity&Version=2011-06-15" {
        error(
            400,
            "InvalidAction",
            &format!("Could not find operation for {body}"),
        )
    } else {
        match (signed_at, answer) {
            (None, _) => error(400, "IncompleteSignature", "Missing X-Amz-Date"),
            (Some(at), _) if (now - at).get_seconds().abs() > 300 => error(
                403,
                "SignatureDoesNotMatch",
                &format!(
                    "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                    (now - jiff::SignedDuration::from_secs(300)).strftime("%Y%m%dT%H%M%SZ"),
                    now.strftime("%Y%m%dT%H%M%SZ")
                ),
            ),
            (_, StsAnswer::Expired) => error(
                403,
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
            (_, StsAnswer::Accept(_) | StsAnswer::ClockAhead(_)) => {
                let arn = match answer {
                    StsAnswer::Accept(a) => a.clone(),
                    _ => "arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test".into(),
                };
                (200, format!("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AROAEXAMPLE:i-0test</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>4c0e7a52-0000-4000-8000-000000000001</RequestId></ResponseMetadata></GetCallerIdentityResponse>"))
            }
        }
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(xml)))
        .unwrap()
}

/// One object of the fake S3: its path (`/bucket/key`), the status it
/// answers with (200, or 403 as a bucket or VPC endpoint policy answers),
/// and its body.
#[derive(Debug, Clone)]
pub struct S3Object {
    pub path: String,
    pub status: u16,
    pub body: String,
}

/// Anonymous S3 over plain HTTP, path-style: `GET` and `HEAD` of the given
/// objects; others `404 NoSuchKey`, a 403 with S3's `AccessDenied` XML.
/// Records each request line ("HEAD /bucket/key").
pub async fn start_s3(
    listener: TcpListener,
    objects: Vec<S3Object>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    serve_s3(listener, None, objects, seen).await
}

/// `start_s3` over HTTPS with `tls` when given (as `endpoints.urls.s3`,
/// which must be https://, reaches it).
pub async fn serve_s3(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    objects: Vec<S3Object>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let objects = Arc::new(objects);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        // As AWS's endpoints do: no Nagle delay on the answer's second write
        // (a client's delayed ACK would add 40 ms to every call).
        let _ = tcp.set_nodelay(true);
        let (objects, seen, acceptor) = (objects.clone(), seen.clone(), acceptor.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |req: hyper::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    let head = req.method() == hyper::Method::HEAD;
                    seen.lock()
                        .unwrap()
                        .push(format!("{} {path}", req.method()));
                    let found = objects.iter().find(|o| o.path == path).cloned();
                    async move {
                        answer_delay().await;
                        let (status, body) = match found {
                            Some(o) if o.status == 200 => (200, o.body),
                            Some(o) => (o.status, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".to_string()),
                            None => (404, format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>{path}</Key></Error>")),
                        };
                        let body = if head { String::new() } else { body };
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                },
            );
            serve_one(tcp, acceptor, service).await;
        });
    }
}
