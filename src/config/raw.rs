//! The config file as written: every field optional, unknown keys refused.
//! One `RawConfig` per file; the files are merged before validation.

use super::units::{ByteAmount, CountAmount, HumanDuration};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Where the tool decides it runs; `auto` looks only at local files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModeSetting {
    #[default]
    Auto,
    Ec2,
    Hybrid,
    Local,
}

impl std::str::FromStr for ModeSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(ModeSetting::Auto),
            "ec2" => Ok(ModeSetting::Ec2),
            "hybrid" => Ok(ModeSetting::Hybrid),
            "local" => Ok(ModeSetting::Local),
            other => Err(format!(
                "`{other}` is no mode; write auto, ec2, hybrid or local"
            )),
        }
    }
}

impl ModeSetting {
    pub const ALL: [ModeSetting; 4] = [
        ModeSetting::Auto,
        ModeSetting::Ec2,
        ModeSetting::Hybrid,
        ModeSetting::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModeSetting::Auto => "auto",
            ModeSetting::Ec2 => "ec2",
            ModeSetting::Hybrid => "hybrid",
            ModeSetting::Local => "local",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub mode: Option<ModeSetting>,
    pub checks: Option<RawChecks>,
    pub disk: Option<RawDisk>,
    pub pkg_lock: Option<RawPkgLock>,
    pub pkg_simulate: Option<RawPkgSimulate>,
    pub agent: Option<RawAgent>,
    pub aws: Option<RawAws>,
    pub endpoints: Option<RawEndpoints>,
    pub repos: Option<RawRepos>,
    pub patch_group: Option<RawPatchGroup>,
    pub report: Option<RawReport>,
    pub gate: Option<RawGate>,
    pub daemon: Option<RawDaemon>,
    pub metrics: Option<RawMetrics>,
    pub remediate: Option<RawRemediate>,
    pub window: Option<Vec<RawWindow>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemediate {
    pub hold_updaters: Option<bool>,
    pub hold_before: Option<HumanDuration>,
    pub hold_max: Option<HumanDuration>,
    pub updater_wait: Option<HumanDuration>,
    pub clean_package_cache: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub interval: Option<HumanDuration>,
    pub lead_times: Option<Vec<HumanDuration>>,
    pub schedule_cache: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub textfile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub name: String,
    pub schedule: String,
    pub timezone: Option<String>,
    pub offset_days: Option<i64>,
    pub duration: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub jitter: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub checks: Option<Vec<String>>,
    pub block_on_warn: Option<bool>,
    pub block_on_error: Option<bool>,
    pub lock_wait: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    pub region: Option<String>,
    pub imds_endpoint: Option<String>,
    pub credentials_file: Option<String>,
    pub profile: Option<String>,
    pub attempt_timeout: Option<HumanDuration>,
    pub operation_timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoints {
    pub timeout: Option<HumanDuration>,
    pub extra: Option<Vec<String>>,
    pub ca_bundle: Option<String>,
    pub urls: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepos {
    pub timeout: Option<HumanDuration>,
    pub key_warn_before: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPatchGroup {
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub min_version: Option<String>,
    pub flapping_window: Option<HumanDuration>,
    pub log_stale_after: Option<HumanDuration>,
    pub log_error_window: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecks {
    pub timeout: Option<HumanDuration>,
    pub disable: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisk {
    // Written out rather than `#[serde(flatten)]`: serde cannot refuse unknown
    // keys in a struct that flattens another.
    pub warn_below: Option<ByteAmount>,
    pub fail_below: Option<ByteAmount>,
    pub inodes_warn_below: Option<CountAmount>,
    pub inodes_fail_below: Option<CountAmount>,
    pub paths: Option<BTreeMap<String, RawThresholds>>,
}

impl RawDisk {
    pub fn thresholds(&self) -> RawThresholds {
        RawThresholds {
            warn_below: self.warn_below,
            fail_below: self.fail_below,
            inodes_warn_below: self.inodes_warn_below,
            inodes_fail_below: self.inodes_fail_below,
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    pub warn_below: Option<ByteAmount>,
    pub fail_below: Option<ByteAmount>,
    pub inodes_warn_below: Option<CountAmount>,
    pub inodes_fail_below: Option<CountAmount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPkgLock {
    pub stuck_after: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPkgSimulate {
    pub timeout: Option<HumanDuration>,
    pub stale_after: Option<HumanDuration>,
}
