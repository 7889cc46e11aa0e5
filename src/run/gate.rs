//! `ssm-preflight gate`, the pre-install hook of
//! `AWS-RunPatchBaselineWithHooks`: whether this host must not be patched
//! now. A failing hook makes the run skip install and reboot.

use super::report::{Report, Verdict};
use super::{run_checks, Prepared, RunError};
use crate::checks::{selects, CheckResult, Status};
use crate::config::GateSettings;
use std::time::{Duration, Instant, SystemTime};

/// The package lock at gate time, after waiting for its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// No lock was held.
    Free,
    /// The holder finished after this long.
    Released(Duration),
    /// Still held after waiting this long: the gate blocks.
    StillHeld(Duration),
}

/// At gate time a held package-manager lock is waited out: the patch run's
/// apt path does not wait for the dpkg lock and zypper fails at once. Asks
/// `pkg.lock` alone again once a second (it only queries: no lock is ever
/// taken), up to `wait`; the report's `pkg.lock` result then says how it
/// ended and how long the gate waited.
pub async fn wait_out_locks(
    prepared: &Prepared,
    report: &mut Report,
    wait: Duration,
) -> Result<LockWait, RunError> {
    let held =
        |c: &CheckResult| c.id == "pkg.lock" && matches!(c.status, Status::Warn | Status::Fail);
    let Some(at) = report.checks.iter().position(held) else {
        return Ok(LockWait::Free);
    };
    let started = Instant::now();
    let only = ["pkg.lock".to_string()];
    let mut last = report.checks[at].clone();
    while started.elapsed() < wait {
        tokio::time::sleep(Duration::from_secs(1).min(wait - started.elapsed())).await;
        let again = run_checks(&prepared.context(SystemTime::now()), &only).await?;
        let Some(now) = again.checks.into_iter().next() else {
            break;
        };
        if !held(&now) {
            let waited = started.elapsed();
            let mut now = now;
            now.summary = format!(
                "{} (the gate waited {}s for the lock holder to finish)",
                now.summary,
                waited.as_secs()
            );
            now.details
                .insert("gate_waited_secs".into(), waited.as_secs().to_string());
            report.checks[at] = now;
            report.verdict = Verdict::of(&report.checks);
            return Ok(LockWait::Released(waited));
        }
        last = now;
    }
    let waited = started.elapsed();
    last.status = Status::Fail;
    last.summary = format!(
        "{}, and still held after the gate waited {} (gate.lock_wait): the patch run would fail on the lock",
        last.summary,
        humantime::format_duration(Duration::from_secs(waited.as_secs()))
    );
    last.details
        .insert("gate_waited_secs".into(), waited.as_secs().to_string());
    report.checks[at] = last;
    report.verdict = Verdict::of(&report.checks);
    Ok(LockWait::StillHeld(waited))
}

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
    use crate::run::report::HostSummary;

    fn result(id: &str, group: Group, status: Status) -> CheckResult {
        CheckResult {
            severity: Severity::High,
            ..CheckResult::sample(id, group, status)
        }
    }

    fn report(checks: Vec<CheckResult>) -> Report {
        let host = HostSummary::local();
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
