//! The opt-in Prometheus textfile for node_exporter's textfile collector,
//! written atomically after each run so the collector never reads half a file.

use crate::checks::Status;
use crate::run::report::Report;

fn status_value(s: Status) -> u8 {
    s.rank()
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(rfc3339: &str) -> Option<f64> {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// What the opt-in remediation did, for its gauges (none when off).
#[derive(Debug, Default)]
pub struct Remediation<'a> {
    /// With `remediate.hold_updaters`: whether a hold is in force now.
    pub updaters_held: Option<bool>,
    /// With `remediate.clean_package_cache`: the last clean or refusal.
    pub cleaned: Option<&'a crate::run::state::Cleaned>,
}

/// The textfile for a run: each check's status, the run's time, the last
/// report SSM accepted, the next window, and what the remediation did.
pub fn render(
    report: &Report,
    last_delivered_at: Option<&str>,
    remediation: &Remediation,
) -> String {
    let mut out = String::new();
    out.push_str("# HELP ssm_preflight_check_status Result of each check: 0 pass, 1 skip, 2 warn, 3 error (could not look), 4 fail.\n");
    out.push_str("# TYPE ssm_preflight_check_status gauge\n");
    for c in &report.checks {
        out.push_str(&format!(
            "ssm_preflight_check_status{{check=\"{}\",group=\"{}\"}} {}\n",
            escape(&c.id),
            c.group.as_str(),
            status_value(c.status)
        ));
    }
    let mut gauge = |name: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            ));
        }
    };
    gauge(
        "ssm_preflight_last_run_timestamp_seconds",
        "When the last run started.",
        seconds(&report.started_at),
    );
    gauge(
        "ssm_preflight_last_report_success_timestamp_seconds",
        "When a report last reached SSM.",
        last_delivered_at.and_then(seconds),
    );
    gauge(
        "ssm_preflight_next_window_timestamp_seconds",
        "When the next maintenance window opens.",
        report.next_window.as_deref().and_then(seconds),
    );
    gauge(
        "ssm_preflight_updaters_held",
        "1 while the host's updaters are held off a maintenance window (remediate.hold_updaters), else 0.",
        remediation.updaters_held.map(|h| if h { 1.0 } else { 0.0 }),
    );
    let cleaned = remediation.cleaned;
    gauge(
        "ssm_preflight_package_cache_clean_timestamp_seconds",
        "When the daemon last cleaned the package cache, or refused to (remediate.clean_package_cache).",
        cleaned.and_then(|c| seconds(&c.at)),
    );
    gauge(
        "ssm_preflight_package_cache_clean_success",
        "1 when that clean ran and succeeded, 0 when it was refused (a lock held) or failed.",
        cleaned.map(|c| {
            if c.command.is_some() && c.error.is_none() {
                1.0
            } else {
                0.0
            }
        }),
    );
    gauge(
        "ssm_preflight_package_cache_freed_bytes",
        "Bytes that clean freed on the cache's filesystem.",
        cleaned.and_then(|c| c.freed_bytes).map(|b| b as f64),
    );
    out
}

pub fn write(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    crate::run::state::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Group, Severity};
    use crate::run::report::HostSummary;

    #[test]
    fn a_run_as_a_textfile() {
        let check = CheckResult {
            id: "disk.var".into(),
            group: Group::Host,
            title: "t".into(),
            status: Status::Fail,
            severity: Severity::Critical,
            summary: "s".into(),
            remedy: None,
            details: Default::default(),
            duration_ms: 0,
        };
        let host = HostSummary::local();
        let mut report = Report::new(
            host,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
            Default::default(),
            vec![check],
        );
        report.next_window = Some("2027-01-17T02:00:00Z".into());
        let text = render(&report, None, &Remediation::default());
        assert!(!text.contains("updaters_held") && !text.contains("package_cache"));
        let cleaned = crate::run::state::Cleaned {
            at: "2026-12-20T01:50:00Z".into(),
            check: "disk.var".into(),
            command: Some("apt-get clean".into()),
            freed_bytes: Some(851_443_712),
            status_after: Some("pass".into()),
            error: None,
        };
        let with = render(
            &report,
            None,
            &Remediation {
                updaters_held: Some(true),
                cleaned: Some(&cleaned),
            },
        );
        assert!(with.contains("\nssm_preflight_updaters_held 1\n"), "{with}");
        assert!(
            with.contains("\nssm_preflight_package_cache_clean_success 1\n"),
            "{with}"
        );
        assert!(
            with.contains("\nssm_preflight_package_cache_freed_bytes 851443712\n"),
            "{with}"
        );
        assert!(
            text.contains("ssm_preflight_check_status{check=\"disk.var\",group=\"host\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("ssm_preflight_last_run_timestamp_seconds 1800000000\n"));
        assert!(
            text.contains("ssm_preflight_next_window_timestamp_seconds 1800151200\n"),
            "{text}"
        );
        assert!(!text.contains("last_report_success"));
    }
}
