//! `ssm-preflight status`: the last run and its report's delivery, from
//! the state file.

use crate::cli::StatusArgs;
use crate::config::units::format_age;
use crate::report::state::{self, DeliveryState};
use std::time::SystemTime;

pub fn status(args: &StatusArgs) -> anyhow::Result<u8> {
    let dir = state::default_dir();
    let state = state::read(&dir).map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(0);
    }
    let Some(run) = &state.last_run else {
        println!(
            "No run recorded in {} yet: run `ssm-preflight check --report`, or start the service.",
            dir.join(state::FILE).display()
        );
        return Ok(0);
    };
    let age = humantime::parse_rfc3339(&run.started_at)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| format!(" ({} ago)", format_age(d)))
        .unwrap_or_default();
    println!(
        "Last run: {}{age}, verdict {}",
        run.started_at,
        run.verdict.as_str().to_uppercase()
    );
    for c in &run.checks {
        use crate::checks::Status::*;
        if matches!(c.status, Warn | Fail | Error) {
            println!("  {:<5} {}: {}", c.status.as_str(), c.id, c.summary);
            if let Some(remedy) = &c.remedy {
                println!("        fix: {remedy}");
            }
        }
    }
    if let Some(d) = &state.delivery {
        let line = match d.state {
            DeliveryState::Delivered => format!(
                "reached SSM at {}",
                d.delivered_at.as_deref().unwrap_or("an unknown time")
            ),
            DeliveryState::Pending => format!(
                "kept for a retry after {} attempt(s); last error: {}; next attempt {}",
                d.attempts,
                d.error.as_deref().unwrap_or("unknown"),
                d.next_attempt
                    .as_deref()
                    .unwrap_or("when the daemon or `ssm-preflight report` runs")
            ),
            DeliveryState::Rejected => format!(
                "refused by SSM: {}\n        fix: {}",
                d.error.as_deref().unwrap_or("unknown"),
                d.remedy.as_deref().unwrap_or("see the error")
            ),
            DeliveryState::NotSent => "not sent (the run was not asked to report)".to_string(),
        };
        println!("Report: {line}");
    }
    let verdicts: Vec<&str> = state.history.iter().map(|h| h.verdict.as_str()).collect();
    if !verdicts.is_empty() {
        println!("History (oldest first): {}", verdicts.join(", "));
    }
    Ok(0)
}
