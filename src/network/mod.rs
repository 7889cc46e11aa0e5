//! Reaching things over the network the way the agent and the package
//! manager do: the agent's proxy rules, TLS with the system's and the
//! configured roots, the step-by-step probe of an endpoint on 443, and the
//! repositories' indexes. Below `aws`, above `host`.

pub mod endpoints;
pub mod proxy;
pub mod repos;
pub mod tls;
