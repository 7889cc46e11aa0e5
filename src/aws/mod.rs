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

use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// The AWS SDK's HTTPS client, on the same rustls and ring as our own
/// probes: one per process. Each one built loads and parses the system's
/// trust store, so the credential providers, IMDS and SSM clients share it
/// (and its connection pool) instead of each paying for that.
pub fn sdk_http_client() -> aws_sdk_ssm::config::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_sdk_ssm::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}
