//! The last stage of reading the config: the merged file (`RawConfig`,
//! every key optional) over the built-in defaults, one section at a time,
//! checking what serde cannot — ranges, formats, the order of two floors.
//! Each error names the file and line that set the key, and what to write.

use super::raw::{
    RawAgent, RawAws, RawChecks, RawConfig, RawDaemon, RawDisk, RawEndpoints, RawGate, RawMetrics,
    RawRemediate, RawThresholds, RawWindow,
};
use super::schedule::Schedule;
use super::settings::{
    builtin_path_thresholds, invalid, AgentSettings, AwsSettings, ChecksSettings, DaemonSettings,
    DiskSettings, EndpointSettings, GateSettings, MetricsSettings, RemediateSettings, Settings,
    Thresholds, WindowSettings, DEFAULT_THRESHOLDS,
};
use super::units::Amount;
use super::{selector, ConfigError, Origin};
use std::collections::BTreeMap;
use std::time::Duration;

const MILLI: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Where each key was set, for errors that name the line.
struct Keys<'a>(&'a BTreeMap<String, Origin>);

impl Keys<'_> {
    fn invalid(&self, key: &str, message: String) -> ConfigError {
        invalid(self.0, key, message)
    }

    /// Every duration has a sane range: a value past it is a typo
    /// ("10000y"), and time arithmetic on it could overflow.
    fn duration(
        &self,
        key: &str,
        value: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        if value < min || value > max {
            return Err(self.invalid(
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
    fn selectors(&self, key: &str, list: Vec<String>) -> Result<Vec<String>, ConfigError> {
        if let Some(bad) = list.iter().find(|s| !selector::well_formed(s)) {
            return Err(self.invalid(
                key,
                format!("`{key}` names `{bad}`, which is not a check name; write check IDs (\"pkg.lock\", \"endpoint.s3\"), families (\"disk\") or groups (\"host\")"),
            ));
        }
        Ok(list)
    }

    /// `fail_below` must not be above `warn_below`, or the warning could never show.
    fn floors_in_order(&self, table: &str, t: &Thresholds) -> Result<(), ConfigError> {
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
                let key = if self.0.contains_key(&key) {
                    key
                } else {
                    format!("{table}.{warn_key}")
                };
                return Err(self.invalid(
                    &key,
                    format!("in [{table}], {fail_key} is above {warn_key}, so the warning could never show; make {fail_key} the smaller of the two"),
                ));
            }
        }
        Ok(())
    }
}

/// A name made of lower-case letters, digits and hyphens (a region, a service).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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
        let keys = Keys(origins);
        let mut s = Settings::default();
        if let Some(mode) = raw.mode {
            s.mode = mode;
        }
        section(&keys, raw.checks, &mut s.checks, checks)?;
        if let Some(t) = raw.pkg_lock.and_then(|l| l.stuck_after) {
            s.pkg_lock.stuck_after = keys.duration("pkg_lock.stuck_after", t.0, MINUTE, 7 * DAY)?;
        }
        if let Some(p) = raw.pkg_simulate {
            if let Some(t) = p.timeout {
                s.pkg_simulate.timeout =
                    keys.duration("pkg_simulate.timeout", t.0, SECOND, 30 * MINUTE)?;
            }
            if let Some(t) = p.stale_after {
                s.pkg_simulate.stale_after =
                    keys.duration("pkg_simulate.stale_after", t.0, HOUR, 90 * DAY)?;
            }
        }
        section(&keys, raw.agent, &mut s.agent, agent)?;
        section(&keys, raw.aws, &mut s.aws, aws)?;
        section(&keys, raw.endpoints, &mut s.endpoints, endpoints)?;
        if let Some(r) = raw.repos {
            if let Some(t) = r.timeout {
                s.repos.timeout = keys.duration("repos.timeout", t.0, 100 * MILLI, 5 * MINUTE)?;
            }
            if let Some(t) = r.key_warn_before {
                s.repos.key_warn_before =
                    keys.duration("repos.key_warn_before", t.0, Duration::ZERO, 365 * DAY)?;
            }
        }
        if let Some(v) = raw.patch_group.and_then(|p| p.value) {
            if v.trim().is_empty() {
                let why = "`patch_group.value` is empty; write the group's name, or remove the key";
                return Err(keys.invalid("patch_group.value", why.into()));
            }
            s.patch_group.value = Some(v);
        }
        section(&keys, raw.daemon, &mut s.daemon, daemon)?;
        section(&keys, raw.metrics, &mut s.metrics, metrics)?;
        for (i, w) in raw.window.unwrap_or_default().into_iter().enumerate() {
            s.window.push(window(&keys, i + 1, w)?);
        }
        if let Some(j) = raw.report.and_then(|r| r.jitter) {
            s.report.jitter = keys.duration("report.jitter", j.0, Duration::ZERO, HOUR)?;
        }
        section(&keys, raw.remediate, &mut s.remediate, remediate)?;
        section(&keys, raw.gate, &mut s.gate, gate)?;
        section(&keys, raw.disk, &mut s.disk, disk)?;
        Ok(s)
    }
}

/// One section of the file, when it is there, over its defaults.
fn section<R, S>(
    keys: &Keys,
    raw: Option<R>,
    settings: &mut S,
    apply: fn(&Keys, R, &mut S) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    match raw {
        Some(raw) => apply(keys, raw, settings),
        None => Ok(()),
    }
}

fn checks(keys: &Keys, raw: RawChecks, s: &mut ChecksSettings) -> Result<(), ConfigError> {
    if let Some(t) = raw.timeout {
        s.timeout = keys.duration("checks.timeout", t.0, 100 * MILLI, 10 * MINUTE)?;
    }
    if let Some(disabled) = raw.disable {
        s.disable = keys.selectors("checks.disable", disabled)?;
    }
    Ok(())
}

fn agent(keys: &Keys, raw: RawAgent, s: &mut AgentSettings) -> Result<(), ConfigError> {
    if let Some(v) = raw.min_version {
        let well_formed = !v.is_empty()
            && v.split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
        if !well_formed {
            return Err(keys.invalid(
                "agent.min_version",
                format!("`agent.min_version` is `{v}`; write a dotted version such as \"3.0.502\""),
            ));
        }
        s.min_version = v;
    }
    if let Some(t) = raw.flapping_window {
        s.flapping_window = keys.duration("agent.flapping_window", t.0, MINUTE, 7 * DAY)?;
    }
    if let Some(t) = raw.log_stale_after {
        s.log_stale_after = keys.duration("agent.log_stale_after", t.0, MINUTE, 90 * DAY)?;
    }
    if let Some(t) = raw.log_error_window {
        s.log_error_window = keys.duration("agent.log_error_window", t.0, MINUTE, 90 * DAY)?;
    }
    Ok(())
}

fn aws(keys: &Keys, raw: RawAws, s: &mut AwsSettings) -> Result<(), ConfigError> {
    if let Some(region) = raw.region {
        if !plain_name(&region) {
            return Err(keys.invalid(
                "aws.region",
                format!("`aws.region` is `{region}`; write a region code such as \"eu-west-1\""),
            ));
        }
        s.region = Some(region);
    }
    if let Some(url) = raw.imds_endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(keys.invalid("aws.imds_endpoint", format!("`aws.imds_endpoint` is `{url}`; write a URL such as \"http://169.254.169.254\"")));
        }
        s.imds_endpoint = Some(url);
    }
    if let Some(f) = raw.credentials_file {
        s.credentials_file = f;
    }
    if let Some(p) = raw.profile {
        s.profile = p;
    }
    if let Some(t) = raw.attempt_timeout {
        s.attempt_timeout = keys.duration("aws.attempt_timeout", t.0, SECOND, 5 * MINUTE)?;
    }
    if let Some(t) = raw.operation_timeout {
        s.operation_timeout = keys.duration("aws.operation_timeout", t.0, SECOND, 15 * MINUTE)?;
    }
    if s.operation_timeout < s.attempt_timeout {
        return Err(keys.invalid("aws.operation_timeout", format!("`aws.operation_timeout` ({}) is shorter than `aws.attempt_timeout` ({}), so no attempt could finish; make it at least as long", humantime::format_duration(s.operation_timeout), humantime::format_duration(s.attempt_timeout))));
    }
    Ok(())
}

fn endpoints(keys: &Keys, raw: RawEndpoints, s: &mut EndpointSettings) -> Result<(), ConfigError> {
    if let Some(t) = raw.timeout {
        s.timeout = keys.duration("endpoints.timeout", t.0, 100 * MILLI, 5 * MINUTE)?;
    }
    if let Some(extra) = raw.extra {
        if let Some(bad) = extra.iter().find(|service| !plain_name(service)) {
            return Err(keys.invalid("endpoints.extra", format!("`endpoints.extra` names `{bad}`; write service names as in their endpoints, such as \"kms\", \"logs\" or \"sts\"")));
        }
        s.extra = extra;
    }
    if let Some(bundle) = raw.ca_bundle {
        s.ca_bundle = Some(bundle.into());
    }
    for (service, url) in raw.urls.unwrap_or_default() {
        let key = format!("endpoints.urls.{}", super::key_segment(&service));
        if let Err(why) = super::url::split_url(&url) {
            return Err(keys.invalid(&key, format!("`{key}`: {why}; write it like \"https://vpce-0123.ssm.eu-west-1.vpce.amazonaws.com\"")));
        }
        s.urls.insert(service, url);
    }
    Ok(())
}

fn daemon(keys: &Keys, raw: RawDaemon, s: &mut DaemonSettings) -> Result<(), ConfigError> {
    if let Some(i) = raw.interval {
        s.interval = keys.duration("daemon.interval", i.0, MINUTE, 7 * DAY)?;
    }
    if let Some(leads) = raw.lead_times {
        if leads.len() > 10 {
            let why = format!(
                "`daemon.lead_times` lists {} lead times; write at most 10",
                leads.len()
            );
            return Err(keys.invalid("daemon.lead_times", why));
        }
        s.lead_times = leads
            .into_iter()
            .map(|d| keys.duration("daemon.lead_times", d.0, MINUTE, 7 * DAY))
            .collect::<Result<_, _>>()?;
    }
    if let Some(c) = raw.schedule_cache {
        s.schedule_cache = keys.duration("daemon.schedule_cache", c.0, MINUTE, 7 * DAY)?;
    }
    Ok(())
}

fn metrics(keys: &Keys, raw: RawMetrics, s: &mut MetricsSettings) -> Result<(), ConfigError> {
    if let Some(path) = raw.textfile {
        if !path.starts_with('/') || !path.ends_with(".prom") {
            return Err(keys.invalid("metrics.textfile", format!("`metrics.textfile` is `{path}`; write an absolute path ending in .prom, such as \"/var/lib/node_exporter/textfile_collector/ssm_preflight.prom\"")));
        }
        s.textfile = Some(path.into());
    }
    Ok(())
}

/// The `number`th `[[window]]` entry.
fn window(keys: &Keys, number: usize, w: RawWindow) -> Result<WindowSettings, ConfigError> {
    let at = |field: &str| format!("[[window]] number {number} (`{}`), `{field}`", w.name);
    let wrong = |field: &str, why: String| keys.invalid("window", format!("{}: {why}", at(field)));
    let schedule = Schedule::parse(&w.schedule).map_err(|e| wrong("schedule", e.to_string()))?;
    let timezone = w.timezone.clone().unwrap_or_else(|| "UTC".into());
    if jiff::tz::TimeZone::get(&timezone).is_err() {
        return Err(wrong("timezone", format!("`{timezone}` is not an IANA time zone; write one such as \"Europe/Paris\" or \"UTC\"")));
    }
    let offset_days = w.offset_days.unwrap_or(0);
    if offset_days != 0 && (!schedule.is_cron() || !(1..=6).contains(&offset_days)) {
        return Err(wrong(
            "offset_days",
            "an offset is 1 to 6 days after a cron() date, as ScheduleOffset allows".into(),
        ));
    }
    let duration = w.duration.map(|d| d.0).unwrap_or(4 * HOUR);
    if !(HOUR..=DAY).contains(&duration) {
        return Err(wrong(
            "duration",
            "a maintenance window lasts 1 to 24 hours".into(),
        ));
    }
    Ok(WindowSettings {
        name: w.name,
        schedule,
        timezone,
        offset_days,
        duration,
    })
}

fn remediate(keys: &Keys, raw: RawRemediate, s: &mut RemediateSettings) -> Result<(), ConfigError> {
    if let Some(b) = raw.hold_updaters {
        s.hold_updaters = b;
    }
    if let Some(d) = raw.hold_before {
        s.hold_before = keys.duration("remediate.hold_before", d.0, Duration::ZERO, DAY)?;
    }
    if let Some(d) = raw.hold_max {
        s.hold_max = keys.duration("remediate.hold_max", d.0, SECOND, DAY)?;
    }
    if let Some(b) = raw.clean_package_cache {
        s.clean_package_cache = b;
    }
    if let Some(d) = raw.updater_wait {
        s.updater_wait = keys.duration("remediate.updater_wait", d.0, Duration::ZERO, HOUR)?;
    }
    Ok(())
}

fn gate(keys: &Keys, raw: RawGate, s: &mut GateSettings) -> Result<(), ConfigError> {
    if let Some(checks) = raw.checks {
        s.checks = keys.selectors("gate.checks", checks)?;
    }
    if let Some(b) = raw.block_on_warn {
        s.block_on_warn = b;
    }
    if let Some(b) = raw.block_on_error {
        s.block_on_error = b;
    }
    if let Some(w) = raw.lock_wait {
        s.lock_wait = keys.duration("gate.lock_wait", w.0, Duration::ZERO, 30 * MINUTE)?;
    }
    Ok(())
}

fn disk(keys: &Keys, raw: RawDisk, s: &mut DiskSettings) -> Result<(), ConfigError> {
    s.defaults = overlay(DEFAULT_THRESHOLDS, &raw.thresholds());
    keys.floors_in_order("disk", &s.defaults)?;
    for (path, raw_path) in raw.paths.unwrap_or_default() {
        let key = format!("disk.paths.{}", super::key_segment(&path));
        if !path.starts_with('/') {
            return Err(keys.invalid(&key, format!("`{key}`: `{path}` is not an absolute path; write it from the root, such as \"/data\"")));
        }
        let base = builtin_path_thresholds()
            .get(&path)
            .copied()
            .unwrap_or(s.defaults);
        let t = overlay(base, &raw_path);
        keys.floors_in_order(&key, &t)?;
        s.paths.insert(path.clone(), t);
        s.configured.push(path);
    }
    Ok(())
}
