//! Everything that talks to AWS or to the network: the node's identity
//! (IMDSv2 or the hybrid registration), the SSM endpoints on 443, the
//! package repositories, tags. Nothing here runs in `local` mode.

pub mod agent_release;
pub mod associations;
pub mod compliance;
pub mod identity;
pub mod invocations;
pub mod patching;
pub mod payload;
pub mod query;
pub mod sdk;
pub mod snapshot;
pub mod sts;
pub mod tags;
pub mod windows;

use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The AWS SDK's HTTPS client, on the same rustls and ring as our own
/// probes, and trusting the same roots (`network::tls::system`, read once
/// per process, not once more by the SDK): one per process, so the
/// credential providers and the SSM clients share its connection pool.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttps::get())
}

/// Reads the system's roots and builds the SDK's HTTPS connector for the
/// timeouts of a run's SSM calls, on the runtime's blocking threads,
/// beside the run's first IMDS round trips: both are then ready when the
/// credentials arrive and the first wave of SSM calls goes out, and none
/// of it runs on the runtime's thread at that moment.
pub fn warm(settings: &crate::config::Settings) {
    let wanted = call_settings(settings);
    tokio::task::spawn_blocking(move || {
        SdkHttps::get().connector(&wanted);
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

/// The SDK's HTTPS client, by hand for one reason: the SDK's own
/// (`aws_smithy_http_client::Builder::build_https`) builds a connector,
/// parsing every root, when each SSM client is made, and throws it away
/// (to load the native roots early, which ours already are), then builds
/// the one it keeps at the first call. Both landed on the run's critical
/// path. Here, as there, one connector is kept per pair of timeouts (the
/// SDK asks per call with the call's), each with its own connection pool.
/// A connector's connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct SdkHttps {
    tls: TlsContext,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl SdkHttps {
    fn get() -> &'static SdkHttps {
        static CLIENT: OnceLock<SdkHttps> = OnceLock::new();
        CLIENT.get_or_init(|| {
            let roots = match crate::network::tls::system().take_pem() {
                Some(pem) => TrustStore::empty().with_pem_certificate(pem),
                None => TrustStore::default(),
            };
            let tls = TlsContext::builder()
                .with_trust_store(roots)
                .build()
                .expect("a trust store without extra server names is a valid TLS context");
            SdkHttps {
                tls,
                connectors: Mutex::default(),
            }
        })
    }

    fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        self.connectors
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(|| {
                SharedHttpConnector::new(
                    aws_smithy_http_client::Connector::builder()
                        .connector_settings(settings.clone())
                        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
                        .tls_provider(Provider::Rustls(CryptoMode::Ring))
                        .tls_context(self.tls.clone())
                        .build(),
                )
            })
            .clone()
    }
}

impl HttpClient for &'static SdkHttps {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        Some(
            aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata::new(
                "hyper",
                Some("1.x".into()),
            ),
        )
    }
}

/// The HTTP client for IMDS at an `http://` address (as it always is on
/// EC2): no TLS, so asking IMDS never waits for the trust store.
pub fn sdk_plain_http_client() -> aws_sdk_ssm::config::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_sdk_ssm::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| aws_smithy_http_client::Builder::new().build_http())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached() -> Vec<Timeouts> {
        SdkHttps::get()
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
}
