//! Which of the agent's credential files exist on this host.

use super::Root;

/// Where the agent keeps credentials it got by Default Host Management.
pub const DHMC_CREDENTIALS: &str = "/var/lib/amazon/ssm/credentials";

/// The credential files found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Present {
    /// Default Host Management credentials.
    pub dhmc: bool,
    /// A hybrid node's shared credentials file (`aws.credentials_file`).
    pub shared_file: bool,
}

pub fn present(root: &Root, shared_file: &str) -> Present {
    Present {
        dhmc: root.path(DHMC_CREDENTIALS).is_file(),
        shared_file: root.path(shared_file).is_file(),
    }
}
