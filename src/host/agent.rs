//! The amazon-ssm-agent's systemd units: the deb/rpm unit and Ubuntu's snap
//! unit, as systemd reports them over D-Bus.

use super::systemd::{self, BusError, SystemBus, UnitInfo};
use super::Root;
use std::path::PathBuf;
use std::time::Duration;

pub const CLASSIC_UNIT: &str = "amazon-ssm-agent.service";
pub const SNAP_UNIT: &str = "snap.amazon-ssm-agent.amazon-ssm-agent.service";

/// Both possible agent units as systemd reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUnits {
    pub classic: UnitInfo,
    pub snap: UnitInfo,
}

impl AgentUnits {
    /// The units systemd knows (LoadState other than `not-found`).
    pub fn installed(&self) -> Vec<&UnitInfo> {
        [&self.classic, &self.snap]
            .into_iter()
            .filter(|u| u.exists())
            .collect()
    }

    /// The unit that runs the agent: an active one first, else the first installed.
    pub fn in_use(&self) -> Option<&UnitInfo> {
        let installed = self.installed();
        installed
            .iter()
            .find(|u| u.active_state == "active")
            .or_else(|| installed.first())
            .copied()
    }

    pub fn is_snap(&self) -> bool {
        self.in_use().is_some_and(|u| u.name == SNAP_UNIT)
    }
}

pub type AgentLookup = Result<AgentUnits, BusError>;

/// Asks systemd about both agent units at once.
pub async fn lookup(bus: &SystemBus) -> AgentLookup {
    let (classic, snap) = tokio::join!(
        systemd::unit(bus, CLASSIC_UNIT),
        systemd::unit(bus, SNAP_UNIT)
    );
    Ok(AgentUnits {
        classic: classic?,
        snap: snap?,
    })
}

pub const CLASSIC_BINARY: &str = "/usr/bin/amazon-ssm-agent";
pub const SNAP_BINARY: &str = "/snap/amazon-ssm-agent/current/amazon-ssm-agent";

/// The agent binary: the snap's when the snap unit runs the agent.
pub fn binary(root: &Root, units: Option<&AgentUnits>) -> Option<(PathBuf, String)> {
    let order = if units.is_some_and(AgentUnits::is_snap) {
        [SNAP_BINARY, CLASSIC_BINARY]
    } else {
        [CLASSIC_BINARY, SNAP_BINARY]
    };
    order
        .into_iter()
        .map(|p| (root.path(p), p.to_string()))
        .find(|(real, _)| real.is_file())
}

/// What `BINARY --version` prints, any exit status accepted (some agents
/// exit non-zero after printing it).
pub fn run_version(
    binary: &std::path::Path,
    budget: Duration,
) -> Result<String, super::command::CommandError> {
    super::command::run(binary, &["--version"], budget).map(|done| done.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, load: &str, active: &str) -> UnitInfo {
        UnitInfo {
            name: name.into(),
            load_state: load.into(),
            active_state: active.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_active_unit_is_the_one_in_use() {
        let units = AgentUnits {
            classic: unit(CLASSIC_UNIT, "loaded", "inactive"),
            snap: unit(SNAP_UNIT, "loaded", "active"),
        };
        assert_eq!(units.in_use().unwrap().name, SNAP_UNIT);
        assert!(units.is_snap());
        let none = AgentUnits {
            classic: unit(CLASSIC_UNIT, "not-found", "inactive"),
            snap: unit(SNAP_UNIT, "not-found", "inactive"),
        };
        assert!(none.in_use().is_none());
    }
}
