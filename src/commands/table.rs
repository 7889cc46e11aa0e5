//! The table `ssm-preflight check` prints for people: one line per check,
//! each warning or failure followed by what to do. Styles are ANSI codes;
//! the caller's `anstream` writer drops them when stdout is not a terminal.

use crate::checks::Status;
use crate::run::report::{Report, Verdict};
use anstyle::{AnsiColor, Style};
use std::fmt::Write;

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

pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let os = report.host.os.as_deref().unwrap_or("unknown distribution");
    let mut host = format!("{} mode", report.host.mode.as_str());
    if let Some(id) = &report.host.instance_id {
        host.push_str(&format!(", {id}"));
    }
    if let Some(region) = &report.host.region {
        host.push_str(&format!(" in {region}"));
    }
    let _ = writeln!(out, "ssm-preflight {} · {host} · {os}\n", report.version);

    let width = report
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let bold = Style::new().bold();
    let _ = writeln!(out, "{bold}STATUS  {:<width$}  SUMMARY{bold:#}", "CHECK");
    for c in &report.checks {
        let style = status_style(c.status);
        let _ = writeln!(
            out,
            "{style}{:<6}{style:#}  {:<width$}  {}",
            c.status.as_str(),
            c.id,
            c.summary
        );
        if matches!(c.status, Status::Warn | Status::Fail | Status::Error) {
            if let Some(remedy) = &c.remedy {
                let _ = writeln!(out, "{:<6}  {:<width$}  fix: {remedy}", "", "");
            }
        }
    }

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
    let _ = writeln!(
        out,
        "\nVerdict: {verdict_style}{}{verdict_style:#} — {} ({} in {} ms)",
        report.verdict.as_str().to_uppercase(),
        parts.join(", "),
        plural(report.checks.len(), "check", "checks"),
        report.duration_ms
    );
    out
}
