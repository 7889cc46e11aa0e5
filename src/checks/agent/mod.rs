//! The amazon-ssm-agent, the way systemd sees it: which unit runs it (the
//! deb/rpm `amazon-ssm-agent.service` or Ubuntu's snap unit), in what state,
//! as whom, with what version, log and proxy.

pub mod log;
pub mod proxy;
pub mod service;
pub mod version;

use crate::host::os_release::OsRelease;

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
