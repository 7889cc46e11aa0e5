//! The amazon-ssm-agent, the way systemd sees it: which unit runs it (the
//! deb/rpm `amazon-ssm-agent.service` or Ubuntu's snap unit), in what state,
//! as whom, with what version, log and proxy.

pub mod log;
pub mod proxy;
pub mod service;
pub mod version;

use super::{Context, Outcome};
use crate::host::os_release::OsRelease;
use crate::host::systemd::{self, BusError, UnitInfo};

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

/// Asks systemd about both agent units once per run; every agent check shares the answer.
pub async fn lookup(ctx: &Context) -> &AgentLookup {
    ctx.shared
        .agent
        .get_or_init(|| async {
            let bus = &ctx.shared.bus;
            let (classic, snap) = tokio::join!(
                systemd::unit(bus, CLASSIC_UNIT),
                systemd::unit(bus, SNAP_UNIT)
            );
            Ok(AgentUnits {
                classic: classic?,
                snap: snap?,
            })
        })
        .await
}

/// The outcome when systemd could not be asked.
pub fn bus_outcome(e: &BusError) -> Outcome {
    match e {
        BusError::NoBus(_) => Outcome::skip(format!(
            "{e}, so systemd cannot be asked; this host does not run systemd (a container?)"
        )),
        BusError::NotOnBus { .. } => Outcome::error(
            e.to_string(),
            "Check that systemd is PID 1 (`ps -p 1 -o comm=` prints systemd) and that the bus works: `busctl status org.freedesktop.systemd1`.",
        ),
        BusError::Failed(why) => Outcome::error(
            format!("systemd answered with an error: {why}"),
            "Run ssm-preflight as root; `busctl status org.freedesktop.systemd1` shows whether the bus lets you ask.",
        ),
    }
}

/// `systemctl` name of a unit: `amazon-ssm-agent` for `amazon-ssm-agent.service`.
pub fn ctl_name(unit: &str) -> &str {
    unit.strip_suffix(".service").unwrap_or(unit)
}

/// Where the agent packages are published, for this machine's architecture.
fn package_arch(deb: bool) -> &'static str {
    match (std::env::consts::ARCH, deb) {
        ("aarch64", true) => "debian_arm64",
        ("aarch64", false) => "linux_arm64",
        (_, true) => "debian_amd64",
        (_, false) => "linux_amd64",
    }
}

/// The command that installs the agent on this distribution.
pub fn install_command(os: Option<&OsRelease>) -> String {
    const BASE: &str = "https://s3.amazonaws.com/ec2-downloads-windows/SSMAgent/latest";
    let id = os.map(|o| o.id.as_str()).unwrap_or("");
    let major = os
        .and_then(|o| o.version_id.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match id {
        "amzn" => "sudo yum install -y amazon-ssm-agent".into(),
        "ubuntu" => "sudo snap install amazon-ssm-agent --classic".into(),
        "debian" => format!(
            "curl -fsSo /tmp/amazon-ssm-agent.deb {BASE}/{}/amazon-ssm-agent.deb && sudo dpkg -i /tmp/amazon-ssm-agent.deb",
            package_arch(true)
        ),
        "rhel" | "centos" | "ol" | "almalinux" | "rocky" => {
            let tool = if major.is_some_and(|m| m <= 7) { "yum" } else { "dnf" };
            format!("sudo {tool} install -y {BASE}/{}/amazon-ssm-agent.rpm", package_arch(false))
        }
        "sles" => format!("sudo zypper install -y {BASE}/{}/amazon-ssm-agent.rpm", package_arch(false)),
        _ => "install amazon-ssm-agent as https://docs.aws.amazon.com/systems-manager/latest/userguide/manually-install-ssm-agent-linux.html describes for your distribution".into(),
    }
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

    #[test]
    fn install_commands_per_distribution() {
        let os = |id: &str, v: &str| OsRelease {
            id: id.into(),
            version_id: v.into(),
            ..Default::default()
        };
        assert_eq!(
            install_command(Some(&os("ubuntu", "22.04"))),
            "sudo snap install amazon-ssm-agent --classic"
        );
        assert!(
            install_command(Some(&os("rhel", "9.4"))).starts_with("sudo dnf install -y https://")
        );
        assert!(
            install_command(Some(&os("centos", "7"))).starts_with("sudo yum install -y https://")
        );
        assert!(install_command(Some(&os("debian", "12"))).contains("sudo dpkg -i"));
        assert!(install_command(None).contains("manually-install-ssm-agent-linux"));
    }
}
