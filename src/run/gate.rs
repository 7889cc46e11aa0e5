//! `ssm-preflight gate`, the pre-install hook of
//! `AWS-RunPatchBaselineWithHooks`: whether this host must not be patched
//! now. A failing hook makes the run skip install and reboot.

use super::report::Report;
use crate::checks::{selects, CheckResult, Status};
use crate::config::GateSettings;

/// The results that block, in report order.
pub fn blocking<'a>(report: &'a Report, settings: &GateSettings) -> Vec<&'a CheckResult> {
    report
        .checks
        .iter()
        .filter(|c| {
            settings.checks.is_empty() || settings.checks.iter().any(|s| selects(s, &c.id, c.group))
        })
        .filter(|c| match c.status {
            Status::Fail => true,
            Status::Warn => settings.block_on_warn,
            Status::Error => settings.block_on_error,
            Status::Pass | Status::Skip => false,
        })
        .collect()
}

/// What the hook prints (it lands in the Run Command output) and its exit code.
pub fn verdict(report: &Report, settings: &GateSettings, source: &str) -> (String, u8) {
    let blockers = blocking(report, settings);
    if blockers.is_empty() {
        return (
            format!(
                "ssm-preflight: nothing blocks patching ({source}, {} checks, verdict {}).\n",
                report.checks.len(),
                report.verdict.as_str()
            ),
            0,
        );
    }
    let mut out = format!(
        "ssm-preflight: this host must not be patched now: {} blocking problem(s) ({source}).\n",
        blockers.len()
    );
    for c in blockers {
        out.push_str(&format!(
            "  {} {}: {}\n",
            c.status.as_str().to_uppercase(),
            c.id,
            c.summary
        ));
        if let Some(remedy) = &c.remedy {
            out.push_str(&format!("    fix: {remedy}\n"));
        }
    }
    out.push_str("Fix these, then run `ssm-preflight gate` again; the patch run will install on its next attempt.\n");
    (out, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Group, Severity};
    use crate::host::mode::Mode;
    use crate::run::report::HostSummary;
    use std::collections::BTreeMap;

    fn result(id: &str, group: Group, status: Status) -> CheckResult {
        CheckResult {
            id: id.into(),
            group,
            title: id.into(),
            status,
            severity: Severity::High,
            summary: format!("{id} summary"),
            remedy: Some(format!("fix {id}")),
            details: BTreeMap::new(),
            duration_ms: 0,
        }
    }

    fn report(checks: Vec<CheckResult>) -> Report {
        let host = HostSummary {
            mode: Mode::Local,
            instance_id: None,
            region: None,
            patch_group: None,
            os: None,
        };
        Report::new(
            host,
            std::time::UNIX_EPOCH,
            std::time::Duration::ZERO,
            checks,
        )
    }

    #[test]
    fn failures_block_and_say_what_to_do() {
        let r = report(vec![
            result("disk.var", Group::Host, Status::Fail),
            result("reboot.pending", Group::Host, Status::Warn),
        ]);
        let (text, code) = verdict(&r, &GateSettings::default(), "a run 2m ago");
        assert_eq!(code, 1);
        assert!(
            text.contains("  FAIL disk.var: disk.var summary\n    fix: fix disk.var\n"),
            "{text}"
        );
        assert!(!text.contains("reboot.pending"));
        let strict = GateSettings {
            block_on_warn: true,
            ..Default::default()
        };
        assert!(verdict(&r, &strict, "x").0.contains("WARN reboot.pending"));
    }

    #[test]
    fn a_check_that_could_not_look_blocks_unless_told_otherwise() {
        let r = report(vec![result("pkg.lock", Group::Host, Status::Error)]);
        let (text, code) = verdict(&r, &GateSettings::default(), "x");
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("ERROR pkg.lock"), "{text}");
        let lenient = GateSettings {
            block_on_error: false,
            ..Default::default()
        };
        assert_eq!(verdict(&r, &lenient, "x").1, 0);
    }

    #[test]
    fn only_the_configured_checks_block() {
        let r = report(vec![result("patchgroup.tag", Group::Host, Status::Fail)]);
        let settings = GateSettings {
            checks: vec!["disk".into(), "pkg".into()],
            ..Default::default()
        };
        let (text, code) = verdict(&r, &settings, "x");
        assert_eq!(code, 0, "{text}");
        let (_, code) = verdict(
            &report(vec![result("pkg.lock", Group::Host, Status::Fail)]),
            &settings,
            "x",
        );
        assert_eq!(code, 1);
    }
}
