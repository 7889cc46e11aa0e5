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

/// The AWS SDK's HTTPS client, on the same rustls and ring as our own
/// probes, and trusting the same roots (`network::tls::system`, read once
/// per process, not once more by the SDK): one per process, so the
/// credential providers and the SSM clients share its connection pool.
pub fn sdk_http_client() -> aws_sdk_ssm::config::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_sdk_ssm::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let roots = match crate::network::tls::system().take_pem() {
                Some(pem) => TrustStore::empty().with_pem_certificate(pem),
                None => TrustStore::default(),
            };
            let tls = TlsContext::builder()
                .with_trust_store(roots)
                .build()
                .expect("a trust store without extra server names is a valid TLS context");
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .tls_context(tls)
                .build_https()
        })
        .clone()
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
