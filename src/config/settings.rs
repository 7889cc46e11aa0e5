//! Validated settings with real types, one struct per section of the file,
//! and the built-in defaults. They serialize back into the file's own keys,
//! which is what `config show` prints: a key added here is shown there.

use super::raw::{ModeSetting, RawConfig, RawThresholds};
use super::schedule::Schedule;
use super::units::{serialize_duration, serialize_durations, Amount, ByteAmount, CountAmount};
use super::{selector, ConfigError, Origin};
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
            agent: AgentSettings::default(),
            aws: AwsSettings::default(),
            endpoints: EndpointSettings::default(),
            repos: ReposSettings {
                timeout: Duration::from_secs(5),
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

fn overlay(base: Thresholds, raw: &RawThresholds) -> Thresholds {
    Thresholds {
        warn_below: raw.warn_below.unwrap_or(base.warn_below),
        fail_below: raw.fail_below.unwrap_or(base.fail_below),
        inodes_warn_below: raw.inodes_warn_below.unwrap_or(base.inodes_warn_below),
        inodes_fail_below: raw.inodes_fail_below.unwrap_or(base.inodes_fail_below),
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Every duration has a sane range: a value past it is a typo ("10000y"), and
/// time arithmetic on it could overflow.
fn in_range(
    origins: &BTreeMap<String, Origin>,
    key: &str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            origins,
            key,
            format!(
                "`{key}` is {}; write a duration from \"{}\" to \"{}\"",
                humantime::format_duration(value),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(value)
}

/// A list of selectors, each written as one can be.
fn selectors(
    origins: &BTreeMap<String, Origin>,
    key: &str,
    list: Vec<String>,
) -> Result<Vec<String>, ConfigError> {
    if let Some(bad) = list.iter().find(|s| !selector::well_formed(s)) {
        return Err(invalid(
            origins,
            key,
            format!("`{key}` names `{bad}`, which is not a check name; write check IDs (\"pkg.lock\", \"endpoint.s3\"), families (\"disk\") or groups (\"host\")"),
        ));
    }
    Ok(list)
}

impl Settings {
    /// Applies a merged config over the defaults and checks what serde cannot.
    pub fn from_raw(
        raw: RawConfig,
        origins: &BTreeMap<String, Origin>,
    ) -> Result<Self, ConfigError> {
        let mut s = Settings::default();
        if let Some(mode) = raw.mode {
            s.mode = mode;
        }
        if let Some(checks) = raw.checks {
            if let Some(t) = checks.timeout {
                s.checks.timeout = in_range(
                    origins,
                    "checks.timeout",
                    t.0,
                    100 * Duration::from_millis(1),
                    10 * MINUTE,
                )?;
            }
            if let Some(disabled) = checks.disable {
                s.checks.disable = selectors(origins, "checks.disable", disabled)?;
            }
        }
        if let Some(lock) = raw.pkg_lock {
            if let Some(t) = lock.stuck_after {
                s.pkg_lock.stuck_after =
                    in_range(origins, "pkg_lock.stuck_after", t.0, MINUTE, 7 * DAY)?;
            }
        }
        if let Some(agent) = raw.agent {
            if let Some(v) = agent.min_version {
                let well_formed = !v.is_empty()
                    && v.split('.')
                        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
                if !well_formed {
                    return Err(invalid(origins, "agent.min_version", format!("`agent.min_version` is `{v}`; write a dotted version such as \"3.0.502\"")));
                }
                s.agent.min_version = v;
            }
            if let Some(t) = agent.flapping_window {
                s.agent.flapping_window =
                    in_range(origins, "agent.flapping_window", t.0, MINUTE, 7 * DAY)?;
            }
            if let Some(t) = agent.log_stale_after {
                s.agent.log_stale_after =
                    in_range(origins, "agent.log_stale_after", t.0, MINUTE, 90 * DAY)?;
            }
            if let Some(t) = agent.log_error_window {
                s.agent.log_error_window =
                    in_range(origins, "agent.log_error_window", t.0, MINUTE, 90 * DAY)?;
            }
        }
        if let Some(aws) = raw.aws {
            if let Some(region) = aws.region {
                let ok = !region.is_empty()
                    && region
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !ok {
                    return Err(invalid(
                        origins,
                        "aws.region",
                        format!(
                            "`aws.region` is `{region}`; write a region code such as \"eu-west-1\""
                        ),
                    ));
                }
                s.aws.region = Some(region);
            }
            if let Some(url) = aws.imds_endpoint {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(origins, "aws.imds_endpoint", format!("`aws.imds_endpoint` is `{url}`; write a URL such as \"http://169.254.169.254\"")));
                }
                s.aws.imds_endpoint = Some(url);
            }
            if let Some(f) = aws.credentials_file {
                s.aws.credentials_file = f;
            }
            if let Some(p) = aws.profile {
                s.aws.profile = p;
            }
            if let Some(t) = aws.attempt_timeout {
                s.aws.attempt_timeout =
                    in_range(origins, "aws.attempt_timeout", t.0, SECOND, 5 * MINUTE)?;
            }
            if let Some(t) = aws.operation_timeout {
                s.aws.operation_timeout =
                    in_range(origins, "aws.operation_timeout", t.0, SECOND, 15 * MINUTE)?;
            }
            if s.aws.operation_timeout < s.aws.attempt_timeout {
                return Err(invalid(origins, "aws.operation_timeout", format!("`aws.operation_timeout` ({}) is shorter than `aws.attempt_timeout` ({}), so no attempt could finish; make it at least as long", humantime::format_duration(s.aws.operation_timeout), humantime::format_duration(s.aws.attempt_timeout))));
            }
        }
        if let Some(ep) = raw.endpoints {
            if let Some(t) = ep.timeout {
                s.endpoints.timeout = in_range(
                    origins,
                    "endpoints.timeout",
                    t.0,
                    100 * Duration::from_millis(1),
                    5 * MINUTE,
                )?;
            }
            if let Some(extra) = ep.extra {
                for service in &extra {
                    let ok = !service.is_empty()
                        && service
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                    if !ok {
                        return Err(invalid(origins, "endpoints.extra", format!("`endpoints.extra` names `{service}`; write service names as in their endpoints, such as \"kms\", \"logs\" or \"sts\"")));
                    }
                }
                s.endpoints.extra = extra;
            }
            if let Some(bundle) = ep.ca_bundle {
                s.endpoints.ca_bundle = Some(bundle.into());
            }
            for (service, url) in ep.urls.unwrap_or_default() {
                let key = format!("endpoints.urls.{}", super::key_segment(&service));
                if let Err(why) = super::url::split_url(&url) {
                    return Err(invalid(origins, &key, format!("`{key}`: {why}; write it like \"https://vpce-0123.ssm.eu-west-1.vpce.amazonaws.com\"")));
                }
                s.endpoints.urls.insert(service, url);
            }
        }
        if let Some(repos) = raw.repos {
            if let Some(t) = repos.timeout {
                s.repos.timeout = in_range(
                    origins,
                    "repos.timeout",
                    t.0,
                    100 * Duration::from_millis(1),
                    5 * MINUTE,
                )?;
            }
        }
        if let Some(pg) = raw.patch_group {
            if let Some(v) = pg.value {
                if v.trim().is_empty() {
                    return Err(invalid(
                        origins,
                        "patch_group.value",
                        "`patch_group.value` is empty; write the group's name, or remove the key"
                            .into(),
                    ));
                }
                s.patch_group.value = Some(v);
            }
        }
        if let Some(daemon) = raw.daemon {
            if let Some(i) = daemon.interval {
                s.daemon.interval = in_range(origins, "daemon.interval", i.0, MINUTE, 7 * DAY)?;
            }
            if let Some(leads) = daemon.lead_times {
                if leads.len() > 10 {
                    return Err(invalid(
                        origins,
                        "daemon.lead_times",
                        format!(
                            "`daemon.lead_times` lists {} lead times; write at most 10",
                            leads.len()
                        ),
                    ));
                }
                s.daemon.lead_times = leads
                    .into_iter()
                    .map(|d| in_range(origins, "daemon.lead_times", d.0, MINUTE, 7 * DAY))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(c) = daemon.schedule_cache {
                s.daemon.schedule_cache =
                    in_range(origins, "daemon.schedule_cache", c.0, MINUTE, 7 * DAY)?;
            }
        }
        if let Some(metrics) = raw.metrics {
            if let Some(path) = metrics.textfile {
                if !path.starts_with('/') || !path.ends_with(".prom") {
                    return Err(invalid(origins, "metrics.textfile", format!("`metrics.textfile` is `{path}`; write an absolute path ending in .prom, such as \"/var/lib/node_exporter/textfile_collector/ssm_preflight.prom\"")));
                }
                s.metrics.textfile = Some(path.into());
            }
        }
        for (i, w) in raw.window.unwrap_or_default().into_iter().enumerate() {
            let key = "window";
            let at = |field: &str| format!("[[window]] number {} (`{}`), `{field}`", i + 1, w.name);
            let schedule = Schedule::parse(&w.schedule)
                .map_err(|e| invalid(origins, key, format!("{}: {e}", at("schedule"))))?;
            let timezone = w.timezone.unwrap_or_else(|| "UTC".into());
            if jiff::tz::TimeZone::get(&timezone).is_err() {
                return Err(invalid(origins, key, format!("{}: `{timezone}` is not an IANA time zone; write one such as \"Europe/Paris\" or \"UTC\"", at("timezone"))));
            }
            let offset_days = w.offset_days.unwrap_or(0);
            if offset_days != 0 && (!schedule.is_cron() || !(1..=6).contains(&offset_days)) {
                return Err(invalid(origins, key, format!("{}: an offset is 1 to 6 days after a cron() date, as ScheduleOffset allows", at("offset_days"))));
            }
            let duration = w.duration.map(|d| d.0).unwrap_or(4 * HOUR);
            if !(HOUR..=DAY).contains(&duration) {
                return Err(invalid(
                    origins,
                    key,
                    format!(
                        "{}: a maintenance window lasts 1 to 24 hours",
                        at("duration")
                    ),
                ));
            }
            s.window.push(WindowSettings {
                name: w.name,
                schedule,
                timezone,
                offset_days,
                duration,
            });
        }
        if let Some(report) = raw.report {
            if let Some(j) = report.jitter {
                s.report.jitter = in_range(origins, "report.jitter", j.0, Duration::ZERO, HOUR)?;
            }
        }
        if let Some(r) = raw.remediate {
            if let Some(b) = r.hold_updaters {
                s.remediate.hold_updaters = b;
            }
            if let Some(d) = r.hold_before {
                s.remediate.hold_before = in_range(
                    origins,
                    "remediate.hold_before",
                    d.0,
                    Duration::ZERO,
                    24 * HOUR,
                )?;
            }
            if let Some(d) = r.hold_max {
                s.remediate.hold_max = in_range(
                    origins,
                    "remediate.hold_max",
                    d.0,
                    Duration::from_secs(1),
                    24 * HOUR,
                )?;
            }
            if let Some(b) = r.clean_package_cache {
                s.remediate.clean_package_cache = b;
            }
            if let Some(d) = r.updater_wait {
                s.remediate.updater_wait =
                    in_range(origins, "remediate.updater_wait", d.0, Duration::ZERO, HOUR)?;
            }
        }
        if let Some(gate) = raw.gate {
            if let Some(checks) = gate.checks {
                s.gate.checks = selectors(origins, "gate.checks", checks)?;
            }
            if let Some(b) = gate.block_on_warn {
                s.gate.block_on_warn = b;
            }
            if let Some(b) = gate.block_on_error {
                s.gate.block_on_error = b;
            }
            if let Some(w) = gate.lock_wait {
                s.gate.lock_wait =
                    in_range(origins, "gate.lock_wait", w.0, Duration::ZERO, 30 * MINUTE)?;
            }
        }
        if let Some(disk) = raw.disk {
            s.disk.defaults = overlay(DEFAULT_THRESHOLDS, &disk.thresholds());
            check_order(origins, "disk", &s.disk.defaults)?;
            for (path, raw_path) in disk.paths.unwrap_or_default() {
                let key = format!("disk.paths.{}", super::key_segment(&path));
                if !path.starts_with('/') {
                    return Err(invalid(origins, &key, format!("`{key}`: `{path}` is not an absolute path; write it from the root, such as \"/data\"")));
                }
                let base = builtin_path_thresholds()
                    .get(&path)
                    .copied()
                    .unwrap_or(s.disk.defaults);
                let t = overlay(base, &raw_path);
                check_order(origins, &key, &t)?;
                s.disk.paths.insert(path.clone(), t);
                s.disk.configured.push(path);
            }
        }
        Ok(s)
    }
}

/// `fail_below` must not be above `warn_below`, or the warning could never show.
fn check_order(
    origins: &BTreeMap<String, Origin>,
    table: &str,
    t: &Thresholds,
) -> Result<(), ConfigError> {
    let pairs = [
        ("warn_below", t.warn_below.0, "fail_below", t.fail_below.0),
        (
            "inodes_warn_below",
            t.inodes_warn_below.0,
            "inodes_fail_below",
            t.inodes_fail_below.0,
        ),
    ];
    for (warn_key, warn, fail_key, fail) in pairs {
        let inverted = match (warn, fail) {
            (Amount::Absolute(w), Amount::Absolute(f)) => f > w,
            (Amount::Percent(w), Amount::Percent(f)) => f > w,
            _ => false, // a size against a percentage depends on the filesystem
        };
        if inverted {
            let key = format!("{table}.{fail_key}");
            let key = if origins.contains_key(&key) {
                key
            } else {
                format!("{table}.{warn_key}")
            };
            return Err(invalid(
                origins,
                &key,
                format!("in [{table}], {fail_key} is above {warn_key}, so the warning could never show; make {fail_key} the smaller of the two"),
            ));
        }
    }
    Ok(())
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
