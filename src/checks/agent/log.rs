//! `agent.log`: the agent's own log is being written, and what it said
//! went wrong in the last hour. Read from the end: the log grows to tens of
//! megabytes and only the recent lines matter.

use crate::checks::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::config::units::format_age;
use crate::host::agent_log::{gather, ErrorLine, Facts, AGENT_LOG, ERRORS_LOG};
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.log",
    group: Group::Agent,
    title: "amazon-ssm-agent log",
    severity: Severity::Low,
    members: None,
    doc: Doc {
        looks_at: "the last 256 KiB of `/var/log/amazon/ssm/amazon-ssm-agent.log` and `errors.log` (never the whole file): when it was last written, `ERROR` lines",
        warns: "not written for `agent.log_stale_after` (24 h); `ERROR` lines within `agent.log_error_window` (1 h): the count and the latest",
        fails: "—",
        fix: "read the errors: `grep ERROR … | tail`",
        cannot_see: "no log and no agent / a log it may not read",
        reports: "`skip` / `error`",
    },
};

pub fn plan(ctx: &Context) -> crate::checks::Check {
    crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let installed = ctx
            .agent_units()
            .await
            .as_ref()
            .ok()
            .map(|u| u.in_use().is_some());
        let root = ctx.root.clone();
        let facts = match tokio::task::spawn_blocking(move || {
            gather(&root, &crate::host::agent_log::local_timezone(&root))
        })
        .await
        {
            Ok(f) => f,
            Err(e) => {
                return Outcome::error(
                    format!("cannot read the agent log: {e}"),
                    "This is a bug in ssm-preflight: report it.",
                )
            }
        };
        if facts.modified.is_none() && facts.unreadable.is_none() && installed != Some(true) {
            return Outcome::skip(format!(
                "there is no agent log at {AGENT_LOG}: the agent does not seem to be installed"
            ));
        }
        judge(&facts, ctx.now, &ctx.settings.agent)
    })
}

pub fn judge(f: &Facts, now: SystemTime, settings: &crate::config::AgentSettings) -> Outcome {
    if let Some(why) = &f.unreadable {
        return Outcome::error(
            format!("cannot read the agent log: {why}"),
            "Run ssm-preflight as root so it can read /var/log/amazon/ssm.",
        );
    }
    let Some(modified) = f.modified else {
        return Outcome::warn(
            format!("the agent is installed but there is no log at {AGENT_LOG}"),
            "Check that the agent starts (`sudo systemctl status amazon-ssm-agent`) and that /var/log/amazon/ssm is writable.",
        );
    };
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    let recent: Vec<&ErrorLine> = f
        .errors
        .iter()
        .filter(|e| {
            now.duration_since(e.at)
                .is_ok_and(|d| d <= settings.log_error_window)
        })
        .collect();
    let window = format_age(settings.log_error_window);
    let mut outcome = if age > settings.log_stale_after {
        Outcome::warn(
            format!("the agent has not written its log for {} (more than {})", format_age(age), format_age(settings.log_stale_after)),
            "An idle agent still logs its health pings: check it runs (`sudo systemctl status amazon-ssm-agent`) and is not stuck (`sudo systemctl restart amazon-ssm-agent`).",
        )
    } else if let Some(latest) = recent.last() {
        let mut text = latest.text.clone();
        if text.chars().count() > 300 {
            text = text.chars().take(300).collect::<String>() + "…";
        }
        Outcome::warn(
            format!("{} ERROR line(s) in the agent log in the last {window}; the latest: {text}", recent.len()),
            format!("Read them: `sudo grep ERROR {AGENT_LOG} {ERRORS_LOG} | tail -n 20`; errors about credentials, endpoints or the registration stop the patch run."),
        )
    } else {
        Outcome::pass(format!(
            "the agent wrote its log {} ago, with no ERROR in the last {window}",
            format_age(age)
        ))
    };
    outcome = outcome
        .detail("errors_in_window", recent.len())
        .detail("last_written_secs_ago", age.as_secs());
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::config::AgentSettings;
    use crate::host::agent_log::error_lines;

    fn at(stamp: &str) -> SystemTime {
        SystemTime::from(stamp.parse::<jiff::Timestamp>().unwrap())
    }

    const LOG: &str = "\
2026-11-26 09:00:00 INFO [ssm-agent-worker] started
2026-11-26 09:10:00.1234 ERROR [MessageService] old failure
2026-11-26 10:20:00 ERROR [ssm-agent-worker] [MessageService] failed to connect to ssmmessages
2026-11-26 10:25:00 INFO [HealthCheck] ok
short
";

    #[test]
    fn error_lines_in_local_time() {
        let lines = error_lines(LOG, &jiff::tz::TimeZone::UTC);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].at, at("2026-11-26T10:20:00Z"));
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(error_lines(LOG, &paris)[1].at, at("2026-11-26T09:20:00Z"));
    }

    #[test]
    fn verdicts() {
        let settings = AgentSettings::default();
        let facts = Facts {
            modified: Some(at("2026-11-26T10:25:00Z")),
            errors: error_lines(LOG, &jiff::tz::TimeZone::UTC),
            unreadable: None,
        };
        let o = judge(&facts, at("2026-11-26T10:30:00Z"), &settings);
        o.assert_begins(Status::Warn, "1 ERROR line(s) in the agent log in the last 1h 0m; the latest: 2026-11-26 10:20:00 ERROR");

        let later = judge(&facts, at("2026-11-26T12:00:00Z"), &settings);
        assert_eq!(later.status, Status::Pass, "{}", later.summary);
        assert_eq!(
            later.summary,
            "the agent wrote its log 1h 35m ago, with no ERROR in the last 1h 0m"
        );

        let stale = judge(&facts, at("2026-11-28T12:00:00Z"), &settings);
        assert_eq!(stale.status, Status::Warn);
        assert!(stale.summary.contains("has not written its log for 2d 1h"));

        let missing = judge(&Facts::default(), at("2026-11-26T12:00:00Z"), &settings);
        assert_eq!(missing.status, Status::Warn);
    }
}
