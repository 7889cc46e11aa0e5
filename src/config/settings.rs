//! Validated settings with real types, and the built-in defaults.

use super::raw::{ModeSetting, RawConfig, RawThresholds};
use super::units::{Amount, ByteAmount, CountAmount};
use super::{ConfigError, Origin};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub mode: ModeSetting,
    /// How long one check may take before it is reported as `error`.
    pub check_timeout: Duration,
    /// Check IDs, families (`disk`) or groups (`host`) not to run.
    pub disabled: Vec<String>,
    pub disk: DiskSettings,
    /// A package-manager lock held longer than this is a failure, not a wait.
    pub lock_stuck_after: Duration,
    pub agent: AgentSettings,
    pub aws: AwsSettings,
    pub endpoints: EndpointSettings,
    /// How long one repository's index may take to answer.
    pub repo_timeout: Duration,
    /// A Patch Group set by hand: it wins over every tag.
    pub patch_group: Option<String>,
    /// The daemon's reports start up to this long after a run is due, so a
    /// fleet with one window does not call SSM in the same second.
    pub report_jitter: Duration,
    pub gate: crate::gate::GateSettings,
    pub daemon: DaemonSettings,
    /// A Prometheus textfile to write after each run (node_exporter's textfile collector).
    pub metrics_textfile: Option<std::path::PathBuf>,
    /// Maintenance windows known from the config, beside SSM's.
    pub windows: Vec<WindowSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// A baseline run this often (jittered by up to a tenth), between windows.
    pub interval: Duration,
    /// Runs this long before each window opens.
    pub lead_times: Vec<Duration>,
    /// How long SSM's window schedule is trusted before it is asked again.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSettings {
    pub name: String,
    pub schedule: crate::schedule::Schedule,
    /// An IANA name, checked to exist.
    pub timezone: String,
    pub offset_days: i64,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsSettings {
    /// The region, when the identity cannot tell it (or must be overridden).
    pub region: Option<String>,
    /// The IMDS base URL; else `AWS_EC2_METADATA_SERVICE_ENDPOINT` or 169.254.169.254.
    pub imds_endpoint: Option<String>,
    /// Where a hybrid node's agent keeps its credentials.
    pub credentials_file: String,
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSettings {
    /// Per endpoint, DNS to HTTP answer.
    pub timeout: Duration,
    /// Services probed besides ssm, ssmmessages, ec2messages and s3.
    pub extra: Vec<String>,
    /// A PEM bundle trusted besides the system's roots.
    pub ca_bundle: Option<std::path::PathBuf>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// Oldest agent that runs `AWS-RunPatchBaselineWithHooks`.
    pub min_version: String,
    /// Restarts while the unit came up within this long ago count as flapping.
    pub flapping_window: Duration,
    /// A log not written for this long means the agent is not doing anything.
    pub log_stale_after: Duration,
    /// ERROR lines this recent are reported.
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warn_below: ByteAmount,
    pub fail_below: ByteAmount,
    pub inodes_warn_below: CountAmount,
    pub inodes_fail_below: CountAmount,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskSettings {
    /// Thresholds for every checked path without its own.
    pub defaults: Thresholds,
    /// Paths with thresholds of their own: built-in ones and configured ones.
    pub paths: BTreeMap<String, Thresholds>,
    /// Paths added in `[disk.paths]` (checked even if not a default path).
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
            check_timeout: Duration::from_secs(5),
            disabled: Vec::new(),
            disk: DiskSettings {
                defaults: DEFAULT_THRESHOLDS,
                paths: builtin_path_thresholds(),
                configured: Vec::new(),
            },
            lock_stuck_after: Duration::from_secs(30 * 60),
            agent: AgentSettings::default(),
            aws: AwsSettings {
                credentials_file: "/root/.aws/credentials".into(),
                profile: "default".into(),
                ..Default::default()
            },
            endpoints: EndpointSettings::default(),
            repo_timeout: Duration::from_secs(5),
            patch_group: None,
            report_jitter: Duration::from_secs(5 * 60),
            gate: crate::gate::GateSettings::default(),
            daemon: DaemonSettings::default(),
            metrics_textfile: None,
            windows: Vec::new(),
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
                if t.0.is_zero() {
                    return Err(invalid(origins, "checks.timeout", "`checks.timeout` must be longer than zero; write a duration such as \"5s\"".into()));
                }
                s.check_timeout = t.0;
            }
            if let Some(disabled) = checks.disable {
                for name in &disabled {
                    if !crate::checks::is_known_selector(name) {
                        return Err(invalid(
                            origins,
                            "checks.disable",
                            format!(
                                "`checks.disable` names `{name}`, which is no check; write check IDs, families or groups from: {}",
                                crate::checks::known_selectors().join(", ")
                            ),
                        ));
                    }
                }
                s.disabled = disabled;
            }
        }
        if let Some(lock) = raw.pkg_lock {
            if let Some(t) = lock.stuck_after {
                s.lock_stuck_after = t.0;
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
                s.agent.flapping_window = t.0;
            }
            if let Some(t) = agent.log_stale_after {
                s.agent.log_stale_after = t.0;
            }
            if let Some(t) = agent.log_error_window {
                s.agent.log_error_window = t.0;
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
        }
        if let Some(ep) = raw.endpoints {
            if let Some(t) = ep.timeout {
                if t.0.is_zero() {
                    return Err(invalid(origins, "endpoints.timeout", "`endpoints.timeout` must be longer than zero; write a duration such as \"3s\"".into()));
                }
                s.endpoints.timeout = t.0;
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
                if let Err(why) = crate::aws::endpoints::split_url(&url) {
                    return Err(invalid(origins, &key, format!("`{key}`: {why}; write it like \"https://vpce-0123.ssm.eu-west-1.vpce.amazonaws.com\"")));
                }
                s.endpoints.urls.insert(service, url);
            }
        }
        if let Some(repos) = raw.repos {
            if let Some(t) = repos.timeout {
                s.repo_timeout = t.0;
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
                s.patch_group = Some(v);
            }
        }
        if let Some(daemon) = raw.daemon {
            if let Some(i) = daemon.interval {
                if i.0 < Duration::from_secs(60) {
                    return Err(invalid(origins, "daemon.interval", format!("`daemon.interval` is {i}; write at least \"1m\" (the default is \"6h\")")));
                }
                s.daemon.interval = i.0;
            }
            if let Some(leads) = daemon.lead_times {
                s.daemon.lead_times = leads.into_iter().map(|d| d.0).collect();
            }
            if let Some(c) = daemon.schedule_cache {
                s.daemon.schedule_cache = c.0;
            }
        }
        if let Some(metrics) = raw.metrics {
            if let Some(path) = metrics.textfile {
                if !path.starts_with('/') || !path.ends_with(".prom") {
                    return Err(invalid(origins, "metrics.textfile", format!("`metrics.textfile` is `{path}`; write an absolute path ending in .prom, such as \"/var/lib/node_exporter/textfile_collector/ssm_preflight.prom\"")));
                }
                s.metrics_textfile = Some(path.into());
            }
        }
        for (i, w) in raw.window.unwrap_or_default().into_iter().enumerate() {
            let key = "window";
            let at = |field: &str| format!("[[window]] number {} (`{}`), `{field}`", i + 1, w.name);
            let schedule = crate::schedule::Schedule::parse(&w.schedule)
                .map_err(|e| invalid(origins, key, format!("{}: {e}", at("schedule"))))?;
            let timezone = w.timezone.unwrap_or_else(|| "UTC".into());
            if jiff::tz::TimeZone::get(&timezone).is_err() {
                return Err(invalid(origins, key, format!("{}: `{timezone}` is not an IANA time zone; write one such as \"Europe/Paris\" or \"UTC\"", at("timezone"))));
            }
            let offset_days = w.offset_days.unwrap_or(0);
            if offset_days != 0 && (!schedule.is_cron() || !(1..=6).contains(&offset_days)) {
                return Err(invalid(origins, key, format!("{}: an offset is 1 to 6 days after a cron() date, as ScheduleOffset allows", at("offset_days"))));
            }
            let duration = w
                .duration
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(4 * 3600));
            if duration < Duration::from_secs(3600) || duration > Duration::from_secs(24 * 3600) {
                return Err(invalid(
                    origins,
                    key,
                    format!(
                        "{}: a maintenance window lasts 1 to 24 hours",
                        at("duration")
                    ),
                ));
            }
            s.windows.push(WindowSettings {
                name: w.name,
                schedule,
                timezone,
                offset_days,
                duration,
            });
        }
        if let Some(report) = raw.report {
            if let Some(j) = report.jitter {
                s.report_jitter = j.0;
            }
        }
        if let Some(gate) = raw.gate {
            if let Some(checks) = gate.checks {
                for name in &checks {
                    if !crate::checks::is_known_selector(name) {
                        return Err(invalid(
                            origins,
                            "gate.checks",
                            format!(
                                "`gate.checks` names `{name}`, which is no check; write check IDs, families or groups from: {}",
                                crate::checks::known_selectors().join(", ")
                            ),
                        ));
                    }
                }
                s.gate.checks = checks;
            }
            if let Some(b) = gate.block_on_warn {
                s.gate.block_on_warn = b;
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

fn invalid(origins: &BTreeMap<String, Origin>, key: &str, message: String) -> ConfigError {
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

/// The effective settings as (dotted key, TOML value) pairs, for `config show`.
pub fn effective_values(s: &Settings) -> Vec<(String, String)> {
    let mut out = vec![
        ("mode".to_string(), format!("{:?}", s.mode.as_str())),
        (
            "checks.timeout".to_string(),
            format!("\"{}\"", humantime::format_duration(s.check_timeout)),
        ),
        ("checks.disable".to_string(), format!("{:?}", s.disabled)),
    ];
    let push_thresholds = |out: &mut Vec<(String, String)>, prefix: &str, t: &Thresholds| {
        out.push((
            format!("{prefix}.warn_below"),
            format!("\"{}\"", t.warn_below),
        ));
        out.push((
            format!("{prefix}.fail_below"),
            format!("\"{}\"", t.fail_below),
        ));
        out.push((
            format!("{prefix}.inodes_warn_below"),
            format!("\"{}\"", t.inodes_warn_below),
        ));
        out.push((
            format!("{prefix}.inodes_fail_below"),
            format!("\"{}\"", t.inodes_fail_below),
        ));
    };
    push_thresholds(&mut out, "disk", &s.disk.defaults);
    for (path, t) in &s.disk.paths {
        push_thresholds(
            &mut out,
            &format!("disk.paths.{}", super::key_segment(path)),
            t,
        );
    }
    out.push((
        "pkg_lock.stuck_after".to_string(),
        format!("\"{}\"", humantime::format_duration(s.lock_stuck_after)),
    ));
    let duration = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
    out.push((
        "agent.min_version".to_string(),
        format!("{:?}", s.agent.min_version),
    ));
    out.push((
        "agent.flapping_window".to_string(),
        duration(s.agent.flapping_window),
    ));
    out.push((
        "agent.log_stale_after".to_string(),
        duration(s.agent.log_stale_after),
    ));
    out.push((
        "agent.log_error_window".to_string(),
        duration(s.agent.log_error_window),
    ));
    out
}
