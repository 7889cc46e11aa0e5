//! The table `ssm-preflight check` prints for people: one line per check,
//! each warning or failure followed by what to do; skipped checks that
//! share a reason folded into one line (`--all` lists each). Styles are
//! ANSI codes; the caller's `anstream` writer drops them when stdout is
//! not a terminal.

use crate::checks::{catalogue, CheckResult, Status};
use crate::run::report::{Report, Verdict};
use anstyle::{AnsiColor, Style};
use std::fmt::Write;

/// One line of the table: a check, or skipped checks sharing one reason.
enum Line<'a> {
    Check(&'a CheckResult),
    Skipped { reason: &'a str, ids: Vec<String> },
}

/// The table's lines in report order; with `fold`, the skipped checks that
/// share a summary stand as one line where the first of them stood.
fn lines(report: &Report, fold: bool) -> Vec<Line<'_>> {
    let skipped = |c: &&CheckResult| c.status == Status::Skip;
    let sharing = |reason: &str| {
        report
            .checks
            .iter()
            .filter(skipped)
            .filter(|c| c.summary == reason)
            .count()
    };
    let mut out: Vec<Line<'_>> = Vec::new();
    for c in &report.checks {
        if !fold || c.status != Status::Skip || sharing(&c.summary) < 2 {
            out.push(Line::Check(c));
            continue;
        }
        let folded = out.iter_mut().find_map(|l| match l {
            Line::Skipped { reason, ids } if *reason == c.summary => Some(ids),
            _ => None,
        });
        match folded {
            Some(ids) => ids.push(c.id.clone()),
            None => out.push(Line::Skipped {
                reason: &c.summary,
                ids: vec![c.id.clone()],
            }),
        }
    }
    out
}

/// `endpoint.*` for a family whose every member in the report is among
/// `ids`; the IDs as they are otherwise.
fn compact(report: &Report, ids: &[String]) -> String {
    let mut shown: Vec<String> = Vec::new();
    for id in ids {
        let family = catalogue()
            .filter(|e| e.members.is_some())
            .map(|e| e.id)
            .find(|f| id.strip_prefix(f).is_some_and(|rest| rest.starts_with('.')));
        let whole = family.filter(|f| {
            report
                .checks
                .iter()
                .filter(|c| {
                    c.id.strip_prefix(f)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .all(|c| ids.contains(&c.id))
        });
        let name = match whole {
            Some(f) => format!("{f}.*"),
            None => id.clone(),
        };
        if !shown.contains(&name) {
            shown.push(name);
        }
    }
    shown.join(", ")
}

fn status_style(status: Status) -> Style {
    let color = match status {
        Status::Pass => AnsiColor::Green,
        Status::Warn => AnsiColor::Yellow,
        Status::Fail => AnsiColor::Red,
        Status::Skip => AnsiColor::BrightBlack,
        Status::Error => AnsiColor::Magenta,
    };
    Style::new().fg_color(Some(color.into())).bold()
}

/// The table; `all` lists every skipped check on its own line.
pub fn render_table(report: &Report, all: bool) -> String {
    let mut out = header(report);
    let width = report
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let bold = Style::new().bold();
    let _ = writeln!(out, "{bold}STATUS  {:<width$}  SUMMARY{bold:#}", "CHECK");
    for line in lines(report, !all) {
        let c = match line {
            Line::Check(c) => c,
            Line::Skipped { reason, ids } => {
                let style = status_style(Status::Skip);
                let count = format!("{} checks", ids.len());
                let ids = compact(report, &ids);
                let reason = super::safe(reason);
                let _ = writeln!(
                    out,
                    "{style}skip  {style:#}  {count:<width$}  {reason} — {ids}"
                );
                continue;
            }
        };
        let style = status_style(c.status);
        let _ = writeln!(
            out,
            "{style}{:<6}{style:#}  {:<width$}  {}",
            c.status.as_str(),
            c.id,
            super::safe(&c.summary)
        );
        if matches!(c.status, Status::Warn | Status::Fail | Status::Error) {
            if let Some(remedy) = &c.remedy {
                let remedy = super::safe(remedy);
                let _ = writeln!(out, "{:<6}  {:<width$}  fix: {remedy}", "", "");
            }
        }
    }
    out.push_str(&verdict_line(report));
    out
}

/// The first line: the version, the mode and the node, the distribution.
fn header(report: &Report) -> String {
    let os = report.host.os.as_deref().unwrap_or("unknown distribution");
    let mut host = format!("{} mode", report.host.mode.as_str());
    if let Some(id) = &report.host.instance_id {
        host.push_str(&format!(", {id}"));
    }
    if let Some(region) = &report.host.region {
        host.push_str(&format!(" in {region}"));
    }
    format!(
        "ssm-preflight {} · {} · {}\n\n",
        report.version,
        super::safe(&host),
        super::safe(os)
    )
}

/// The closing line: the verdict and what each status counted.
fn verdict_line(report: &Report) -> String {
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let verdict_style = match report.verdict {
        Verdict::Pass => status_style(Status::Pass),
        Verdict::Warn => status_style(Status::Warn),
        Verdict::Fail => status_style(Status::Fail),
    };
    let mut parts = vec![
        plural(count(Status::Fail), "failure", "failures"),
        plural(count(Status::Warn), "warning", "warnings"),
    ];
    if count(Status::Error) > 0 {
        parts.push(plural(
            count(Status::Error),
            "check could not run",
            "checks could not run",
        ));
    }
    if count(Status::Skip) > 0 {
        parts.push(format!("{} skipped", count(Status::Skip)));
    }
    format!(
        "\nVerdict: {verdict_style}{}{verdict_style:#} — {} ({} in {} ms)\n",
        report.verdict.as_str().to_uppercase(),
        parts.join(", "),
        plural(report.checks.len(), "check", "checks"),
        report.duration_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Group, Severity};
    use crate::run::report::HostSummary;
    use std::time::{Duration, UNIX_EPOCH};

    fn result(id: &str, status: Status, summary: &str) -> CheckResult {
        CheckResult {
            id: id.into(),
            group: Group::Network,
            title: id.into(),
            status,
            severity: Severity::Medium,
            summary: summary.into(),
            remedy: None,
            details: Default::default(),
            duration_ms: 1,
        }
    }

    /// The table as a pipe shows it: without the terminal's styles.
    fn plain(report: &Report, all: bool) -> String {
        anstream::adapter::strip_str(&render_table(report, all)).to_string()
    }

    fn report() -> Report {
        const LOCAL: &str = "local mode: nothing on the network is contacted";
        let checks = vec![
            result("credentials.valid", Status::Skip, LOCAL),
            result("endpoint.ssm", Status::Skip, LOCAL),
            result("endpoint.s3", Status::Skip, LOCAL),
            result("disk.root", Status::Pass, "/ has 50 GiB free"),
            result("agent.version", Status::Skip, "no agent binary"),
            result("ssm.ping", Status::Skip, LOCAL),
        ];
        Report::new(
            HostSummary::local(),
            UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            Duration::from_millis(3),
            checks,
        )
    }

    #[test]
    fn skipped_checks_that_share_a_reason_are_one_line() {
        let table = plain(&report(), false);
        let skip_lines: Vec<&str> = table.lines().filter(|l| l.starts_with("skip")).collect();
        assert_eq!(skip_lines.len(), 2, "{table}");
        assert!(
            skip_lines[0].contains("4 checks")
                && skip_lines[0].ends_with(
                    "local mode: nothing on the network is contacted — credentials.valid, endpoint.*, ssm.ping"
                ),
            "{table}"
        );
        // A reason only one check has keeps its own line, in report order.
        assert!(
            skip_lines[1].contains("agent.version") && skip_lines[1].ends_with("no agent binary")
        );
        assert!(table.contains("Verdict: PASS — 0 failures, 0 warnings, 5 skipped (6 checks"));
    }

    #[test]
    fn a_summary_from_outside_cannot_drive_the_terminal() {
        let mut r = report();
        r.checks[3].status = Status::Fail;
        r.checks[3].summary = "KB5001\u{1b}[2J\u{202e}gnp.exe".into();
        r.checks[3].remedy = Some("line\nbreak".into());
        let table = plain(&r, false);
        assert!(table.contains("KB5001\\e[2J\\u{202e}gnp.exe"), "{table}");
        assert!(table.contains("fix: line\\nbreak"), "{table}");
        assert!(!table.contains('\u{202e}'));
    }

    #[test]
    fn all_lists_every_skipped_check() {
        let table = plain(&report(), true);
        assert_eq!(
            table.lines().filter(|l| l.starts_with("skip")).count(),
            5,
            "{table}"
        );
        assert!(table.contains("endpoint.s3"));
    }

    #[test]
    fn a_family_shows_by_member_when_not_all_of_it_shares_the_reason() {
        let mut r = report();
        r.checks[2].summary = "another reason".into();
        let table = plain(&r, false);
        assert!(table.contains("3 checks"), "{table}");
        assert!(
            table.contains(" — credentials.valid, endpoint.ssm, ssm.ping"),
            "{table}"
        );
    }
}
