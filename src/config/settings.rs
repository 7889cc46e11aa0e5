//! Validated settings with real types, one struct per section of the file,
//! and the built-in defaults. They serialize back into the file's own keys,
//! which is what `config show` prints: a key added here is shown there.

use super::raw::ModeSetting;
use super::schedule::Schedule;
use super::units::{serialize_duration, serialize_durations, Amount, ByteAmount, CountAmount};
use super::{ConfigError, Origin};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub mode: ModeSetting,
    pub checks: ChecksSettings,
    pub disk: DiskSettings,
    pub pkg_lock: PkgLockSettings,
    pub pkg_simulate: PkgSimulateSettings,
    pub agent: AgentSettings,
    pub aws: AwsSettings,
    pub endpoints: EndpointSettings,
    pub repos: ReposSettings,
    pub patch_group: PatchGroupSettings,
    pub report: ReportSettings,
    pub gate: GateSettings,
    pub daemon: DaemonSettings,
    pub metrics: MetricsSettings,
    pub remediate: RemediateSettings,
    /// Maintenance windows known from the config, beside SSM's.
    pub window: Vec<WindowSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChecksSettings {
    /// How long one check may take before it is reported as `error`.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Check IDs, families (`disk`) or groups (`host`) not to run.
    pub disable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PkgSimulateSettings {
    /// The package manager's dry run is killed past this.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Package lists older than this make the simulation's answer stale.
    #[serde(serialize_with = "serialize_duration")]
    pub stale_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PkgLockSettings {
    /// A package-manager lock held longer than this is a failure, not a wait.
    #[serde(serialize_with = "serialize_duration")]
    pub stuck_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReposSettings {
    /// How long one repository's index may take to answer.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// A repository signing key expiring within this warns.
    #[serde(serialize_with = "serialize_duration")]
    pub key_warn_before: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PatchGroupSettings {
    /// A Patch Group set by hand: it wins over every tag.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSettings {
    /// The daemon's reports start up to this long after a run is due, so a
    /// fleet with one window does not call SSM in the same second.
    #[serde(serialize_with = "serialize_duration")]
    pub jitter: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MetricsSettings {
    /// A Prometheus textfile to write after each run (node_exporter's textfile collector).
    pub textfile: Option<PathBuf>,
}

/// Which results block `ssm-preflight gate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateSettings {
    /// Check selectors whose results may block; empty: every check.
    pub checks: Vec<String>,
    /// Whether a warning blocks too (by default only failures do).
    pub block_on_warn: bool,
    /// Whether a check that could not look (`error`: it crashed, timed out
    /// or could not read) blocks: by default it does, since nobody knows
    /// the host is fine.
    pub block_on_error: bool,
    /// How long the gate waits for a package-manager lock holder to finish
    /// before it blocks: the patch run's apt path and zypper fail at once
    /// on a held lock.
    #[serde(serialize_with = "serialize_duration")]
    pub lock_wait: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            checks: Vec::new(),
            block_on_warn: false,
            block_on_error: true,
            lock_wait: Duration::from_secs(10 * 60),
        }
    }
}

/// What the daemon may change on the host, each off unless asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemediateSettings {
    /// Stop and runtime-mask the host's own update timers (apt-daily,
    /// dnf-automatic, …) around each known window.
    pub hold_updaters: bool,
    /// How long before a window's start the hold begins.
    #[serde(serialize_with = "serialize_duration")]
    pub hold_before: Duration,
    /// The longest hold: a window's length when SSM does not say it.
    #[serde(serialize_with = "serialize_duration")]
    pub hold_max: Duration,
    /// How long a hold waits for an updater already running to finish
    /// (never killed mid-transaction) before it masks the rest and says so.
    #[serde(serialize_with = "serialize_duration")]
    pub updater_wait: Duration,
    /// Empty the package cache with the package manager's own clean when
    /// the disk check of its filesystem warns or fails (never while a
    /// package-manager lock is held).
    pub clean_package_cache: bool,
}

impl Default for RemediateSettings {
    fn default() -> Self {
        RemediateSettings {
            hold_updaters: false,
            hold_before: Duration::from_secs(15 * 60),
            hold_max: Duration::from_secs(4 * 3600),
            updater_wait: Duration::from_secs(10 * 60),
            clean_package_cache: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonSettings {
    /// A baseline run this often (jittered by up to a tenth), between windows.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// Runs this long before each window opens.
    #[serde(serialize_with = "serialize_durations")]
    pub lead_times: Vec<Duration>,
    /// How long SSM's window schedule is trusted before it is asked again.
    #[serde(serialize_with = "serialize_duration")]
    pub schedule_cache: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            interval: Duration::from_secs(6 * 3600),
            lead_times: vec![Duration::from_secs(3600), Duration::from_secs(600)],
            schedule_cache: Duration::from_secs(3600),
        }
    }
}

/// A `[[window]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowSettings {
    pub name: String,
    #[serde(serialize_with = "serialize_schedule")]
    pub schedule: Schedule,
    /// An IANA name, checked to exist.
    pub timezone: String,
    pub offset_days: i64,
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
}

fn serialize_schedule<S: serde::Serializer>(s: &Schedule, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&s.text())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AwsSettings {
    /// The region, when the identity cannot tell it (or must be overridden).
    pub region: Option<String>,
    /// The IMDS base URL; else `AWS_EC2_METADATA_SERVICE_ENDPOINT` or 169.254.169.254.
    pub imds_endpoint: Option<String>,
    /// Where a hybrid node's agent keeps its credentials.
    pub credentials_file: String,
    pub profile: String,
    /// One attempt of an SSM call: connecting, and each wait for the answer.
    #[serde(serialize_with = "serialize_duration")]
    pub attempt_timeout: Duration,
    /// One SSM call, retries included.
    #[serde(serialize_with = "serialize_duration")]
    pub operation_timeout: Duration,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            imds_endpoint: None,
            credentials_file: "/root/.aws/credentials".into(),
            profile: "default".into(),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSettings {
    /// Per endpoint, DNS to HTTP answer.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Services probed besides ssm, ssmmessages, ec2messages and s3.
    pub extra: Vec<String>,
    /// A PEM bundle trusted besides the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// `https://…` per service, instead of the regional name.
    pub urls: BTreeMap<String, String>,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        EndpointSettings {
            timeout: Duration::from_secs(3),
            extra: Vec::new(),
            ca_bundle: None,
            urls: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSettings {
    /// Oldest agent that runs `AWS-RunPatchBaselineWithHooks`.
    pub min_version: String,
    /// Restarts while the unit came up within this long ago count as flapping.
    #[serde(serialize_with = "serialize_duration")]
    pub flapping_window: Duration,
    /// A log not written for this long means the agent is not doing anything.
    #[serde(serialize_with = "serialize_duration")]
    pub log_stale_after: Duration,
    /// ERROR lines this recent are reported.
    #[serde(serialize_with = "serialize_duration")]
    pub log_error_window: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            min_version: "3.0.502".into(),
            flapping_window: Duration::from_secs(3600),
            log_stale_after: Duration::from_secs(24 * 3600),
            log_error_window: Duration::from_secs(3600),
        }
    }
}

/// Free-space floors for one path's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub warn_below: ByteAmount,
    pub fail_below: ByteAmount,
    pub inodes_warn_below: CountAmount,
    pub inodes_fail_below: CountAmount,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskSettings {
    /// Thresholds for every checked path without its own.
    #[serde(flatten)]
    pub defaults: Thresholds,
    /// Paths with thresholds of their own: built-in ones and configured ones.
    pub paths: BTreeMap<String, Thresholds>,
    /// Paths added in `[disk.paths]` (checked even if not a default path).
    #[serde(skip)]
    pub configured: Vec<String>,
}

impl DiskSettings {
    pub fn thresholds_for(&self, path: &str) -> Thresholds {
        self.paths.get(path).copied().unwrap_or(self.defaults)
    }
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn bytes(n: u64) -> ByteAmount {
    ByteAmount(Amount::Absolute(n))
}

fn percent(p: f64) -> CountAmount {
    CountAmount(Amount::Percent(p))
}

/// A patch run downloads a month of updates into /var/cache and unpacks them
/// under / and /usr: 2 GiB free is comfortable, under 500 MiB runs fail.
pub const DEFAULT_THRESHOLDS: Thresholds = Thresholds {
    warn_below: ByteAmount(Amount::Absolute(2 * GIB)),
    fail_below: ByteAmount(Amount::Absolute(500 * MIB)),
    inodes_warn_below: CountAmount(Amount::Percent(10.0)),
    inodes_fail_below: CountAmount(Amount::Percent(2.0)),
};

/// Paths whose needs differ from the rest: /boot holds kernels and initramfs
/// images (about 100 MiB per new kernel), so a small /boot is normal.
pub fn builtin_path_thresholds() -> BTreeMap<String, Thresholds> {
    let mut paths = BTreeMap::new();
    paths.insert(
        "/boot".to_string(),
        Thresholds {
            warn_below: bytes(250 * MIB),
            fail_below: bytes(120 * MIB),
            inodes_warn_below: percent(10.0),
            inodes_fail_below: percent(2.0),
        },
    );
    paths
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: ModeSetting::Auto,
            checks: ChecksSettings {
                timeout: Duration::from_secs(5),
                disable: Vec::new(),
            },
            disk: DiskSettings {
                defaults: DEFAULT_THRESHOLDS,
                paths: builtin_path_thresholds(),
                configured: Vec::new(),
            },
            pkg_lock: PkgLockSettings {
                stuck_after: Duration::from_secs(30 * 60),
            },
            pkg_simulate: PkgSimulateSettings {
                timeout: Duration::from_secs(60),
                stale_after: Duration::from_secs(7 * 86_400),
            },
            agent: AgentSettings::default(),
            aws: AwsSettings::default(),
            endpoints: EndpointSettings::default(),
            repos: ReposSettings {
                timeout: Duration::from_secs(5),
                key_warn_before: Duration::from_secs(30 * 86_400),
            },
            patch_group: PatchGroupSettings::default(),
            report: ReportSettings {
                jitter: Duration::from_secs(5 * 60),
            },
            gate: GateSettings::default(),
            daemon: DaemonSettings::default(),
            metrics: MetricsSettings::default(),
            remediate: RemediateSettings::default(),
            window: Vec::new(),
        }
    }
}

/// A config error at the file and line that set `key`.
pub fn invalid(origins: &BTreeMap<String, Origin>, key: &str, message: String) -> ConfigError {
    let origin = origins.get(key).cloned().unwrap_or(Origin {
        path: "(built-in defaults)".into(),
        line: 0,
    });
    ConfigError::Invalid {
        path: origin.path,
        line: origin.line,
        column: 1,
        key: Some(key.to_string()),
        message,
    }
}

/// The effective settings as (dotted key, value) pairs in the file's own
/// keys, for `config show`: derived from the serialization, so every key
/// the settings have is listed. An unset optional key has no value.
pub fn effective_values(s: &Settings) -> Vec<(String, Option<String>)> {
    let value = serde_json::to_value(s).expect("settings serialize");
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, Option<String>)>) {
    use serde_json::Value;
    let join = |key: &str| {
        if prefix.is_empty() {
            super::key_segment(key)
        } else {
            format!("{prefix}.{}", super::key_segment(key))
        }
    };
    match value {
        Value::Object(map) if map.is_empty() => out.push((prefix.to_string(), Some("{}".into()))),
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(&join(key), inner, out);
            }
        }
        // A list of tables ([[window]]) is shown entry by entry.
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{}]", i + 1), item, out);
            }
        }
        Value::Null => out.push((prefix.to_string(), None)),
        // JSON's strings, numbers, booleans and arrays of them are TOML too.
        other => out.push((prefix.to_string(), Some(other.to_string()))),
    }
}
