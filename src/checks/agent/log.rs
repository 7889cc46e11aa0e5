//! `agent.log`: the agent's own log is being written, and what it said
//! went wrong in the last hour. Read from the end: the log grows to tens of
//! megabytes and only the recent lines matter.

use super::lookup;
use crate::checks::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::config::units::format_age;
use crate::host::Root;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.log",
    group: Group::Agent,
    title: "amazon-ssm-agent log",
    severity: Severity::Low,
};

pub const AGENT_LOG: &str = "/var/log/amazon/ssm/amazon-ssm-agent.log";
pub const ERRORS_LOG: &str = "/var/log/amazon/ssm/errors.log";

/// How much of each file's end is read: hours of a busy agent's log.
const TAIL_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine {
    pub at: SystemTime,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// When the agent log was last written; `None` when there is none.
    pub modified: Option<SystemTime>,
    /// ERROR lines from both files, oldest first.
    pub errors: Vec<ErrorLine>,
    pub unreadable: Option<String>,
}

pub fn plan(ctx: &Context) -> crate::checks::Check {
    let ctx2 = ctx.clone();
    ctx.check_async(&ENTRY, ENTRY.id, async move {
        let ctx = ctx2;
        let installed = lookup(&ctx)
            .await
            .as_ref()
            .ok()
            .map(|u| u.in_use().is_some());
        let root = ctx.root.clone();
        let tz = jiff::tz::TimeZone::system();
        let facts = match tokio::task::spawn_blocking(move || gather(&root, &tz)).await {
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

/// The last `TAIL_BYTES` of a file, from the first whole line.
fn tail(path: &std::path::Path) -> std::io::Result<Option<(SystemTime, String)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let start = meta.len().saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((meta.len() - start) as usize);
    file.read_to_end(&mut buf)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        // The first line was cut by the seek.
        text = text
            .split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
    }
    Ok(Some((meta.modified()?, text)))
}

pub fn gather(root: &Root, tz: &jiff::tz::TimeZone) -> Facts {
    let mut facts = Facts::default();
    for path in [AGENT_LOG, ERRORS_LOG] {
        match tail(&root.path(path)) {
            Ok(Some((modified, text))) => {
                if path == AGENT_LOG {
                    facts.modified = Some(modified);
                }
                facts.errors.extend(error_lines(&text, tz));
            }
            Ok(None) => {}
            Err(e) => facts.unreadable = Some(format!("{path}: {e}")),
        }
    }
    facts.errors.sort_by_key(|e| e.at);
    facts.errors.dedup();
    facts
}

/// Lines like `2024-05-01 10:23:45 ERROR [ssm-agent-worker] …` (the agent
/// writes local time, with or without fractions of a second).
pub fn error_lines(text: &str, tz: &jiff::tz::TimeZone) -> Vec<ErrorLine> {
    text.lines()
        .filter_map(|line| {
            let stamp = line.get(..19)?;
            let rest = line[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
            let rest = rest.trim_start();
            if !rest.starts_with("ERROR") {
                return None;
            }
            let civil: jiff::civil::DateTime = stamp.replacen(' ', "T", 1).parse().ok()?;
            let at = civil.to_zoned(tz.clone()).ok()?.timestamp();
            Some(ErrorLine {
                at: SystemTime::from(at),
                text: line.trim().to_string(),
            })
        })
        .collect()
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
        assert_eq!(o.status, Status::Warn);
        assert!(o.summary.starts_with("1 ERROR line(s) in the agent log in the last 1h 0m; the latest: 2026-11-26 10:20:00 ERROR"), "{}", o.summary);

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
