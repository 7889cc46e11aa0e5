//! A run as SSM custom compliance (docs/reporting.md): type
//! `Custom:PatchPreflight`, one item per check, `fail` and `error` ⇒
//! NON_COMPLIANT (an error is "could not look", which must not read as
//! compliant in the Compliance console),
//! uploaded as COMPLETE (a custom type must send the whole list every
//! time). Every documented limit is applied here, before sending, so SSM
//! never rejects a report for its size.

pub use crate::aws::compliance::{
    Item, Upload, COMPLIANCE_TYPE, EXECUTION_TYPE, GATE_BLOCKS, GATE_DETAIL, GATE_PASSES,
    RESOURCE_TYPE,
};

use super::Report;
use crate::checks::{Severity, Status};
use crate::config::GateSettings;
use std::collections::BTreeMap;

/// PutComplianceItems limits (API reference).
pub const MAX_ITEMS: usize = 10_000;
pub const MAX_ITEM_ID: usize = 100;
pub const MAX_TITLE: usize = 500;
pub const MAX_DETAIL_KEY: usize = 64;
pub const MAX_DETAIL_VALUE: usize = 4096;
pub const MAX_EXECUTION_ID: usize = 100;

const MARKER: &str = "…[truncated]";

/// Cuts `text` to `max` characters, ending with a marker when cut.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(MARKER.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(MARKER);
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
        Severity::Informational => "INFORMATIONAL",
    }
}

/// The upload for a run of this node. Each item says whether this node's
/// own gate settings block on it (`Gate` = `blocks` or `no`), so
/// `ssm-preflight fleet` tells a blocked node from one with a failure its
/// gate ignores.
pub fn upload(report: &Report, gate: &GateSettings, resource_id: &str, run_id: &str) -> Upload {
    let patch_group = report.host.patch_group.clone().unwrap_or_default();
    let blocking: Vec<&str> = super::gate::blocking(report, gate)
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    let items = report
        .checks
        .iter()
        .take(MAX_ITEMS)
        .map(|c| {
            let mut details = BTreeMap::new();
            let mut put = |k: &str, v: &str| {
                details.insert(fit(k, MAX_DETAIL_KEY), fit(v, MAX_DETAIL_VALUE));
            };
            put("Status", c.status.as_str());
            put("Summary", &c.summary);
            put("Remedy", c.remedy.as_deref().unwrap_or(""));
            put("PatchGroup", &patch_group);
            put("NextWindow", report.next_window.as_deref().unwrap_or(""));
            put("Version", &report.version);
            let gate = if blocking.contains(&c.id.as_str()) {
                GATE_BLOCKS
            } else {
                GATE_PASSES
            };
            put(GATE_DETAIL, gate);
            Item {
                id: fit(&c.id, MAX_ITEM_ID),
                title: fit(&c.title, MAX_TITLE),
                severity: severity(c.severity),
                status: match c.status {
                    Status::Fail | Status::Error => "NON_COMPLIANT",
                    Status::Pass | Status::Warn | Status::Skip => "COMPLIANT",
                },
                details,
            }
        })
        .collect();
    Upload {
        resource_id: resource_id.to_string(),
        execution_time: report.started_at.clone(),
        execution_id: fit(run_id, MAX_EXECUTION_ID),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Group};
    use crate::host::mode::Mode;
    use crate::run::report::HostSummary;

    fn report(summary: &str, status: Status) -> Report {
        let check = CheckResult {
            id: "disk.var".into(),
            group: Group::Host,
            title: "Free disk space and inodes".into(),
            status,
            severity: Severity::Critical,
            summary: summary.into(),
            remedy: Some("clean".into()),
            details: BTreeMap::new(),
            duration_ms: 1,
        };
        let host = HostSummary {
            mode: Mode::Ec2,
            instance_id: Some("i-1".into()),
            region: None,
            patch_group: Some("prod".into()),
            os: None,
        };
        Report::new(
            host,
            std::time::UNIX_EPOCH,
            std::time::Duration::ZERO,
            vec![check],
        )
    }

    /// The upload with the default gate, for node i-1.
    fn upload_default(report: &Report) -> Upload {
        upload(report, &GateSettings::default(), "i-1", "run-1")
    }

    #[test]
    fn one_item_per_check_with_details() {
        let u = upload_default(&report("/var has 1 GiB free", Status::Fail));
        assert_eq!(u.items.len(), 1);
        let item = &u.items[0];
        assert_eq!(
            (item.id.as_str(), item.status, item.severity),
            ("disk.var", "NON_COMPLIANT", "CRITICAL")
        );
        assert_eq!(item.details["Status"], "fail");
        assert_eq!(item.details["PatchGroup"], "prod");
        assert_eq!(item.details["Version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(u.execution_time, "1970-01-01T00:00:00Z");
        assert_eq!(item.details[GATE_DETAIL], GATE_BLOCKS);
        let warn = upload_default(&report("x", Status::Warn));
        assert_eq!(warn.items[0].status, "COMPLIANT");
        assert_eq!(warn.items[0].details[GATE_DETAIL], GATE_PASSES);
        // A failure the gate ignores (gate.checks names others) is not marked.
        let narrow = GateSettings {
            checks: vec!["pkg.lock".into()],
            ..GateSettings::default()
        };
        let ignored = upload(&report("x", Status::Fail), &narrow, "i-1", "run-1");
        assert_eq!(ignored.items[0].status, "NON_COMPLIANT");
        assert_eq!(ignored.items[0].details[GATE_DETAIL], GATE_PASSES);
    }

    #[test]
    fn a_check_that_could_not_look_is_not_compliant() {
        // Issue #17 item 8: an error must not read as compliant in SSM.
        let u = upload_default(&report("cannot read /proc/locks", Status::Error));
        let item = &u.items[0];
        assert_eq!((item.status, item.severity), ("NON_COMPLIANT", "CRITICAL"));
        assert_eq!(item.details["Status"], "error");
        // The default gate blocks on an error: the fleet view reads this.
        assert_eq!(item.details[GATE_DETAIL], GATE_BLOCKS);
        let skip = upload_default(&report("local mode", Status::Skip));
        assert_eq!(skip.items[0].status, "COMPLIANT");
    }

    #[test]
    fn oversized_values_are_cut_with_a_marker() {
        let long = "x".repeat(10_000);
        let u = upload(
            &report(&long, Status::Pass),
            &GateSettings::default(),
            "i-1",
            &"r".repeat(300),
        );
        let summary = &u.items[0].details["Summary"];
        assert_eq!(summary.chars().count(), MAX_DETAIL_VALUE);
        assert!(summary.ends_with("…[truncated]"));
        assert_eq!(u.execution_id.chars().count(), MAX_EXECUTION_ID);
        assert_eq!(fit("short", 10), "short");
    }
}
