//! Where the tool runs, decided from local files only: never the network.
//!
//! A hybrid registration file means an on-premises node registered with an
//! activation (`mi-…`); EC2's DMI vendor, an `i-…` asset tag or a Xen
//! hypervisor UUID starting `ec2` mean an EC2 instance; anything else is
//! `local`, where nothing AWS is contacted.

use super::{read_optional, Root};
use crate::config::ModeSetting;
use serde::{Deserialize, Serialize};

pub const REGISTRATION_FILE: &str = "/var/lib/amazon/ssm/registration";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Ec2,
    Hybrid,
    Local,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ec2 => "ec2",
            Mode::Hybrid => "hybrid",
            Mode::Local => "local",
        }
    }
}

/// The mode and what local files say about the node's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub mode: Mode,
    /// Why this mode, in words (`--mode ec2 was given`, `DMI sys_vendor is Amazon EC2`).
    pub reason: String,
    pub instance_id: Option<String>,
    pub region: Option<String>,
}

/// The hybrid registration file: `{"ManagedInstanceID":"mi-…","Region":"…"}`.
#[derive(Debug, serde::Deserialize)]
struct Registration {
    #[serde(rename = "ManagedInstanceID")]
    instance_id: Option<String>,
    #[serde(rename = "Region")]
    region: Option<String>,
}

fn read_trimmed(root: &Root, path: &str) -> Option<String> {
    read_optional(&root.path(path))
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn registration(root: &Root) -> Option<Registration> {
    let text = read_optional(&root.path(REGISTRATION_FILE)).ok()??;
    Some(serde_json::from_str(&text).unwrap_or(Registration {
        instance_id: None,
        region: None,
    }))
}

/// The EC2 signal found in DMI or the hypervisor UUID, if any, and the
/// instance ID DMI shows (Nitro instances carry it as the board asset tag).
fn ec2_signal(root: &Root) -> (Option<String>, Option<String>) {
    let asset_tag =
        read_trimmed(root, "/sys/class/dmi/id/board_asset_tag").filter(|t| t.starts_with("i-"));
    if let Some(vendor) = read_trimmed(root, "/sys/class/dmi/id/sys_vendor") {
        if vendor == "Amazon EC2" {
            return (Some("DMI sys_vendor is \"Amazon EC2\"".into()), asset_tag);
        }
    }
    if let Some(tag) = &asset_tag {
        return (
            Some(format!("DMI board_asset_tag is {tag}")),
            asset_tag.clone(),
        );
    }
    if let Some(uuid) = read_trimmed(root, "/sys/hypervisor/uuid") {
        if uuid.to_ascii_lowercase().starts_with("ec2") {
            return (Some("/sys/hypervisor/uuid starts with ec2".into()), None);
        }
    }
    (None, None)
}

/// What the local files say about the node, read once: the hybrid
/// registration and the EC2 signal in DMI or the hypervisor UUID. Read
/// apart from `decide` so that a command can start the reads before its
/// config is loaded (the config only says how to weigh them).
pub struct Signals {
    registration: Option<Registration>,
    ec2: Option<String>,
    dmi_instance: Option<String>,
}

pub fn signals(root: &Root) -> Signals {
    let registration = registration(root);
    let (ec2, dmi_instance) = ec2_signal(root);
    Signals {
        registration,
        ec2,
        dmi_instance,
    }
}

pub fn detect(root: &Root, setting: ModeSetting) -> Detected {
    if setting == ModeSetting::Local {
        // Local mode needs no file: nothing is read.
        return local_by_setting();
    }
    decide(&signals(root), setting)
}

fn local_by_setting() -> Detected {
    Detected {
        mode: Mode::Local,
        reason: "mode is set to local".into(),
        instance_id: None,
        region: None,
    }
}

/// The mode for a setting, given what the files say.
pub fn decide(signals: &Signals, setting: ModeSetting) -> Detected {
    let reg = &signals.registration;
    let (ec2, dmi_instance) = (&signals.ec2, &signals.dmi_instance);
    let hybrid_ids = |reason: String| {
        let reg = reg.as_ref();
        Detected {
            mode: Mode::Hybrid,
            reason,
            instance_id: reg.and_then(|r| r.instance_id.clone()),
            region: reg.and_then(|r| r.region.clone()),
        }
    };
    let ec2_ids = |reason: String| Detected {
        mode: Mode::Ec2,
        reason,
        instance_id: dmi_instance.clone(),
        region: None,
    };
    match setting {
        ModeSetting::Hybrid => hybrid_ids("mode is set to hybrid".into()),
        ModeSetting::Ec2 => ec2_ids("mode is set to ec2".into()),
        ModeSetting::Local => local_by_setting(),
        ModeSetting::Auto => {
            if reg.is_some() {
                hybrid_ids(format!("{REGISTRATION_FILE} exists"))
            } else if let Some(reason) = ec2 {
                ec2_ids(reason.clone())
            } else {
                Detected {
                    mode: Mode::Local,
                    reason: "no hybrid registration and no EC2 signature in DMI or /sys/hypervisor"
                        .into(),
                    instance_id: None,
                    region: None,
                }
            }
        }
    }
}
