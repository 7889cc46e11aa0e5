//! The AWS SDK's HTTP client: the SDK's calls go through our reqwest and
//! rustls, trusting the system's roots as read once per process.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::sdk;

/// The AWS SDK's HTTPS client: our own reqwest and rustls, trusting the
/// system's roots as read once per process (`network::tls::system`), one
/// per process, so the credential providers and the SSM clients share its
/// connection pools.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttp::https())
}

/// The HTTP client for IMDS at an `http://` address (as it always is on
/// EC2): it trusts no root, so asking IMDS never waits for the trust store.
pub fn sdk_plain_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttp::plain())
}

/// Reads the system's roots and builds the SDK's HTTPS connector for the
/// timeouts of a run's SSM calls, on the runtime's blocking threads,
/// beside the run's first IMDS round trips: both are then ready when the
/// credentials arrive and the first wave of SSM calls goes out, and none
/// of it runs on the runtime's thread at that moment.
pub fn warm(settings: &crate::config::Settings) {
    let wanted = call_settings(settings);
    tokio::task::spawn_blocking(move || {
        SdkHttp::https().connector(&wanted);
    });
}

/// What the SDK asks its HTTP client for on each of our calls: the
/// connect and read timeouts of `sdk::timeouts` (the orchestrator takes
/// those two from the operation's timeout config).
fn call_settings(settings: &crate::config::Settings) -> HttpConnectorSettings {
    let timeouts = sdk::timeouts(settings);
    let mut wanted = HttpConnectorSettings::builder();
    wanted.set_connect_timeout(timeouts.connect_timeout());
    wanted.set_read_timeout(timeouts.read_timeout());
    wanted.build()
}

/// A connector's connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

/// The SDK's HTTP client, on the reqwest and rustls the probes use. By
/// hand, for what the SDK's own (`aws_smithy_http_client`'s
/// `build_https`) cost, and no crate offers the SDK a reqwest client: it
/// takes roots only as PEM, so ours were written out and parsed again,
/// twice per SSM client (a connector built when the client is made, to
/// load native roots early, and thrown away; the kept one at the first
/// call), both on the run's critical path; and its HTTP/2 and second TLS
/// stack were 1.0 MB of the binary, most of it mapped by every run. As
/// the SDK's client does, one connector is kept per pair of timeouts (the
/// SDK asks for one per call, with the call's), each with its own
/// connection pool; and no proxy is taken from the environment, as before.
#[derive(Debug)]
struct SdkHttp {
    tls: fn() -> Arc<rustls::ClientConfig>,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl SdkHttp {
    fn https() -> &'static SdkHttp {
        static CLIENT: OnceLock<SdkHttp> = OnceLock::new();
        CLIENT.get_or_init(|| SdkHttp::new(crate::network::tls::system_config))
    }

    fn plain() -> &'static SdkHttp {
        static CLIENT: OnceLock<SdkHttp> = OnceLock::new();
        CLIENT.get_or_init(|| SdkHttp::new(crate::network::tls::no_roots_config))
    }

    fn new(tls: fn() -> Arc<rustls::ClientConfig>) -> SdkHttp {
        SdkHttp {
            tls,
            connectors: Mutex::default(),
        }
    }

    fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        self.connectors
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(|| {
                let mut client = reqwest::Client::builder()
                    .use_preconfigured_tls((*(self.tls)()).clone())
                    .no_proxy();
                if let Some(t) = settings.connect_timeout() {
                    client = client.connect_timeout(t);
                }
                if let Some(t) = settings.read_timeout() {
                    client = client.read_timeout(t);
                }
                match client.build() {
                    Ok(client) => SharedHttpConnector::new(Connector(client)),
                    Err(e) => SharedHttpConnector::new(Unbuilt(e.to_string())),
                }
            })
            .clone()
    }
}

impl HttpClient for &'static SdkHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings)
    }
}

/// One connector: SDK requests sent with reqwest.
#[derive(Debug)]
struct Connector(reqwest::Client);

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = to_reqwest(request)?;
            let answer = client.execute(request).await.map_err(connector_error)?;
            let mut response = http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
            }
            let body = answer.bytes().await.map_err(connector_error)?;
            let response = response
                .body(SdkBody::from(body))
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's request as reqwest's. Every request this tool makes carries
/// its body in memory (JSON, a query string, nothing).
fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let body = body
        .bytes()
        .ok_or_else(|| ConnectorError::user("a streamed request body is not supported".into()))?
        .to_vec();
    reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| ConnectorError::user(e.without_url().into()))
}

/// reqwest's failure as the SDK sorts it: a timeout, an I/O failure
/// (both retried), or another. The URL is left out: the caller names the
/// action and the endpoint.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    let e = e.without_url();
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() {
        // (reqwest reports a body cut short, read by `bytes`, as decode.)
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

/// A connector whose reqwest client could not be built: each call fails
/// saying why.
#[derive(Debug)]
struct Unbuilt(String);

impl HttpConnector for Unbuilt {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let why = self.0.clone();
        HttpConnectorFuture::ready(Err(ConnectorError::other(
            format!("the HTTP client could not be built: {why}").into(),
            None,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached() -> Vec<Timeouts> {
        SdkHttp::https()
            .connectors
            .lock()
            .unwrap()
            .keys()
            .copied()
            .collect()
    }

    #[tokio::test]
    async fn an_ssm_call_takes_the_connector_the_run_built_beside_imds() {
        let mut settings = crate::config::Settings::default();
        // A pair of timeouts no other test asks for, so the cache's keys
        // before and after say what this test's call did.
        settings.aws.attempt_timeout = Duration::from_millis(4321);
        warm(&settings);
        let key = (
            Some(settings.aws.attempt_timeout),
            Some(settings.aws.attempt_timeout),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cached().contains(&key) {
            assert!(
                std::time::Instant::now() < deadline,
                "warm built no connector"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = cached();

        // An SSM client as `sdk::ssm_client` makes it (without retries, so
        // the refused connection ends the call at once), calling a closed
        // loopback port.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "not-a-secret",
                None,
                None,
                "test",
            ))
            .http_client(sdk_http_client())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
            .timeout_config(sdk::timeouts(&settings))
            .endpoint_url(url)
            .build();
        let call = aws_sdk_ssm::Client::from_conf(config)
            .describe_instance_information()
            .send()
            .await;
        assert!(
            matches!(call, Err(aws_sdk_ssm::error::SdkError::DispatchFailure(_))),
            "a closed port refuses the connection: {call:?}"
        );
        assert_eq!(
            cached(),
            before,
            "the call built a connector of its own instead of taking the warmed one"
        );
    }

    fn request_to(addr: std::net::SocketAddr) -> HttpRequest {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/"))
            .header("x-amz-target", "AmazonSSM.DescribeInstanceInformation")
            .body(SdkBody::from("{}"))
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    fn connector_with_read_timeout(ms: u64) -> SharedHttpConnector {
        let mut settings = HttpConnectorSettings::builder();
        settings.set_connect_timeout(Some(Duration::from_millis(ms)));
        settings.set_read_timeout(Some(Duration::from_millis(ms)));
        SdkHttp::plain().connector(&settings.build())
    }

    #[tokio::test]
    async fn an_answer_reaches_the_sdk_whole_and_a_refusal_is_retried_as_io() {
        // A server that reads the request and answers it once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{BufRead, Read, Write};
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut head = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer = b"HTTP/1.1 400 Bad Request\r\nx-amzn-requestid: r-1\r\ncontent-length: 20\r\n\r\n{\"__type\":\"Invalid\"}";
            reader.get_mut().write_all(answer).unwrap();
            (head, body)
        });
        let response = connector_with_read_timeout(5000)
            .call(request_to(addr))
            .await
            .expect("the server answers");
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r-1"));
        assert_eq!(
            response.body().bytes(),
            Some(&b"{\"__type\":\"Invalid\"}"[..])
        );
        let (head, body) = server.join().unwrap();
        assert!(
            head.iter().any(|l| l
                .eq_ignore_ascii_case("x-amz-target: AmazonSSM.DescribeInstanceInformation\r\n")),
            "the request's headers were sent: {head:?}"
        );
        assert_eq!(body, b"{}");

        // Nothing listens there any more: the connection is refused.
        let refused = connector_with_read_timeout(5000)
            .call(request_to(addr))
            .await
            .expect_err("nothing listens");
        assert!(refused.is_io(), "{refused:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_ends_the_call_at_the_read_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        let silent = connector_with_read_timeout(300)
            .call(request_to(addr))
            .await
            .expect_err("no answer comes");
        assert!(silent.is_timeout(), "{silent:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(listener);
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_retried_as_io() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).unwrap();
            // Says 100 bytes, sends 2, and hangs up.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}")
                .unwrap();
        });
        let cut = connector_with_read_timeout(5000)
            .call(request_to(addr))
            .await
            .expect_err("the body ends early");
        assert!(cut.is_io(), "{cut:?}");
    }
}
