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
mod sdk_http;
pub mod snapshot;
pub mod sts;
pub mod tags;
pub mod windows;

pub use sdk_http::{sdk_http_client, sdk_plain_http_client, warm};
