//! The opt-in Prometheus textfile for node_exporter's textfile collector,
//! written atomically after each run so the collector never reads half a file.

use super::report::Report;
use crate::checks::Status;

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

/// The textfile for a run: each check's status, the run's time, the last
/// report SSM accepted, and the next window.
/// `updaters_held`: with `remediate.hold_updaters`, whether a hold is in
/// force now (`None`: the setting is off, no gauge).
pub fn render(
    report: &Report,
    last_delivered_at: Option<&str>,
    updaters_held: Option<bool>,
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
        updaters_held.map(|h| if h { 1.0 } else { 0.0 }),
    );
    out
}

pub fn write(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    super::state::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Group, Severity};
    use crate::host::mode::Mode;
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
        let host = HostSummary {
            mode: Mode::Local,
            instance_id: None,
            region: None,
            patch_group: None,
            os: None,
        };
        let mut report = Report::new(
            host,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
            Default::default(),
            vec![check],
        );
        report.next_window = Some("2027-01-17T02:00:00Z".into());
        let text = render(&report, None, None);
        assert!(!text.contains("updaters_held"));
        assert!(render(&report, None, Some(true)).contains("\nssm_preflight_updaters_held 1\n"));
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
